"""fastrnn.nn.cells: RNNCell, LSTMCell, GRUCell against torch's cells (live, when torch
imports) and against fastrnn.functional with T = 1 (always): outputs, and the gradients of
the input, the previous state and every parameter."""
import numpy as np
import pytest

from fastrnn import functional as F
from fastrnn.nn import load, save
from fastrnn.nn.cells import GRUCell, LSTMCell, RNNCell

B, I, H = 3, 4, 5

#: name -> (class, constructor options, torch class name, torch options)
CELLS = {
    "rnn_tanh": (RNNCell, {"nonlinearity": "tanh"}, "RNNCell", {"nonlinearity": "tanh"}),
    "rnn_relu": (RNNCell, {"nonlinearity": "relu"}, "RNNCell", {"nonlinearity": "relu"}),
    "gru": (GRUCell, {}, "GRUCell", {}),
    "lstm": (LSTMCell, {}, "LSTMCell", {}),
}
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-5)}


def _inputs(name, dtype, seed=0, batch=B, unbatched=False):
    rng = np.random.default_rng(seed)

    def draw(*shape):
        return rng.uniform(-1, 1, shape if unbatched else (batch,) + shape).astype(dtype)

    x, h, c = draw(I), draw(H), draw(H)
    dh, dc = draw(H), draw(H)
    state = (h, c) if name == "lstm" else h
    d_state = (dh, dc) if name == "lstm" else dh
    return x, state, d_state


def _make(name, dtype, bias=True, seed=3):
    cls, options, *_ = CELLS[name]
    return cls(I, H, bias=bias, dtype=dtype, seed=seed, **options)


def _run(cell, name, x, state, d_state, given_state=True):
    """Forward + backward; returns (outputs, dx, state grads, {param name: grad})."""
    cell.zero_grad()
    if name == "lstm":
        out = cell(x, state if given_state else None)
        dx, d_prev = cell.backward(*d_state)
        outs, d_prev = list(out), list(d_prev)
    else:
        outs = [cell(x, state if given_state else None)]
        dx, d_prev = cell.backward(d_state)
        d_prev = [d_prev]
    return outs, dx, d_prev, {n: p.grad for n, p in cell.named_parameters()}


def _torch_run(torch, name, cell, x, state, d_state, given_state=True):
    _, _, torch_name, options = CELLS[name]
    t_dtype = torch.float64 if cell.dtype == np.float64 else torch.float32
    module = getattr(torch.nn, torch_name)(I, H, bias=cell.bias, **options).to(t_dtype)
    module.load_state_dict({k: torch.tensor(v) for k, v in cell.state_dict().items()})
    xt = torch.tensor(x, requires_grad=True)
    states = [torch.tensor(s, requires_grad=True) for s in (state if name == "lstm" else (state,))]
    arg = None
    if given_state:
        arg = tuple(states) if name == "lstm" else states[0]
    out = module(xt, arg)
    outs = list(out) if name == "lstm" else [out]
    grads = d_state if name == "lstm" else (d_state,)
    sum((o * torch.tensor(g)).sum() for o, g in zip(outs, grads)).backward()
    d_prev = [s.grad.numpy() if s.grad is not None else np.zeros_like(s.detach().numpy()) for s in states]
    return ([o.detach().numpy() for o in outs], xt.grad.numpy(), d_prev,
            {n: p.grad.numpy() for n, p in module.named_parameters()})


def _assert_all_close(ours, theirs, tol, given_state=True):
    outs, dx, d_prev, grads = ours
    t_outs, t_dx, t_prev, t_grads = theirs
    for a, b in zip(outs, t_outs):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, **tol)
    np.testing.assert_allclose(dx, t_dx, **tol)
    if given_state:
        for a, b in zip(d_prev, t_prev):
            np.testing.assert_allclose(a, b, **tol)
    assert grads.keys() == t_grads.keys()
    for key in grads:
        np.testing.assert_allclose(grads[key], t_grads[key], err_msg=key, **tol)


# --------------------------------------------------------------------------- against torch

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("name", list(CELLS))
def test_matches_torch(name, bias, dtype):
    torch = pytest.importorskip("torch")
    cell = _make(name, dtype, bias)
    x, state, d_state = _inputs(name, dtype)
    ours = _run(cell, name, x, state, d_state)
    theirs = _torch_run(torch, name, cell, x, state, d_state)
    _assert_all_close(ours, theirs, TOL[dtype])


