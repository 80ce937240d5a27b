"""fastrnn.diagnostics: per-step ||dL/dh_t|| of functional calls and of one layer of a
stacked module, checked against torch autograd run cell by cell (every h_t a tensor
whose .grad is the total dL/dh_t), plus the plot and the vanishing-gradients example."""
import sys

import numpy as np
import pytest

import fastrnn
from fastrnn import diagnostics as D

from cases import load_example

def _draw(rng, *shape, scale=1.0):
    return rng.uniform(-scale, scale, shape)


def _params(cell, n_in, hidden, rng):
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    s = 1.2 / np.sqrt(hidden)
    return dict(w_ih=_draw(rng, gates * hidden, n_in, scale=s), w_hh=_draw(rng, gates * hidden, hidden, scale=s),
                b_ih=_draw(rng, gates * hidden, scale=s), b_hh=_draw(rng, gates * hidden, scale=s))


def _torch_cell(cell, p, nonlinearity="tanh"):
    torch = pytest.importorskip("torch")
    n_in, hidden = p["w_ih"].shape[1], p["w_hh"].shape[1]
    module = {"lstm": lambda: torch.nn.LSTMCell(n_in, hidden),
              "gru": lambda: torch.nn.GRUCell(n_in, hidden),
              "rnn": lambda: torch.nn.RNNCell(n_in, hidden, nonlinearity=nonlinearity)}[cell]().double()
    with torch.no_grad():
        for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
            target = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}[name]
            getattr(module, target).copy_(torch.from_numpy(np.asarray(p[name], np.float64)))
    return module


