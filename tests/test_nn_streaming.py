"""fastrnn.nn.streaming.Stream: feeding a sequence in chunks of any sizes (single steps
included) gives the outputs and final state of one full layer call in eval mode; state
handling, weight snapshots, bad input, and a single step that allocates nothing."""
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastrnn
from fastrnn.nn.streaming import Stream

I, H, T = 4, 5, 11

#: name -> (layer class, options)
LAYERS = {
    "lstm": (fastrnn.LSTM, {}),
    "gru": (fastrnn.GRU, {}),
    "gru_reset_before": (fastrnn.GRU, {"reset_after": False}),
    "rnn_tanh": (fastrnn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (fastrnn.RNN, {"nonlinearity": "relu"}),
}
TOL = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=1e-5, atol=1e-6)}


def _layer(name, layers=1, dtype=np.float64, seed=0, **extra):
    cls, options = LAYERS[name]
    return cls(I, H, num_layers=layers, dtype=dtype, seed=seed, **options, **extra)


def _chunking(rng, steps):
    """Random chunk sizes summing to ``steps``: zeros, ones and longer runs mixed."""
    sizes = []
    while sum(sizes) < steps:
        sizes.append(int(rng.choice([0, 1, 1, 2, 3, 5])))
    sizes[-1] -= sum(sizes) - steps
    return sizes


def _feed(stream, x, sizes, batch_first=False):
    """Feed x in chunks of ``sizes``; a size-1 chunk alternates between step(x_t) and step(x[t:t+1])."""
    outputs, t = [], 0
    for k, size in enumerate(sizes):
        if size == 1 and k % 2 == 0:
            x_t = x[:, t] if batch_first else x[t]
            y_t = stream.step(x_t)
            assert y_t.shape[:-1] == x_t.shape[:-1]
            outputs.append(y_t[:, None] if batch_first else y_t[None])
            outputs[-1] = outputs[-1].copy()  # the step's output buffer is reused
        else:
            outputs.append(stream.step(x[:, t:t + size] if batch_first else x[t:t + size]))
        t += size
    return np.concatenate(outputs, axis=1 if batch_first else 0)


def _assert_state(stream, expected, tol):
    got = stream.state
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == 2
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, **tol)
    else:
        np.testing.assert_allclose(got, expected, **tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("name", list(LAYERS))
def test_chunked_equals_full_call(name, layers, batch, dtype):
    rng = np.random.default_rng(layers * 10 + batch)
    layer = _layer(name, layers, dtype, seed=batch).eval()
    x = rng.uniform(-1, 1, (T, batch, I)).astype(dtype)
    y, final = layer(x)
    stream = Stream(layer, batch)
    for attempt in range(3):
        sizes = [1] * T if attempt == 0 else _chunking(rng, T)
        stream.reset()
        y_stream = _feed(stream, x, sizes)
        assert y_stream.dtype == dtype and y_stream.shape == y.shape
        np.testing.assert_allclose(y_stream, y, err_msg=str(sizes), **TOL[dtype])
        _assert_state(stream, final, TOL[dtype])

    # from a given initial state, set through the state setter
    initial = tuple(rng.uniform(-1, 1, s.shape).astype(dtype) for s in (final if name == "lstm" else (final,)))
    initial = initial if name == "lstm" else initial[0]
    y, final = layer(x, initial)
    stream.state = initial
    np.testing.assert_allclose(_feed(stream, x, _chunking(rng, T)), y, **TOL[dtype])
    _assert_state(stream, final, TOL[dtype])


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 6), min_size=1, max_size=8), seed=st.integers(0, 2**16))
def test_any_chunking_lstm(sizes, seed):
    rng = np.random.default_rng(seed)
    layer = _layer("lstm", 2, np.float64, seed=1).eval()
    x = rng.uniform(-1, 1, (sum(sizes), 2, I))
    stream = Stream(layer, 2)
    y_stream = _feed(stream, x, sizes)
    if x.shape[0] == 0:
        assert y_stream.shape == (0, 2, H)
        np.testing.assert_array_equal(stream.state[0], 0)
        return
    y, final = layer(x)
    np.testing.assert_allclose(y_stream, y, **TOL[np.float64])
    _assert_state(stream, final, TOL[np.float64])


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_batch_first_and_unbatched_steps(name):
    rng = np.random.default_rng(3)
    layer = _layer(name, 2, batch_first=True).eval()
    x = rng.uniform(-1, 1, (3, T, I))
    y, final = layer(x)
    stream = Stream(layer, 3)
    np.testing.assert_allclose(_feed(stream, x, [2, 1, 4, 1, 3], batch_first=True), y, **TOL[np.float64])
    _assert_state(stream, final, TOL[np.float64])
    # batch_size 1: a step may be unbatched (I,) and then returns (H,)
    x1 = x[:1]
    y1, _ = layer(x1)
    stream = Stream(layer, 1)
    for t in range(T):
        y_t = stream.step(x1[0, t])
        assert y_t.shape == (H,)
        np.testing.assert_allclose(y_t, y1[0, t], **TOL[np.float64])


