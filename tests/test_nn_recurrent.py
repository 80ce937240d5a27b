"""fastrnn.RNN/LSTM/GRU against torch.nn.RNN/LSTM/GRU with the same state_dict:
outputs, final states and the gradients of inputs, initial states and every parameter."""
import itertools

import numpy as np
import pytest

import fastrnn
from fastrnn.nn.recurrent import _reverse_within_lengths

CLASSES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
T, B, I, H = 5, 3, 4, 6
LENGTHS = np.array([5, 1, 3])


def _torch_run(torch, cell, layer_kwargs, x, h0, lengths, dy, dh_n, dtype):
    t_dtype = torch.float64 if dtype == np.float64 else torch.float32
    module = getattr(torch.nn, CLASSES[cell])(I, H, **layer_kwargs).to(t_dtype)
    xt = torch.tensor(x, requires_grad=True)
    states = None
    if h0 is not None:
        states = tuple(torch.tensor(s, requires_grad=True) for s in h0)
    batch_first = layer_kwargs.get("batch_first", False)
    inp = xt
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=batch_first,
                                                      enforce_sorted=False)
    out, final = module(inp, (states if cell == "lstm" else states[0]) if states else None)
    if lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    finals = final if cell == "lstm" else (final,)
    loss = (out * torch.tensor(dy)).sum() + sum((f * torch.tensor(d)).sum() for f, d in zip(finals, dh_n))
    loss.backward()
    grads = {"x": xt.grad.numpy()}
    if states:
        grads.update({f"s{k}": s.grad.numpy() for k, s in enumerate(states)})
    grads.update({name: p.grad.numpy() for name, p in module.named_parameters()})
    return module, out.detach().numpy(), [f.detach().numpy() for f in finals], grads


COMBOS = [(cell, *rest, 0) for cell in ("rnn", "lstm", "gru")
          for rest in itertools.product([1, 2, 3], [False, True], [False, True], [True, False],
                                        [None, "lengths"], [False, True])]
COMBOS += [("lstm", *rest, 3) for rest in itertools.product([1, 2], [False, True], [False, True], [True, False],
                                                            [None, "lengths"], [False, True])]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell,layers,bidirectional,batch_first,bias,lengths,given_h0,proj", COMBOS)
def test_matches_torch(cell, layers, bidirectional, batch_first, bias, lengths, given_h0, proj, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(layers * 7 + bidirectional * 3 + batch_first)
    kwargs = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias)
    if proj:
        kwargs["proj_size"] = proj
    dirs = 2 if bidirectional else 1
    out = proj or H
    x = rng.uniform(-1, 1, (B, T, I) if batch_first else (T, B, I)).astype(dtype)
    n_states = 2 if cell == "lstm" else 1
    widths = [out, H][:n_states]
    h0 = [rng.uniform(-1, 1, (layers * dirs, B, w)).astype(dtype) for w in widths] if given_h0 else None
    lens = LENGTHS if lengths else None
    y_shape = (B, T, dirs * out) if batch_first else (T, B, dirs * out)
    dy = rng.uniform(-1, 1, y_shape).astype(dtype)
    dh_n = [rng.uniform(-1, 1, (layers * dirs, B, w)).astype(dtype) for w in widths]
    module, y_t, finals_t, grads_t = _torch_run(torch, cell, kwargs, x, h0, lens, dy, dh_n, dtype)

    ours = getattr(fastrnn, CLASSES[cell])(I, H, dtype=dtype, **kwargs)
    ours.load_state_dict(module.state_dict())
    state_in = None if h0 is None else (tuple(h0) if cell == "lstm" else h0[0])
    y, final = ours(x, state_in, lengths=lens)
    finals = list(final) if cell == "lstm" else [final]
    dx, d_initial = ours.backward(dy, tuple(dh_n) if cell == "lstm" else dh_n[0])
    d_initial = list(d_initial) if cell == "lstm" else [d_initial]

    if dtype == np.float64:
        fwd, bwd = dict(rtol=1e-9, atol=1e-12), dict(rtol=1e-9, atol=1e-12)
    else:  # float32: see tests/cases.tolerances; stacking compounds the per-layer error
        fwd, bwd = dict(rtol=1e-4, atol=5e-6), dict(rtol=1e-4, atol=5e-5)
    np.testing.assert_allclose(y, y_t, **fwd)
    for a, b in zip(finals, finals_t):
        np.testing.assert_allclose(a, b, **fwd)
    np.testing.assert_allclose(dx, grads_t["x"], **bwd)
    if h0 is not None:
        for k, d in enumerate(d_initial):
            np.testing.assert_allclose(d, grads_t[f"s{k}"], **bwd)
    for name, param in ours.named_parameters():
        np.testing.assert_allclose(param.grad, grads_t[name], **bwd, err_msg=name)