def _torch_run(cell, torch_cell, x, reverse=False):
    """Run a torch cell over x (T, B, I) tensor; returns (outputs list by time, the h_t tensors)."""
    torch = pytest.importorskip("torch")
    steps, batch, _ = x.shape
    hidden = torch_cell.weight_hh.shape[1]
    h = torch.zeros(batch, hidden, dtype=torch.float64)
    c = torch.zeros(batch, hidden, dtype=torch.float64)
    states = [None] * steps
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        if cell == "lstm":
            h, c = torch_cell(x[t], (h, c))
        else:
            h = torch_cell(x[t], h)
        h.retain_grad()
        states[t] = h
    return states


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_functional_norms_match_torch_autograd(cell):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    steps, batch, n_in, hidden = 12, 3, 4, 6
    p = _params(cell, n_in, hidden, rng)
    x = _draw(rng, steps, batch, n_in)
    dy = _draw(rng, steps, batch, hidden)
    trace = D.hidden_grads(cell, x, **p, dy=dy)
    per_sequence = D.hidden_grad_norms(cell, x, **p, dy=dy, per_sequence=True)
    mean = D.hidden_grad_norms(cell, x, **p, dy=dy)

    states = _torch_run(cell, _torch_cell(cell, p), torch.from_numpy(x))
    loss = sum((torch.from_numpy(dy[t]) * states[t]).sum() for t in range(steps))
    loss.backward()
    expected = np.stack([h.grad.numpy() for h in states])
    np.testing.assert_allclose(trace, expected, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(per_sequence, np.linalg.norm(expected, axis=2), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(mean, np.linalg.norm(expected, axis=2).mean(axis=1), rtol=1e-10, atol=1e-13)
    assert mean.shape == (steps,) and per_sequence.shape == (steps, batch) and mean.dtype == np.float64


def test_default_loss_and_lengths():
    rng = np.random.default_rng(2)
    steps, batch, n_in, hidden = 8, 4, 3, 5
    p = _params("gru", n_in, hidden, rng)
    x = _draw(rng, steps, batch, n_in).astype(np.float32)
    p32 = {k: v.astype(np.float32) for k, v in p.items()}
    lengths = np.array([8, 3, 1, 6])
    per = D.hidden_grad_norms("gru", x, **p32, lengths=lengths, per_sequence=True)
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(per[n - 1, b], 1.0, rtol=1e-6)  # unit gradient on the last valid step
        assert np.all(per[n:, b] == 0) and np.all(per[:n - 1, b] > 0)
    mean = D.hidden_grad_norms("gru", x, **p32, lengths=lengths)
    valid = np.arange(steps)[:, None] < lengths[None, :]
    np.testing.assert_allclose(mean, (per * valid).sum(axis=1) / valid.sum(axis=1), rtol=1e-12)
    # the default loss is a unit gradient on y[len - 1]: the same as passing it as dh_n
    dh_n = np.full((batch, hidden), 1 / np.sqrt(hidden), np.float32)
    np.testing.assert_allclose(D.hidden_grad_norms("gru", x, **p32, lengths=lengths, dh_n=dh_n), mean, rtol=1e-6)
    with pytest.raises(ValueError, match=r"cell must be one of"):
        D.hidden_grad_norms("lstmm", x, **p32)


def test_lstm_projection_and_clipping():
    rng = np.random.default_rng(3)
    steps, batch, n_in, hidden, width = 6, 2, 3, 5, 2
    p = _params("lstm", n_in, hidden, rng)
    p["w_hh"] = _draw(rng, 4 * hidden, width, scale=0.6)
    x = _draw(rng, steps, batch, n_in)
    w_hr = _draw(rng, width, hidden, scale=0.8)
    dy = _draw(rng, steps, batch, width, scale=5)
    trace = D.hidden_grads("lstm", x, **p, w_hr=w_hr, dy=dy)
    assert trace.shape == (steps, batch, width)
    clipped = D.hidden_grads("lstm", x, **p, w_hr=w_hr, dy=dy, clip_per_step=0.5)
    assert np.abs(trace).max() > 0.5 and np.abs(clipped).max() <= 0.5


# --- the module form -------------------------------------------------------------------------
def _module_params(module, layer, suffix=""):
    names = ("w_ih", "w_hh", "b_ih", "b_hh")
    return {n: p.data.astype(np.float64) for n, p in zip(names, module._weights(layer, suffix)[:4])}


def _torch_stack(cell, module, x, dy):
    """Per-layer, per-direction h_t tensors of a torch cell-by-cell run of ``module``'s
    weights, after backpropagating sum(dy * y_top)."""
    torch = pytest.importorskip("torch")
    nonlinearity = module.cell_options.get("nonlinearity", "tanh")
    layer_input = torch.from_numpy(x)
    all_states = []
    for layer in range(module.num_layers):
        outputs, layer_states = [], []
        for direction, suffix in enumerate(module._suffixes()):
            torch_cell = _torch_cell(cell, _module_params(module, layer, suffix), nonlinearity)
            states = _torch_run(cell, torch_cell, layer_input, reverse=direction == 1)
            layer_states.append(states)
            outputs.append(torch.stack(states))
        all_states.append(layer_states)
        layer_input = torch.cat(outputs, dim=2)
    (torch.from_numpy(dy) * layer_input).sum().backward()
    return [[np.stack([h.grad.numpy() for h in states]) for states in layer] for layer in all_states]


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_layer_norms_of_a_two_layer_stack_match_torch(cell, bidirectional):
    pytest.importorskip("torch")
    cls = {"lstm": fastrnn.LSTM, "gru": fastrnn.GRU, "rnn": fastrnn.RNN}[cell]
    steps, batch, n_in, hidden = 9, 3, 4, 5
    module = cls(n_in, hidden, num_layers=2, bidirectional=bidirectional, dtype=np.float64, seed=4, dropout=0.3)
    rng = np.random.default_rng(5)
    x = _draw(rng, steps, batch, n_in)
    directions = 2 if bidirectional else 1
    dy = np.zeros((steps, batch, directions * hidden))
    dy[-1] = 1 / np.sqrt(directions * hidden)  # the default loss: unit gradient on the last step
    expected = _torch_stack(cell, module, x, dy)
    for layer in range(2):
        for direction in range(directions):
            trace = D.layer_hidden_grads(module, x, layer=layer, direction=direction)
            np.testing.assert_allclose(trace, expected[layer][direction], rtol=1e-9, atol=1e-13,
                                       err_msg=f"layer {layer} direction {direction}")
            norms = D.layer_hidden_grad_norms(module, x, layer=layer, direction=direction)
            np.testing.assert_allclose(norms, np.linalg.norm(expected[layer][direction], axis=2).mean(axis=1),
                                       rtol=1e-9, atol=1e-13)
    # a custom dy reaches layer 0 too; the module itself is left untouched
    dy2 = _draw(rng, steps, batch, directions * hidden)
    expected2 = _torch_stack(cell, module, x, dy2)
    np.testing.assert_allclose(D.layer_hidden_grads(module, x, layer=0, dy=dy2), expected2[0][0], rtol=1e-9,
                               atol=1e-13)
    assert all(p.grad is None for p in module.parameters())


def test_layer_form_batch_first_lengths_and_validation():
    module = fastrnn.LSTM(3, 4, num_layers=2, batch_first=True, seed=0)
    rng = np.random.default_rng(6)
    x = rng.uniform(-1, 1, (5, 7, 3)).astype(np.float32)  # (B, T, I)
    lengths = np.array([7, 2, 5, 1, 7])
    per = D.layer_hidden_grad_norms(module, x, layer=0, lengths=lengths, per_sequence=True)
    assert per.shape == (7, 5)
    for b, n in enumerate(lengths):
        assert np.all(per[n:, b] == 0) and np.all(per[:n, b] > 0)
    top = D.layer_hidden_grad_norms(module, x, lengths=lengths, per_sequence=True)
    np.testing.assert_allclose(top[lengths - 1, np.arange(5)], 1.0, rtol=1e-5)
    time_major = fastrnn.LSTM(3, 4, num_layers=2, seed=0)
    np.testing.assert_array_equal(
        D.layer_hidden_grad_norms(time_major, x.transpose(1, 0, 2), layer=0, lengths=lengths, per_sequence=True), per)
    with pytest.raises(ValueError, match=r"layer must be an integer in 0..1"):
        D.layer_hidden_grads(module, x, layer=2)
    with pytest.raises(ValueError, match=r"direction must be 0 for this unidirectional module"):
        D.layer_hidden_grads(module, x, direction=1)
    with pytest.raises(TypeError, match=r"module must be a fastrnn.LSTM, GRU or RNN layer"):
        D.layer_hidden_grads(fastrnn.Linear(3, 4), x)


def test_gradient_reach():
    assert D.gradient_reach([1e-5, 1e-2, 0.5, 1.0]) == 2
    assert D.gradient_reach([1.0, 1.0, 1.0]) == 2
    assert D.gradient_reach([1.0, 1e-9, 1.0]) == 0
    assert D.gradient_reach([1.0, 0.0]) == 0
    assert D.gradient_reach(0.5 ** np.arange(30)[::-1], ratio=1e-3) == 9  # 0.5**9 >= 1e-3 > 0.5**10
    with pytest.raises(ValueError, match=r"norms must be a non-empty 1-D array"):
        D.gradient_reach(np.ones((2, 2)))
    for bad in (2.0, 0, -1e-3, np.nan, True, "0.1"):  # 2.0 returned -1, outside 0..T-1
        with pytest.raises(ValueError, match=r"ratio must be a number in \(0, 1\]"):
            D.gradient_reach([0.5, 1.0, 1.0], ratio=bad)


# --- the plot and the example ----------------------------------------------------------------
def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    steps = 30
    norms = {"a": 0.6 ** np.arange(steps)[::-1], "b": np.r_[np.zeros(5), 0.9 ** np.arange(steps - 5)[::-1]]}
    path = tmp_path / "flow.png"
    figure = D.plot_gradient_flow(norms, path, threshold=1e-3, title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    assert figure.axes[0].get_yscale() == "log"
    D.plot_gradient_flow(norms["a"], tmp_path / "one.png", normalize=False)
    assert (tmp_path / "one.png").exists()


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"matplotlib.*'bench' extra"):
        D.plot_gradient_flow({"a": np.ones(3)})


@pytest.mark.usefixtures("one_blas_thread")
def test_vanishing_gradients_example_quick(tmp_path, capsys):
    module = load_example("vanishing_gradients")
    out_path = tmp_path / "vg.png"
    result = module.main(["--quick", "--out", str(out_path)])
    printed = capsys.readouterr().out
    for name in ("rnn (tanh)", "lstm", "gru", "lstm (forget bias 1)"):
        assert f"  {name} " in printed and name in result["reach"]
    reach = result["reach"]
    # At torch's default init the LSTM's forget gate is ~0.5: its reach is about the tanh
    # RNN's (both ~10 steps). The robust fact: a forget bias of 1 reaches much further.
    assert 3 <= reach["rnn (tanh)"] < 25
    assert reach["lstm (forget bias 1)"] >= 1.5 * reach["rnn (tanh)"]
    assert all(np.all(np.isfinite(n)) and n[-1] > 0 for n in result["norms"].values())
    if result["path"] is not None:
        assert out_path.read_bytes()[:4] == b"\x89PNG"
    else:
        assert "no plot" in printed


def test_layer_form_follows_variant_options():
    """A variant layer's trace is that of its own cell (eval-mode regularizers), not the plain LSTM's."""
    import fastrnn
    from fastrnn.diagnostics import layer_hidden_grads
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    layer = fastrnn.LSTM(3, 4, dtype=np.float64, seed=0, peephole=True, layer_norm=True, zoneout=0.2)
    trace = layer_hidden_grads(layer, x)
    weights = [getattr(layer, f"{n}_l0").data for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    variant = layer._variant_arguments(0, "", x.shape, False)
    y, _, _, ctx = fastrnn.functional.lstm(x, *weights, training=True, **variant)
    dy = np.zeros_like(y)
    dy[-1] = trace[-1]  # the default loss: unit-norm gradient on the last step, as recorded
    expected = np.empty_like(y)
    fastrnn.functional.lstm_backward(ctx, dy, hidden_grads_out=expected)
    np.testing.assert_allclose(trace, expected, rtol=1e-12, atol=1e-15)