@pytest.mark.parametrize("batch", [1, 3])
def test_lstm_projection(batch):
    rng = np.random.default_rng(4)
    layer = _layer("lstm", 2, proj_size=3).eval()
    x = rng.uniform(-1, 1, (T, batch, I))
    y, (h_n, c_n) = layer(x)
    stream = Stream(layer, batch)
    np.testing.assert_allclose(_feed(stream, x, [1, 3, 1, 1, 5]), y, **TOL[np.float64])
    h, c = stream.state
    assert h.shape == (2, batch, 3) and c.shape == (2, batch, H)
    _assert_state(stream, (h_n, c_n), TOL[np.float64])


def test_stream_ignores_training_mode_and_dropout():
    layer = _layer("gru", 2, dropout=0.5)  # training mode: the layer would apply dropout
    x = np.random.default_rng(5).uniform(-1, 1, (T, 1, I))
    stream = Stream(layer, 1)
    y_stream = _feed(stream, x, [4, 1, 6])
    y, _ = layer.eval()(x)
    np.testing.assert_allclose(y_stream, y, **TOL[np.float64])


def test_reset_restarts_and_state_is_a_copy():
    layer = _layer("lstm", 2).eval()
    x = np.random.default_rng(6).uniform(-1, 1, (T, 3, I))
    stream = Stream(layer, 3)
    first = stream.step(x)
    h, c = stream.state
    assert h.shape == c.shape == (2, 3, H) and np.abs(h).min() > 0
    h[...] = 0  # a copy: the stream's state is untouched
    np.testing.assert_array_equal(stream.state[0], layer(x)[1][0])
    assert stream.reset() is stream
    np.testing.assert_array_equal(stream.state[0], 0)
    np.testing.assert_array_equal(stream.state[1], 0)
    np.testing.assert_array_equal(stream.step(x), first)
    stream.state = None
    np.testing.assert_array_equal(stream.step(x), first)


def test_state_setter_validates():
    lstm = Stream(_layer("lstm", 2).eval(), 3)
    good = np.zeros((2, 3, H))
    with pytest.raises(TypeError, match="pair"):
        lstm.state = good
    with pytest.raises(ValueError, match=r"\(num_layers, B, H\)"):
        lstm.state = (good, np.zeros((2, 2, H)))
    with pytest.raises(TypeError, match="dtype float32"):
        lstm.state = (good, good.astype(np.float32))
    lstm.state = (good + 1, good + 2)  # a valid pair is taken whole
    np.testing.assert_array_equal(lstm.state[1], 2)
    rnn = Stream(_layer("rnn_tanh").eval(), 3)
    with pytest.raises(ValueError, match="3-D"):
        rnn.state = np.zeros((3, H))
    rnn.state = np.ones((1, 3, H))
    np.testing.assert_array_equal(rnn.state, 1)