def test_parameter_names_and_shapes_match_torch():
    torch = pytest.importorskip("torch")
    variants = [(cls, {}) for cls in CLASSES.values()] + [("LSTM", {"proj_size": 2})]
    for cls, extra in variants:
        ref = getattr(torch.nn, cls)(3, 5, num_layers=2, bidirectional=True, **extra)
        ours = getattr(fastrnn, cls)(3, 5, num_layers=2, bidirectional=True, **extra)
        assert [(n, tuple(p.shape)) for n, p in ref.named_parameters()] == \
               [(n, p.shape) for n, p in ours.named_parameters()]


def test_unbatched_input():
    torch = pytest.importorskip("torch")
    ours = fastrnn.GRU(I, H, num_layers=2, dtype=np.float64, seed=0)
    ref = torch.nn.GRU(I, H, num_layers=2).double()
    ref.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(1).uniform(-1, 1, (T, I))
    y, h = ours(x)
    y_t, h_t = ref(torch.tensor(x))
    assert y.shape == (T, H) and h.shape == (2, H)
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(h, h_t.detach().numpy(), rtol=1e-10)


def test_reverse_within_lengths_is_an_involution():
    a = np.arange(5 * 3).reshape(5, 3, 1).astype(float)
    r = _reverse_within_lengths(a, np.array([5, 1, 3]))
    assert r[:, 2, 0].tolist() == [8, 5, 2, 11, 14]
    np.testing.assert_array_equal(_reverse_within_lengths(r, np.array([5, 1, 3])), a)


def test_dropout_between_layers_is_reproducible_and_off_in_eval():
    x = np.random.default_rng(0).uniform(-1, 1, (T, B, I)).astype(np.float32)
    a = fastrnn.LSTM(I, H, num_layers=2, dropout=0.5, seed=3)
    b = fastrnn.LSTM(I, H, num_layers=2, dropout=0.5, seed=3)
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    plain = fastrnn.LSTM(I, H, num_layers=2, seed=3)
    assert not np.allclose(a(x)[0], plain(x)[0])
    a.eval(), plain.eval()
    np.testing.assert_array_equal(a(x)[0], plain(x)[0])


def test_backward_needs_a_training_forward():
    layer = fastrnn.RNN(I, H)
    with pytest.raises(RuntimeError, match="needs a forward call in training mode"):
        layer.backward(np.zeros((T, B, H), np.float32))
    layer.eval()
    layer(np.zeros((T, B, I), np.float32))
    with pytest.raises(RuntimeError, match="needs a forward call in training mode"):
        layer.backward(np.zeros((T, B, H), np.float32))