@pytest.mark.parametrize("name", list(CELLS))
def test_matches_torch_zero_state_and_unbatched(name):
    torch = pytest.importorskip("torch")
    cell = _make(name, np.float64)
    x, state, d_state = _inputs(name, np.float64, seed=1)
    _assert_all_close(_run(cell, name, x, state, d_state, given_state=False),
                      _torch_run(torch, name, cell, x, state, d_state, given_state=False),
                      TOL[np.float64], given_state=False)
    x, state, d_state = _inputs(name, np.float64, seed=2, unbatched=True)
    ours = _run(cell, name, x, state, d_state)
    theirs = _torch_run(torch, name, cell, x, state, d_state)
    assert ours[0][0].shape == (H,) and ours[1].shape == (I,) and ours[2][0].shape == (H,)
    _assert_all_close(ours, theirs, TOL[np.float64])


def test_initialisation_like_torch():
    torch = pytest.importorskip("torch")
    for name in ("rnn_tanh", "gru", "lstm"):
        cls, options, torch_name, _ = CELLS[name]
        ours = cls(I, H, seed=0, **options)
        theirs = getattr(torch.nn, torch_name)(I, H)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        for (key, value), t_value in zip(ours.state_dict().items(), theirs.state_dict().values()):
            assert value.shape == tuple(t_value.shape), key
            assert value.dtype == np.float32


# --------------------------------------------------------------------------- against the functional API (no torch)

def _functional_run(name, cell, x, state, d_state):
    """The same step through fastrnn.functional with T = 1."""
    w = [None if p is None else p.data for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)]
    if name == "lstm":
        _, h_n, c_n, ctx = F.lstm(x[None], *w, state[0], state[1], training=True)
        g = F.lstm_backward(ctx, d_state[0][None], None, d_state[1])
        outs, d_prev = [h_n, c_n], [g.dh0, g.dc0]
    else:
        fn, bw = (F.gru, F.gru_backward) if name.startswith("gru") else (F.rnn, F.rnn_backward)
        _, h_n, ctx = fn(x[None], *w, state, training=True, **cell.cell_options)
        g = bw(ctx, d_state[None], None)
        outs, d_prev = [h_n], [g.dh0]
    grads = {"weight_ih": g.dw_ih, "weight_hh": g.dw_hh}
    if cell.bias:
        grads.update(bias_ih=g.db_ih, bias_hh=g.db_hh)
    return outs, g.dx[0], d_prev, grads


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("name", list(CELLS) + ["gru_reset_before"])
def test_matches_functional_one_step(name, bias, dtype):
    if name == "gru_reset_before":
        cell = GRUCell(I, H, bias=bias, reset_after=False, dtype=dtype, seed=4)
    else:
        cell = _make(name, dtype, bias)
    key = "gru" if name.startswith("gru") else name
    x, state, d_state = _inputs(key, dtype, seed=5)
    ours = _run(cell, key, x, state, d_state)
    _assert_all_close(ours, _functional_run(name, cell, x, state, d_state), dict(rtol=1e-12, atol=0))


def test_gru_reset_before_differs_from_reset_after():
    x, h, _ = _inputs("gru", np.float64)
    after = GRUCell(I, H, dtype=np.float64, seed=1)
    before = GRUCell(I, H, reset_after=False, dtype=np.float64, seed=1)
    assert not np.allclose(after(x, h), before(x, h))


@pytest.mark.parametrize("name", list(CELLS))
def test_unbatched_equals_batch_of_one(name):
    cell = _make(name, np.float64)
    x, state, d_state = _inputs(name, np.float64, seed=6, batch=1)
    batched = _run(cell, name, x, state, d_state)
    squeeze = (lambda s: tuple(a[0] for a in s)) if name == "lstm" else (lambda s: s[0])
    unbatched = _run(cell, name, x[0], squeeze(state), squeeze(d_state))
    for a, b in zip(batched[0] + [batched[1]] + batched[2], unbatched[0] + [unbatched[1]] + unbatched[2]):
        assert a.shape[1:] == b.shape
        np.testing.assert_array_equal(a[0], b)
    for key in batched[3]:
        np.testing.assert_array_equal(batched[3][key], unbatched[3][key])