def test_refresh_rereads_weights():
    layer = _layer("gru", 2).eval()
    other = _layer("gru", 2, seed=99).eval()
    x = np.random.default_rng(7).uniform(-1, 1, (T, 1, I))
    stream = Stream(layer, 1)
    before = stream.step(x)
    layer.load_state_dict(other.state_dict())
    np.testing.assert_array_equal(stream.reset().step(x), before)  # a snapshot
    assert stream.refresh() is stream
    np.testing.assert_allclose(stream.reset().step(x), other(x)[0], **TOL[np.float64])


def test_layer_stream_method_if_present():
    layer = _layer("lstm")
    if not hasattr(layer, "stream"):
        pytest.skip("the layers have no stream() method yet")
    stream = layer.stream(batch_size=2)
    assert isinstance(stream, Stream) and stream.batch_size == 2 and stream.layer is layer


# --------------------------------------------------------------------------- errors

def test_bidirectional_and_other_layers_refused():
    with pytest.raises(ValueError, match="bidirectional"):
        Stream(_layer("lstm", bidirectional=True))
    with pytest.raises(TypeError, match="RNN, LSTM or GRU"):
        Stream(fastrnn.Linear(3, 4))
    with pytest.raises(ValueError, match="batch_size"):
        Stream(_layer("gru"), 0)
    with pytest.raises(TypeError, match="batch_size"):
        Stream(_layer("gru"), 1.0)


@pytest.mark.parametrize("x,error,match", [
    (np.zeros((3, I + 1)), ValueError, r"\(batch_size, input_size\)"),
    (np.zeros((2, I)), ValueError, r"\(batch_size, input_size\)"),
    (np.zeros(I), ValueError, "batch_size=3"),
    (np.zeros((3, I), np.float32), TypeError, "dtype float32"),
    (np.zeros((3, I), np.int32), TypeError, "float32 or float64"),
    (np.zeros((5, 2, I)), ValueError, r"\(T, B, I\)"),
    (np.zeros((5, 3, I + 1)), ValueError, r"\(T, B, I\)"),
    (np.zeros((1, 5, 3, I)), ValueError, "2-D"),
    (None, TypeError, "None"),
])
def test_bad_step_input(x, error, match):
    stream = Stream(_layer("lstm").eval(), 3)
    with pytest.raises(error, match=match):
        stream.step(x)


def test_slow_path_inputs():
    """Lists and non-contiguous arrays are accepted (validated and copied)."""
    layer = _layer("rnn_tanh").eval()
    x = np.random.default_rng(8).uniform(-1, 1, (2, 3, 2 * I))[:, :, ::2]
    expected = layer(x)[0]
    stream = Stream(layer, 3)
    np.testing.assert_allclose(stream.step(x[0]), expected[0], **TOL[np.float64])
    np.testing.assert_allclose(stream.step(x[1].tolist()), expected[1], **TOL[np.float64])


# --------------------------------------------------------------------------- no allocation per step

@pytest.mark.parametrize("name", ["lstm", "gru", "gru_reset_before", "rnn_relu"])
def test_single_step_allocates_nothing(name):
    """Robust check: tracemalloc traces numpy's data allocations and Numba's (NRT allocates
    through PyMem_RawMalloc), so the *peak* of traced memory over 200 steps, relative to the
    start, would include any buffer allocated during a step, even one freed right after.
    With H = 512 in float32 the smallest per-step buffer (one (1, H) output) is 2 KiB; the
    bound of 1 KiB leaves room for the few small Python objects the interpreter and the
    dispatcher create and free. Also: the returned array is the same read-only object
    every step, and the net growth over 200 steps is bounded too."""
    hidden = 512
    cls, options = LAYERS[name]
    layer = cls(8, hidden, num_layers=2, seed=0, **options)
    stream = Stream(layer, 1)
    xs = np.random.default_rng(9).standard_normal((200, 1, 8)).astype(np.float32)
    first = stream.step(xs[0])  # compiles; warm-up
    assert not first.flags.writeable
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for x in xs:
            out = stream.step(x)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out is first
    assert peak - start < 1024, f"a step allocated: traced peak grew by {peak - start} bytes"
    assert current - start < 1024