def test_bad_input_is_named():
    layer = fastrnn.LSTM(I, H, num_layers=2)
    with pytest.raises(ValueError, match=r"x must have 4 features \(input_size\)"):
        layer(np.zeros((T, B, 3), np.float32))
    with pytest.raises(TypeError, match=r"x has dtype float64 but the layer has dtype float32"):
        layer(np.zeros((T, B, I)))
    with pytest.raises(ValueError, match=r"h0 must have shape \(num_layers \* num_directions, B, H\)"):
        layer(np.zeros((T, B, I), np.float32), (np.zeros((1, B, H), np.float32), np.zeros((2, B, H), np.float32)))
    with pytest.raises(ValueError, match="lengths must lie in 1..T"):
        layer(np.zeros((T, B, I), np.float32), lengths=[0, 1, 2])


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(hidden_size=0), ValueError, r"hidden_size must be >= 1, got 0"),  # not a proj_size error
    (dict(hidden_size=None), TypeError, r"hidden_size must be an int"),
    (dict(seed=-1), TypeError, r"seed must be None, a non-negative int or a np.random.Generator, got -1"),
    (dict(seed="a"), TypeError, r"seed must be None, a non-negative int"),
    (dict(dropout=None), TypeError, r"dropout must be a number in \[0, 1\), got None"),
    (dict(dropout="x"), TypeError, r"dropout must be a number in \[0, 1\)"),
    (dict(dropout=1.0), ValueError, r"dropout must be in \[0, 1\), got 1.0"),
    (dict(dtype="no such dtype"), TypeError, r"dtype must be np.float32 or np.float64, got 'no such dtype'"),
    (dict(dtype=np.int32), TypeError, r"dtype must be np.float32 or np.float64, got int32"),
])
@pytest.mark.parametrize("cls", [fastrnn.LSTM, fastrnn.GRU, fastrnn.RNN])
def test_bad_constructor_arguments_are_named(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(**{"input_size": I, "hidden_size": H, **kwargs})


def test_wrong_dy_shape_is_quoted_in_the_callers_layout():
    layer = fastrnn.GRU(3, 4, batch_first=True)
    layer.train()
    y, _ = layer(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"dy must have shape .* = \(2, 5, 4\), got shape \(2, 4, 4\)"):
        layer.backward(np.zeros((2, 4, 4), np.float32))


def test_ragged_input_is_named():
    with pytest.raises(TypeError, match=r"x must be array-like, got list"):
        fastrnn.GRU(3, H)([[1.0, 2.0, 3.0], [1.0]])
    with pytest.raises(TypeError, match=r"x must be array-like, got list"):
        fastrnn.GRUCell(3, H)([[1.0, 2.0, 3.0], [1.0]])


LAYER_FIXTURES = sorted((__import__("pathlib").Path(__file__).parent / "fixtures").glob("layer_*.npz"))


@pytest.mark.parametrize("path", LAYER_FIXTURES, ids=lambda p: p.stem)
def test_stored_torch_layer_fixture(path):
    """Torch conformance without torch: outputs and gradients stored by make_layer_fixtures.py."""
    import json
    with np.load(path, allow_pickle=False) as data:
        fx = {k: data[k] for k in data.files}
    meta = json.loads(str(fx["meta"]))
    layer = getattr(fastrnn, meta["class"])(I, H, dtype=np.float64, **meta["kwargs"])
    layer.load_state_dict({k[len("param."):]: v for k, v in fx.items() if k.startswith("param.")})
    is_lstm = meta["class"] == "LSTM"
    states = [fx[f"state{k}"] for k in range(2 if is_lstm else 1)]
    y, final = layer(fx["x"], tuple(states) if is_lstm else states[0], lengths=fx.get("lengths"))
    finals = list(final) if is_lstm else [final]
    d_finals = [fx[f"dfinal{k}"] for k in range(len(states))]
    dx, d_states = layer.backward(fx["dy"], tuple(d_finals) if is_lstm else d_finals[0])
    d_states = list(d_states) if is_lstm else [d_states]
    tol = dict(rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(y, fx["y"], **tol)
    np.testing.assert_allclose(dx, fx["dx"], **tol)
    for k in range(len(states)):
        np.testing.assert_allclose(finals[k], fx[f"final{k}"], **tol)
        np.testing.assert_allclose(d_states[k], fx[f"dstate{k}"], **tol)
    for name, param in layer.named_parameters():
        np.testing.assert_allclose(param.grad, fx[f"grad.{name}"], err_msg=name, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls,extra", [("RNN", {}), ("GRU", {}), ("LSTM", {}), ("LSTM", {"proj_size": 2})])
def test_state_dict_round_trip_torch_fastrnn_torch_is_bit_exact(cls, extra, dtype):
    torch = pytest.importorskip("torch")
    t_dtype = torch.float64 if dtype == np.float64 else torch.float32
    source = getattr(torch.nn, cls)(3, 5, num_layers=2, bidirectional=True, **extra).to(t_dtype)
    ours = getattr(fastrnn, cls)(3, 5, num_layers=2, bidirectional=True, dtype=dtype, **extra)
    ours.load_state_dict(source.state_dict())
    back = getattr(torch.nn, cls)(3, 5, num_layers=2, bidirectional=True, **extra).to(t_dtype)
    back.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    for (name, a), (name_b, b) in zip(source.state_dict().items(), back.state_dict().items()):
        assert name == name_b and torch.equal(a, b), name


@pytest.mark.parametrize("cls,extra", [("RNN", {"nonlinearity": "relu"}), ("GRU", {"reset_after": False}),
                                       ("LSTM", {"proj_size": 2})])
def test_save_load_round_trip(tmp_path, cls, extra):
    layer = getattr(fastrnn, cls)(3, 5, num_layers=2, bidirectional=True, batch_first=True, seed=4, **extra)
    path = tmp_path / "layer.npz"
    fastrnn.nn.save(layer, path)
    again = fastrnn.nn.load(path)
    assert type(again) is type(layer) and again.config() == layer.config()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 4, 3)).astype(np.float32)
    layer.eval(), again.eval()
    np.testing.assert_array_equal(again(x)[0], layer(x)[0])


def test_state_dict_errors_name_every_bad_key():
    layer = fastrnn.GRU(3, 5, num_layers=2)
    state = layer.state_dict()
    state.pop("weight_hh_l1")
    state["weight_ih_l0"] = np.zeros((2, 2), np.float32)
    state["extra"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError) as info:
        layer.load_state_dict(state)
    message = str(info.value)
    assert "weight_hh_l1" in message and "weight_ih_l0" in message and "extra" in message


def test_lengths_with_wrong_batch_size():
    layer = fastrnn.LSTM(I, H)
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(3,\), got shape \(2,\)"):
        layer(np.zeros((T, B, I), np.float32), lengths=[1, 2])