def test_backward_accumulates_and_zero_state_default():
    cell = _make("lstm", np.float64)
    x, (h, c), (dh, dc) = _inputs("lstm", np.float64)
    zero = np.zeros_like(h)
    np.testing.assert_array_equal(cell(x)[1], cell(x, (zero, zero))[1])
    cell.zero_grad()
    cell(x, (h, c))
    cell.backward(dh, dc)
    once = cell.weight_hh.grad.copy()
    cell.backward(dh, dc)
    np.testing.assert_allclose(cell.weight_hh.grad, 2 * once, rtol=1e-14)
    # dc=None means zeros, and so does dh=None
    cell.zero_grad()
    dx_h, _ = cell.backward(dh)
    dx_c, _ = cell.backward(None, dc)
    dx_both, _ = cell.backward(dh, dc)
    np.testing.assert_allclose(dx_h + dx_c, dx_both, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- construction, config, errors

def test_parameters_config_and_save_load(tmp_path):
    cell = GRUCell(I, H, bias=False, reset_after=False, dtype=np.float64, seed=7)
    assert [n for n, _ in cell.named_parameters()] == ["weight_ih", "weight_hh"]
    assert cell.bias_ih is None and cell.bias_hh is None
    assert cell.weight_ih.shape == (3 * H, I) and cell.weight_hh.shape == (3 * H, H)
    bound = 1 / np.sqrt(H)
    assert all(np.abs(p.data).max() <= bound for p in cell.parameters())
    same_seed = GRUCell(I, H, bias=False, dtype=np.float64, seed=7)
    np.testing.assert_array_equal(cell.weight_hh.data, same_seed.weight_hh.data)
    assert "reset_after=False" in repr(cell)
    path = tmp_path / "cell.npz"
    save(cell, path)
    again = load(path)
    assert type(again) is GRUCell and again.config() == cell.config()
    x, h, _ = _inputs("gru", np.float64)
    np.testing.assert_array_equal(again(x, h), cell(x, h))
    lstm = LSTMCell(I, H, seed=1)
    assert [p.shape for p in lstm.parameters()] == [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)]
    assert RNNCell(I, H, nonlinearity="relu").config()["nonlinearity"] == "relu"


def test_backward_needs_training_forward():
    cell = _make("rnn_tanh", np.float64)
    x, h, dh = _inputs("rnn_tanh", np.float64)
    with pytest.raises(RuntimeError, match="training mode"):
        cell.backward(dh)
    cell.eval()
    cell(x, h)
    with pytest.raises(RuntimeError, match="training mode"):
        cell.backward(dh)
    lstm = _make("lstm", np.float64).train()
    with pytest.raises(RuntimeError, match="training mode"):
        lstm.backward(dh)


@pytest.mark.parametrize("call,error,match", [
    (lambda c: c(np.zeros((B, I + 1))), ValueError, "input_size"),
    (lambda c: c(np.zeros((B, I), np.float32)), TypeError, "dtype float32"),
    (lambda c: c(np.zeros((B, I), np.int64)), TypeError, "float32 or float64"),
    (lambda c: c(np.zeros((2, B, I))), ValueError, "2-D"),
    (lambda c: c(np.zeros((0, I))), ValueError, "at least one"),
    (lambda c: c(np.zeros((B, I)), np.zeros((B + 1, H))), ValueError, r"\(B, H\)"),
    (lambda c: c(np.zeros(I), np.zeros((1, H))), ValueError, "1-D"),
    (lambda c: c(np.zeros(I), np.zeros(H + 1)), ValueError, r"\(H,\)"),
    (lambda c: c(None), TypeError, "None"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call(_make("gru", np.float64))


def test_bad_arguments():
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(I, H, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size"):
        LSTMCell(I, 0)
    with pytest.raises(TypeError, match="input_size"):
        GRUCell(2.5, H)
    with pytest.raises(TypeError, match="dtype"):
        LSTMCell(I, H, dtype=np.int32)
    with pytest.raises(TypeError, match="reset_after"):
        GRUCell(I, H, reset_after="yes")
    lstm = _make("lstm", np.float64)
    with pytest.raises(TypeError, match="pair"):
        lstm(np.zeros((B, I)), np.zeros((B, H)))
    lstm(np.zeros((B, I)))
    with pytest.raises(ValueError, match=r"\(B, H\)"):
        lstm.backward(np.zeros((B + 1, H)))
