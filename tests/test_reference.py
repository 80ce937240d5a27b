"""Tests of the plain-NumPy reference (fastrnn.reference): finite differences,
packed-sequence semantics, dtypes, and conformance with PyTorch (live when
torch is installed, stored fixtures always)."""
import warnings

import numpy as np
import pytest

from fastrnn.reference import (gru_backward, gru_forward, lstm_backward, lstm_forward,
                               rnn_backward, rnn_forward)

try:
    from torch_fixtures import CELLS, fixture_names, load_fixture, make_inputs, run_torch
except ImportError:  # tests/ collected as a package
    from tests.torch_fixtures import CELLS, fixture_names, load_fixture, make_inputs, run_torch

# "case" = cell plus GRU form; inputs come from make_inputs(cell)
CASES = {
    "lstm": ("lstm", True),
    "gru": ("gru", True),
    "gru_reset_before": ("gru", False),
    "rnn_tanh": ("rnn_tanh", True),
    "rnn_relu": ("rnn_relu", True),
}
TINY = dict(T=4, B=3, I=3, H=5)


def reference(cell, inp, reset_after=True):
    """Run forward and backward of the reference on an inputs dict."""
    args = (inp["x"], inp["w_ih"], inp["w_hh"], inp.get("b_ih"), inp.get("b_hh"))
    lengths = inp.get("lengths")
    if cell == "lstm":
        y, h_n, c_n, cache = lstm_forward(*args, h0=inp["h0"], c0=inp["c0"], lengths=lengths)
        grads = lstm_backward(cache, inp["dy"], inp["dh_n"], inp["dc_n"])
        return dict(y=y, h_n=h_n, c_n=c_n), grads
    if cell == "gru":
        y, h_n, cache = gru_forward(*args, h0=inp["h0"], lengths=lengths, reset_after=reset_after)
        grads = gru_backward(cache, inp["dy"], inp["dh_n"])
    else:
        y, h_n, cache = rnn_forward(*args, h0=inp["h0"], lengths=lengths,
                                    nonlinearity=cell.split("_")[1])
        grads = rnn_backward(cache, inp["dy"], inp["dh_n"])
    return dict(y=y, h_n=h_n), grads


def loss(cell, inp, reset_after=True):
    """L = sum(dy*y) + sum(dh_n*h_n) (+ sum(dc_n*c_n)), forward only."""
    args = (inp["x"], inp["w_ih"], inp["w_hh"], inp["b_ih"], inp["b_hh"])
    if cell == "lstm":
        y, h_n, c_n, _ = lstm_forward(*args, h0=inp["h0"], c0=inp["c0"], lengths=inp["lengths"])
        return np.sum(inp["dy"] * y) + np.sum(inp["dh_n"] * h_n) + np.sum(inp["dc_n"] * c_n)
    if cell == "gru":
        y, h_n, _ = gru_forward(*args, h0=inp["h0"], lengths=inp["lengths"],
                                reset_after=reset_after)
    else:
        y, h_n, _ = rnn_forward(*args, h0=inp["h0"], lengths=inp["lengths"],
                                nonlinearity=cell.split("_")[1])
    return np.sum(inp["dy"] * y) + np.sum(inp["dh_n"] * h_n)


def differentiable_keys(cell, inp):
    keys = ["x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"] + (["c0"] if cell == "lstm" else [])
    return [k for k in keys if inp[k] is not None]


def assert_results_close(ours, theirs, rtol, atol, keys):
    for k in keys:
        if k not in theirs:
            continue
        if theirs[k] is None:
            assert ours[k] is None, k
            continue
        assert ours[k].dtype == theirs[k].dtype, k
        np.testing.assert_allclose(ours[k], theirs[k], rtol=rtol, atol=atol, err_msg=k)


