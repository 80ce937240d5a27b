"""fastrnn.convert: Keras and haste weight layouts, checked against those libraries' own math."""
import os

import numpy as np
import pytest

import fastrnn
import fastrnn.convert as cv
from fastrnn import functional as F

RNG = np.random.default_rng(7)
T, B, I, H = 5, 3, 4, 6


def _rand(*shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype) * 0.5


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


# ---------------------------------------------------------------------------- other libraries' math, their layouts

def keras_lstm(x, kernel, recurrent_kernel, bias):
    """Keras LSTM (gates i, f, c, o) over x (T, B, I) from zero state; returns y (T, B, H)."""
    h = np.zeros((x.shape[1], recurrent_kernel.shape[0]))
    c = np.zeros_like(h)
    ys = []
    for x_t in x:
        z = x_t @ kernel + h @ recurrent_kernel + (0 if bias is None else bias)
        i, f, g, o = np.split(z, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        ys.append(h)
    return np.stack(ys)


def keras_gru(x, kernel, recurrent_kernel, bias, reset_after):
    """Keras GRU (gates z, r, h), both forms, from zero state."""
    hidden = recurrent_kernel.shape[0]
    h = np.zeros((x.shape[1], hidden))
    if bias is None:
        b_in, b_rec = 0, 0
    elif reset_after:
        b_in, b_rec = bias[0], bias[1]
    else:
        b_in, b_rec = bias, 0
    ys = []
    for x_t in x:
        x_z, x_r, x_h = np.split(x_t @ kernel + b_in, 3, axis=1)
        u_z, u_r, u_h = np.split(recurrent_kernel, 3, axis=1)
        if reset_after:
            rec_z, rec_r, rec_h = np.split(h @ recurrent_kernel + b_rec, 3, axis=1)
            z, r = _sigmoid(x_z + rec_z), _sigmoid(x_r + rec_r)
            hh = np.tanh(x_h + r * rec_h)
        else:
            z, r = _sigmoid(x_z + h @ u_z), _sigmoid(x_r + h @ u_r)
            hh = np.tanh(x_h + (r * h) @ u_h)
        h = z * h + (1 - z) * hh
        ys.append(h)
    return np.stack(ys)


def keras_simple_rnn(x, kernel, recurrent_kernel, bias):
    h = np.zeros((x.shape[1], recurrent_kernel.shape[0]))
    ys = []
    for x_t in x:
        h = np.tanh(x_t @ kernel + h @ recurrent_kernel + bias)
        ys.append(h)
    return np.stack(ys)


def haste_lstm(x, kernel, recurrent_kernel, bias):
    """haste's LSTM (gates i, g, f, o), as its reference script computes it."""
    h = np.zeros((x.shape[1], recurrent_kernel.shape[0]))
    c = np.zeros_like(h)
    ys = []
    for x_t in x:
        i, g, f, o = np.split(h @ recurrent_kernel + x_t @ kernel + bias, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        ys.append(h)
    return np.stack(ys)


def haste_gru(x, kernel, recurrent_kernel, bias, recurrent_bias):
    """haste's GRU (gates z, r, n; reset after the recurrent product)."""
    h = np.zeros((x.shape[1], recurrent_kernel.shape[0]))
    ys = []
    for x_t in x:
        vx = np.split(x_t @ kernel + bias, 3, axis=1)
        vh = np.split(h @ recurrent_kernel + recurrent_bias, 3, axis=1)
        z, r = _sigmoid(vx[0] + vh[0]), _sigmoid(vx[1] + vh[1])
        g = np.tanh(vx[2] + r * vh[2])
        h = z * h + (1 - z) * g
        ys.append(h)
    return np.stack(ys)


def _fastrnn(cell, x, w, **options):
    run = {"lstm": F.lstm, "gru": F.gru, "rnn": F.rnn}[cell]
    return run(x, w["weight_ih"], w["weight_hh"], w["bias_ih"], w["bias_hh"], **options)[0]


# ---------------------------------------------------------------------------- per-layer conversions

@pytest.mark.parametrize("use_bias", [True, False])
def test_keras_lstm_runs_the_same(use_bias):
    x = _rand(T, B, I)
    kernel, recurrent, bias = _rand(I, 4 * H), _rand(H, 4 * H), (_rand(4 * H) if use_bias else None)
    w = cv.lstm_from_keras(kernel, recurrent, bias)
    assert w["weight_ih"].shape == (4 * H, I) and w["weight_hh"].shape == (4 * H, H)
    np.testing.assert_allclose(_fastrnn("lstm", x, w), keras_lstm(x, kernel, recurrent, bias), rtol=1e-12, atol=1e-12)
    back = cv.lstm_to_keras(**w)
    assert len(back) == (3 if use_bias else 2)
    for a, b in zip(back, [kernel, recurrent, bias]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_gru_both_forms_run_the_same(reset_after):
    x = _rand(T, B, I)
    kernel, recurrent = _rand(I, 3 * H), _rand(H, 3 * H)
    bias = _rand(2, 3 * H) if reset_after else _rand(3 * H)
    w = cv.gru_from_keras(kernel, recurrent, bias)
    want = keras_gru(x, kernel, recurrent, bias, reset_after)
    np.testing.assert_allclose(_fastrnn("gru", x, w, reset_after=reset_after), want, rtol=1e-12, atol=1e-12)
    back = cv.gru_to_keras(**w, reset_after=reset_after)
    for a, b in zip(back, [kernel, recurrent, bias]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="reset_after"):
        cv.gru_from_keras(kernel, recurrent, bias, reset_after=not reset_after)


def test_keras_gru_without_bias_needs_the_form():
    kernel, recurrent = _rand(I, 3 * H), _rand(H, 3 * H)
    with pytest.raises(ValueError, match="reset_after"):
        cv.gru_from_keras(kernel, recurrent)
    x = _rand(T, B, I)
    w = cv.gru_from_keras(kernel, recurrent, reset_after=False)
    assert w["bias_ih"] is None
    np.testing.assert_allclose(_fastrnn("gru", x, w, reset_after=False), keras_gru(x, kernel, recurrent, None, False),
                               rtol=1e-12, atol=1e-12)
    assert len(cv.gru_to_keras(**w)) == 2


def test_torch_gru_to_keras_reset_after():
    w = {"weight_ih": _rand(3 * H, I), "weight_hh": _rand(3 * H, H), "bias_ih": _rand(3 * H), "bias_hh": _rand(3 * H)}
    kernel, recurrent, bias = cv.gru_to_keras(**w)
    assert bias.shape == (2, 3 * H)
    x = _rand(T, B, I)
    np.testing.assert_allclose(keras_gru(x, kernel, recurrent, bias, True), _fastrnn("gru", x, w),
                               rtol=1e-12, atol=1e-12)
    again = cv.gru_from_keras(kernel, recurrent, bias)
    for name in w:
        np.testing.assert_array_equal(again[name], w[name])


def test_keras_simple_rnn_runs_the_same():
    x = _rand(T, B, I)
    kernel, recurrent, bias = _rand(I, H), _rand(H, H), _rand(H)
    w = cv.rnn_from_keras(kernel, recurrent, bias)
    np.testing.assert_allclose(_fastrnn("rnn", x, w), keras_simple_rnn(x, kernel, recurrent, bias),
                               rtol=1e-12, atol=1e-12)
    for a, b in zip(cv.rnn_to_keras(**w), [kernel, recurrent, bias]):
        np.testing.assert_array_equal(a, b)


def test_torch_lstm_biases_are_summed_for_keras():
    w = {"weight_ih": _rand(4 * H, I), "weight_hh": _rand(4 * H, H), "bias_ih": _rand(4 * H), "bias_hh": _rand(4 * H)}
    kernel, recurrent, bias = cv.lstm_to_keras(**w)
    np.testing.assert_array_equal(bias, w["bias_ih"] + w["bias_hh"])
    x = _rand(T, B, I)
    np.testing.assert_allclose(keras_lstm(x, kernel, recurrent, bias), _fastrnn("lstm", x, w), rtol=1e-12, atol=1e-12)


def test_haste_lstm_and_gru_run_the_same():
    x = _rand(T, B, I)
    params = {"kernel": _rand(I, 4 * H), "recurrent_kernel": _rand(H, 4 * H), "bias": _rand(4 * H)}
    w = cv.lstm_from_haste(**params)
    np.testing.assert_allclose(_fastrnn("lstm", x, w), haste_lstm(x, **params), rtol=1e-12, atol=1e-12)
    for name, value in cv.lstm_to_haste(**w).items():
        np.testing.assert_array_equal(value, params[name])

    params = {"kernel": _rand(I, 3 * H), "recurrent_kernel": _rand(H, 3 * H), "bias": _rand(3 * H),
              "recurrent_bias": _rand(3 * H)}
    w = cv.gru_from_haste(**params)
    np.testing.assert_allclose(_fastrnn("gru", x, w), haste_gru(x, **params), rtol=1e-12, atol=1e-12)
    for name, value in cv.gru_to_haste(**w).items():
        np.testing.assert_array_equal(value, params[name])


def test_haste_state_dicts_load_into_layers():
    layer = fastrnn.GRU(I, H, dtype=np.float64, seed=0)
    params = cv.to_haste("gru", layer.state_dict())
    x = _rand(T, B, I)
    np.testing.assert_allclose(haste_gru(x, **params), layer(x)[0], rtol=1e-12, atol=1e-12)
    other = fastrnn.GRU(I, H, dtype=np.float64, seed=1)
    other.load_state_dict(cv.from_haste("gru", params))
    np.testing.assert_allclose(other(x)[0], layer(x)[0], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="single-layer"):
        cv.to_haste("lstm", fastrnn.LSTM(I, H, num_layers=2).state_dict())


def test_dtype_kept_and_bad_shapes_refused():
    w = cv.lstm_from_keras(_rand(I, 4 * H, dtype=np.float32), _rand(H, 4 * H, dtype=np.float32),
                           _rand(4 * H, dtype=np.float32))
    assert all(v.dtype == np.float32 for v in w.values())
    with pytest.raises(ValueError, match="recurrent_kernel"):
        cv.lstm_from_keras(_rand(I, 4 * H), _rand(H + 1, 4 * H))
    with pytest.raises(ValueError, match=r"bias must have shape \(2, 3H\)"):
        cv.gru_from_keras(_rand(I, 3 * H), _rand(H, 3 * H), _rand(3, 3 * H))
    with pytest.raises(TypeError, match=r"bias has dtype float32 but the weights have dtype float64"):
        cv.gru_from_keras(_rand(I, 3 * H), _rand(H, 3 * H), _rand(2, 3 * H, dtype=np.float32))
    with pytest.raises(TypeError, match=r"bias must hold floating-point values"):
        cv.gru_from_keras(_rand(I, 3 * H), _rand(H, 3 * H), np.zeros(3 * H, np.int64))
    with pytest.raises(TypeError, match=r"weight_hh has dtype float64 but weight_ih has float32"):
        cv.lstm_to_keras(_rand(4 * H, I, dtype=np.float32), _rand(4 * H, H))
    with pytest.raises(ValueError, match="proj"):
        cv.to_keras("lstm", fastrnn.LSTM(I, H, proj_size=2).state_dict())
    with pytest.raises(ValueError, match="cell"):
        cv.to_keras("transformer", {})


# ---------------------------------------------------------------------------- stacks, directions, state dicts

def _keras_stack(cell, x, weights, bidirectional, reset_after=True):
    """A stack of Keras layers (optionally Bidirectional, concat merge) from the flat weight list."""
    run = {"lstm": keras_lstm, "gru": lambda x, k, r, b: keras_gru(x, k, r, b, reset_after),
           "rnn": keras_simple_rnn}[cell]
    dirs = 2 if bidirectional else 1
    for start in range(0, len(weights), 3 * dirs):
        forward = run(x, *weights[start:start + 3])
        if bidirectional:
            backward = run(x[::-1], *weights[start + 3:start + 6])[::-1]
            forward = np.concatenate([forward, backward], axis=2)
        x = forward
    return x


@pytest.mark.parametrize("cell,cls,options", [("lstm", fastrnn.LSTM, {}), ("gru", fastrnn.GRU, {}),
                                              ("gru", fastrnn.GRU, {"reset_after": False}), ("rnn", fastrnn.RNN, {})])
def test_state_dict_round_trip_through_keras_stack(cell, cls, options):
    layer = cls(I, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=3, **options)
    reset_after = options.get("reset_after", True)
    weights = cv.to_keras(cell, layer.state_dict(), reset_after=reset_after)
    assert len(weights) == 2 * 2 * 3
    x = _rand(T, B, I)
    np.testing.assert_allclose(_keras_stack(cell, x, weights, True, reset_after), layer(x)[0], rtol=1e-11, atol=1e-12)
    state = cv.from_keras(cell, weights, bidirectional=True)
    other = cls(I, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=4, **options)
    other.load_state_dict(state)
    np.testing.assert_allclose(other(x)[0], layer(x)[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(cv.to_keras(cell, other.state_dict(), reset_after=reset_after), weights):
        np.testing.assert_array_equal(a, b)


def test_from_keras_counts_arrays():
    with pytest.raises(ValueError, match="multiple of 6"):
        cv.from_keras("lstm", [_rand(I, 4 * H)] * 3, bidirectional=True)
    state = cv.from_keras("lstm", [_rand(I, 4 * H), _rand(H, 4 * H)], use_bias=False)
    assert set(state) == {"weight_ih_l0", "weight_hh_l0"}
    fastrnn.LSTM(I, H, bias=False).load_state_dict(state)


def test_torch_state_dict_values_are_accepted():
    torch = pytest.importorskip("torch")
    ref = torch.nn.GRU(I, H, dtype=torch.float64)
    kernel, recurrent, bias = cv.to_keras("gru", ref.state_dict())
    x = _rand(T, B, I)
    with torch.no_grad():
        want = ref(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(keras_gru(x, kernel, recurrent, bias, True), want, rtol=1e-10, atol=1e-12)


def test_import_fastrnn_stays_free_of_torch_and_onnx():
    import subprocess
    import sys
    code = ("import sys, fastrnn, fastrnn.convert, fastrnn.interop, fastrnn.interop.convert; "
            "bad = [m for m in ('torch', 'onnx', 'onnxruntime', 'keras') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------- Keras itself, when installed

@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "numpy":
        pytest.skip(f"keras runs the {keras.backend.backend()} backend (set KERAS_BACKEND=numpy)")
    return keras


@pytest.mark.parametrize("cell,kind,options", [("lstm", "LSTM", {}), ("gru", "GRU", {"reset_after": True}),
                                               ("gru", "GRU", {"reset_after": False}), ("rnn", "SimpleRNN", {})])
def test_keras_layers_on_converted_weights(keras, cell, kind, options):
    cls = {"lstm": fastrnn.LSTM, "gru": fastrnn.GRU, "rnn": fastrnn.RNN}[cell]
    layer = cls(I, H, dtype=np.float32, seed=5, **options)
    k_layer = getattr(keras.layers, kind)(H, return_sequences=True, **options)
    k_layer.build((None, T, I))
    k_layer.set_weights(cv.to_keras(cell, layer.state_dict(), reset_after=options.get("reset_after", True)))
    x = _rand(B, T, I, dtype=np.float32)
    want = np.asarray(k_layer(x))
    got = layer(np.ascontiguousarray(x.transpose(1, 0, 2)))[0].transpose(1, 0, 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