# ----------------------------------------------------------------------------
# gradients vs central finite differences (float64)
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("case", list(CASES))
def test_gradients_match_finite_differences(case, with_lengths, bias):
    cell, reset_after = CASES[case]
    seed = 10 * list(CASES).index(case) + 2 * with_lengths + bias
    inp = make_inputs(cell, with_lengths=with_lengths, seed=seed, bias=bias, **TINY)
    _, grads = reference(cell, inp, reset_after)
    if not bias:
        assert grads["db_ih"] is None and grads["db_hh"] is None
    eps = 1e-6
    for key in differentiable_keys(cell, inp):
        a = inp[key]
        num = np.empty_like(a)
        for idx in np.ndindex(a.shape):
            orig = a[idx]
            a[idx] = orig + eps
            lp = loss(cell, inp, reset_after)
            a[idx] = orig - eps
            lm = loss(cell, inp, reset_after)
            a[idx] = orig
            num[idx] = (lp - lm) / (2 * eps)
        ana = grads["d" + key]
        assert ana.shape == a.shape and ana.dtype == np.float64, key
        np.testing.assert_allclose(ana, num, rtol=1e-6, atol=1e-8, err_msg=f"d{key}")


# ----------------------------------------------------------------------------
# packed-sequence semantics
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", list(CASES))
def test_lengths_semantics(case):
    cell, reset_after = CASES[case]
    inp = make_inputs(cell, with_lengths=True, seed=7, **TINY)
    lengths = inp["lengths"]
    assert lengths.min() == 1 and lengths.max() == TINY["T"]
    out, grads = reference(cell, inp, reset_after)
    y, h_n = out["y"], out["h_n"]
    for b, n in enumerate(lengths):
        assert np.all(y[n:, b] == 0.0), "padded outputs must be exactly zero"
        if cell != "rnn_relu":                               # relu outputs can be 0
            assert np.all(y[:n, b] != 0.0)
        np.testing.assert_array_equal(h_n[b], y[n - 1, b])   # last valid step

    # each sequence alone, cut to its length, gives the same outputs and state
    for b, n in enumerate(lengths):
        sub = {k: v for k, v in inp.items()}
        sub.update(x=inp["x"][:n, b:b + 1], h0=inp["h0"][b:b + 1], dy=inp["dy"][:n, b:b + 1],
                   dh_n=inp["dh_n"][b:b + 1], lengths=None)
        if cell == "lstm":
            sub.update(c0=inp["c0"][b:b + 1], dc_n=inp["dc_n"][b:b + 1])
        out_b, grads_b = reference(cell, sub, reset_after)
        np.testing.assert_allclose(out_b["y"][:, 0], y[:n, b], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(out_b["h_n"][0], h_n[b], rtol=1e-13, atol=1e-15)
        if cell == "lstm":
            np.testing.assert_allclose(out_b["c_n"][0], out["c_n"][b], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(grads_b["dx"][:, 0], grads["dx"][:n, b], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(grads_b["dh0"][0], grads["dh0"][b], rtol=1e-12, atol=1e-14)
        assert np.all(grads["dx"][n:, b] == 0.0)

    # dy at padded steps has no effect
    inp2 = dict(inp, dy=inp["dy"].copy())
    pad = np.arange(TINY["T"])[:, None] >= lengths[None, :]
    inp2["dy"][pad] = 123.0
    _, grads2 = reference(cell, inp2, reset_after)
    for k, g in grads.items():
        if g is not None:
            np.testing.assert_array_equal(grads2[k], g, err_msg=k)


@pytest.mark.parametrize("case", list(CASES))
def test_full_lengths_equal_no_lengths(case):
    cell, reset_after = CASES[case]
    inp = make_inputs(cell, seed=3, **TINY)
    out, grads = reference(cell, inp, reset_after)
    out_l, grads_l = reference(cell, dict(inp, lengths=np.full(TINY["B"], TINY["T"])),
                               reset_after)
    for d, d_l in ((out, out_l), (grads, grads_l)):
        for k in d:
            np.testing.assert_array_equal(d[k], d_l[k], err_msg=k)


@pytest.mark.parametrize("case", list(CASES))
def test_optional_state_gradients_default_to_zero(case):
    cell, reset_after = CASES[case]
    inp = make_inputs(cell, with_lengths=True, seed=5, **TINY)
    _, grads = reference(cell, inp, reset_after)
    T, B, H = inp["dy"].shape
    z = np.zeros((B, H))
    inp0 = dict(inp, h0=None, dh_n=z)
    if cell == "lstm":
        inp0.update(c0=None, dc_n=z)
    out_none, g_none = reference(cell, inp0, reset_after)
    out_zero, g_zero = reference(cell, dict(inp0, h0=z, c0=z), reset_after)
    # backward with the state gradients left out (None)
    args = (inp["x"], inp["w_ih"], inp["w_hh"], inp["b_ih"], inp["b_hh"])
    if cell == "lstm":
        *_, cache = lstm_forward(*args, lengths=inp["lengths"])
        g_omit = lstm_backward(cache, inp["dy"])
    elif cell == "gru":
        *_, cache = gru_forward(*args, lengths=inp["lengths"], reset_after=reset_after)
        g_omit = gru_backward(cache, inp["dy"])
    else:
        *_, cache = rnn_forward(*args, lengths=inp["lengths"], nonlinearity=cell[4:])
        g_omit = rnn_backward(cache, inp["dy"])
    for k in out_none:
        np.testing.assert_array_equal(out_none[k], out_zero[k])
    for k in g_none:
        np.testing.assert_array_equal(g_none[k], g_zero[k])
        np.testing.assert_array_equal(g_omit[k], g_zero[k])


# ----------------------------------------------------------------------------
# dtypes and numerics
# ----------------------------------------------------------------------------

def _cast(inp, dtype):
    return {k: (v.astype(dtype) if v is not None and v.dtype.kind == "f" else v)
            for k, v in inp.items()}


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("case", list(CASES))
def test_float32_stays_float32_and_matches_float64(case, with_lengths):
    cell, reset_after = CASES[case]
    inp = make_inputs(cell, with_lengths=with_lengths, seed=11, **TINY)
    out64, g64 = reference(cell, inp, reset_after)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        out32, g32 = reference(cell, _cast(inp, np.float32), reset_after)
    for d32, d64 in ((out32, out64), (g32, g64)):
        for k in d64:
            assert d32[k].dtype == np.float32, k
            np.testing.assert_allclose(d32[k], d64[k], rtol=1e-4, atol=1e-5, err_msg=k)
    args = _cast(inp, np.float32)
    if cell == "lstm":
        cache = lstm_forward(args["x"], args["w_ih"], args["w_hh"])[-1]
    elif cell == "gru":
        cache = gru_forward(args["x"], args["w_ih"], args["w_hh"], reset_after=reset_after)[-1]
    else:
        cache = rnn_forward(args["x"], args["w_ih"], args["w_hh"])[-1]
    cache_arrays = [v for v in cache.values() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    assert cache_arrays and all(v.dtype == np.float32 for v in cache_arrays)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES))
def test_saturating_inputs_do_not_overflow(case, dtype):
    cell, reset_after = CASES[case]
    inp = _cast(make_inputs(cell, seed=13, **TINY), dtype)
    inp["x"] = inp["x"] * dtype(1e4)          # pre-activations of +-1e3 .. 1e4
    if cell == "rnn_relu":
        inp["w_hh"] = inp["w_hh"] * dtype(0.1)   # keep relu's growth finite
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            out, grads = reference(cell, inp, reset_after)
    for d in (out, grads):
        for k, v in d.items():
            assert np.all(np.isfinite(v)), k


def test_relu_derivative_at_zero_is_zero():
    rng = np.random.default_rng(17)
    T, B, I, H = 4, 3, 3, 5
    b = rng.uniform(-1, 1, H)
    x = rng.uniform(-1, 1, (T, B, I))
    # w_ih = 0, h0 = 0 and b_ih = -b_hh: every pre-activation is exactly 0
    y, h_n, cache = rnn_forward(x, np.zeros((H, I)), rng.uniform(-1, 1, (H, H)), b, -b,
                                nonlinearity="relu")
    assert np.all(y == 0) and np.all(h_n == 0)
    grads = rnn_backward(cache, rng.uniform(-1, 1, (T, B, H)), rng.uniform(-1, 1, (B, H)))
    for k, g in grads.items():
        assert np.all(g == 0), k


def test_bad_input_raises():
    inp = make_inputs("lstm", seed=1, **TINY)
    x, w_ih, w_hh = inp["x"], inp["w_ih"], inp["w_hh"]
    with pytest.raises(TypeError, match="w_hh"):
        lstm_forward(x, w_ih, w_hh.astype(np.float32))
    with pytest.raises(TypeError, match="x"):
        lstm_forward(x.astype(np.int64), w_ih, w_hh)
    with pytest.raises(ValueError, match="w_ih"):
        lstm_forward(x, w_ih[:, :2], w_hh)
    with pytest.raises(ValueError, match="w_hh"):
        gru_forward(x, w_ih, w_hh)                      # 4H rows given to a GRU
    with pytest.raises(ValueError, match="lengths"):
        lstm_forward(x, w_ih, w_hh, lengths=[0, 1, 2])
    with pytest.raises(ValueError, match="lengths"):
        lstm_forward(x, w_ih, w_hh, lengths=[1, 2, TINY["T"] + 1])
    with pytest.raises(ValueError, match="h0"):
        lstm_forward(x, w_ih, w_hh, h0=inp["h0"][:2])
    with pytest.raises(ValueError, match="nonlinearity"):
        rnn_forward(x, w_ih[:5], w_hh[:5, :5], nonlinearity="sigmoid")
    *_, cache = lstm_forward(x, w_ih, w_hh)
    with pytest.raises(ValueError, match="dy"):
        lstm_backward(cache, inp["dy"][:2])


# ----------------------------------------------------------------------------
# PyTorch conformance: live (torch installed) and stored fixtures
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("cell", CELLS)
def test_matches_torch_live(cell, with_lengths, bias):
    pytest.importorskip("torch")
    inp = make_inputs(cell, T=6, B=4, I=3, H=5, with_lengths=with_lengths, bias=bias,
                      seed=100 + 4 * CELLS.index(cell) + 2 * with_lengths + bias)
    theirs = run_torch(cell, inp)
    out, grads = reference(cell, inp)
    assert_results_close({**out, **grads}, theirs, rtol=1e-10, atol=1e-12,
                         keys=list(theirs))


EXPECTED_FIXTURES = sorted(
    [c + s for c in CELLS for s in ("", "_lengths")]
    + [c + s + "_float32" for c in ("lstm", "gru") for s in ("", "_lengths")])


def test_all_fixtures_present():
    assert fixture_names() == EXPECTED_FIXTURES


@pytest.mark.parametrize("name", EXPECTED_FIXTURES)
def test_matches_torch_fixture(name):
    fx = load_fixture(name)
    cell = fx["cell"]
    assert name.startswith(cell)
    assert (fx["lengths"] is not None) == ("_lengths" in name)
    if name.endswith("_float32"):
        assert fx["x"].dtype == np.float32
        rtol, atol = 1e-5, 1e-6
    else:
        assert fx["x"].dtype == np.float64
        rtol, atol = 1e-10, 1e-12
    out, grads = reference(cell, fx)
    keys = ["y", "h_n", "c_n", "dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"]
    if cell != "lstm":
        keys = [k for k in keys if k not in ("c_n", "dc0")]
    for k in keys:
        assert k in fx, k
    assert_results_close({**out, **grads}, fx, rtol=rtol, atol=atol, keys=keys)
