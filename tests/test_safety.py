"""Safety inside BPTT: per-step clipping of dL/dh_t (``clip_per_step``), its trace
(``hidden_grads_out``) and ``check_finite`` in fastrnn.functional.

The clipped backward is compared with a per-step NumPy re-implementation in this
module (float64); the trace with dL/dh_t obtained independently: by rerunning the
reference (fastrnn.reference) from step t+1 with (h_t, c_t) as its initial state,
whose dh0 is what flows back into h_t, and for the LSTM with projection by central
finite differences of an additive perturbation of h_t.
"""
import numpy as np
import pytest

from fastrnn import functional as F
from fastrnn._finite import NonFiniteError, first_nonfinite, require_finite

from cases import CELLS, make_inputs

CELL_NAMES = list(CELLS)  # lstm, gru, gru_reset_before, rnn_tanh, rnn_relu


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _clip(a, clip):
    return a if clip is None else np.clip(a, -clip, clip)


def _valid(lengths, steps, batch):
    if lengths is None:
        return np.ones((steps, batch), bool)
    return np.arange(steps)[:, None] < np.asarray(lengths)[None, :]


# --- a per-step NumPy BPTT with clipping and a trace (float64) ----------------------
def numpy_lstm(x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, dy, dh_n, dc_n, clip=None, w_hr=None, delta=None):
    """LSTM (optionally with projection w_hr (P, H)) forward and clipped backward.

    ``delta`` (T, B, P): added to h_t (and so to y_t) at valid steps (finite differences).
    Returns (loss, grads dict, trace).
    """
    steps, batch, _ = x.shape
    hidden = c0.shape[1]
    valid = _valid(lengths, steps, batch)
    h, c = h0.copy(), c0.copy()
    cache, y = [], np.zeros((steps, batch, h0.shape[1]))
    for t in range(steps):
        a = x[t] @ w_ih.T + b_ih + b_hh + h @ w_hh.T
        i, f = _sigmoid(a[:, :hidden]), _sigmoid(a[:, hidden:2 * hidden])
        g, o = np.tanh(a[:, 2 * hidden:3 * hidden]), _sigmoid(a[:, 3 * hidden:])
        c_new = f * c + i * g
        m = o * np.tanh(c_new)
        h_new = m if w_hr is None else m @ w_hr.T
        if delta is not None:
            h_new = h_new + delta[t]
        cache.append((h, c, i, f, g, o, c_new, m))
        mask = valid[t][:, None]
        h, c = np.where(mask, h_new, h), np.where(mask, c_new, c)
        y[t] = np.where(mask, h_new, 0)
    loss = np.sum(dy * y) + np.sum(dh_n * h) + np.sum(dc_n * c)
    dh, dc = dh_n.copy(), dc_n.copy()
    trace = np.zeros_like(y)
    da = np.zeros((steps, batch, 4 * hidden))
    dw_hr = None if w_hr is None else np.zeros_like(w_hr)
    for t in reversed(range(steps)):
        _, c_prev, i, f, g, o, c_new, m = cache[t]
        mask = valid[t][:, None]
        dh_t = np.where(mask, _clip(dy[t] + dh, clip), 0)
        trace[t] = dh_t
        dm = dh_t if w_hr is None else dh_t @ w_hr
        if w_hr is not None:
            dw_hr += dh_t.T @ np.where(mask, m, 0)
        tc = np.tanh(c_new)
        dcell = np.where(mask, dc, 0) + dm * o * (1 - tc ** 2)
        da[t] = np.concatenate([dcell * g * i * (1 - i), dcell * c_prev * f * (1 - f),
                                dcell * i * (1 - g ** 2), dm * tc * o * (1 - o)], axis=1)
        dh = np.where(mask, da[t] @ w_hh, dh)
        dc = np.where(mask, dcell * f, dc)
    h_in = np.stack([entry[0] for entry in cache])
    grads = dict(dx=da @ w_ih, dh0=dh, dc0=dc, dw_ih=np.einsum("tbg,tbi->gi", da, x),
                 dw_hh=np.einsum("tbg,tbh->gh", da, h_in), db_ih=da.sum(axis=(0, 1)), db_hh=da.sum(axis=(0, 1)))
    if w_hr is not None:
        grads["dw_hr"] = dw_hr
    return loss, grads, trace


def numpy_gru_backward(cache, dy, dh_n, clip=None):
    """fastrnn.reference's GRU backward (both forms) with per-step clipping and a trace."""
    gates, h_prev, valid, w_hh = cache["gates"], cache["h_prev"], cache["valid"], cache["w_hh"]
    steps, batch, hidden = h_prev.shape
    dh = dh_n.copy()
    trace = np.zeros((steps, batch, hidden))
    da_i, da_h = np.zeros((steps, batch, 3 * hidden)), np.zeros((steps, batch, 3 * hidden))
    rh = np.zeros((steps, batch, hidden))
    for t in reversed(range(steps)):
        mask = valid[t][:, None]
        dh_new = np.where(mask, _clip(dy[t] + dh, clip), 0)
        trace[t] = dh_new
        r, z, n = (gates[t][:, k * hidden:(k + 1) * hidden] for k in range(3))
        h = h_prev[t]
        dn_pre = dh_new * (1 - z) * (1 - n ** 2)
        dz_pre = dh_new * (h - n) * z * (1 - z)
        dh_step = dh_new * z
        if cache["reset_after"]:
            dr_pre = dn_pre * cache["hn_term"][t] * r * (1 - r)
            da_i[t] = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)
            da_h[t] = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)
            dh_step = dh_step + da_h[t] @ w_hh
        else:
            d_rh = dn_pre @ w_hh[2 * hidden:]
            dr_pre = d_rh * h * r * (1 - r)
            da_i[t] = da_h[t] = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)
            rh[t] = r * h
            dh_step = dh_step + da_h[t, :, :2 * hidden] @ w_hh[:2 * hidden] + d_rh * r
        dh = np.where(mask, dh_step, dh)
    x, w_ih = cache["x"], cache["w_ih"]
    h_in = h_prev.copy()
    dw_hh = np.einsum("tbg,tbh->gh", da_h, h_in)
    if not cache["reset_after"]:
        dw_hh[2 * hidden:] = np.einsum("tbg,tbh->gh", da_h[:, :, 2 * hidden:], rh)
    grads = dict(dx=da_i @ w_ih, dh0=dh, dw_ih=np.einsum("tbg,tbi->gi", da_i, x), dw_hh=dw_hh,
                 db_ih=da_i.sum(axis=(0, 1)), db_hh=da_h.sum(axis=(0, 1)))
    return grads, trace


def numpy_rnn_backward(cache, dy, dh_n, clip=None):
    """fastrnn.reference's RNN backward with per-step clipping and a trace."""
    h_prev, h_new, valid, w_hh = cache["h_prev"], cache["h_new"], cache["valid"], cache["w_hh"]
    steps, batch, hidden = h_new.shape
    dh = dh_n.copy()
    trace = np.zeros((steps, batch, hidden))
    da = np.zeros((steps, batch, hidden))
    for t in reversed(range(steps)):
        mask = valid[t][:, None]
        dhn = np.where(mask, _clip(dy[t] + dh, clip), 0)
        trace[t] = dhn
        da[t] = dhn * ((1 - h_new[t] ** 2) if cache["nonlinearity"] == "tanh" else (h_new[t] > 0))
        dh = np.where(mask, da[t] @ w_hh, dh)
    x, w_ih = cache["x"], cache["w_ih"]
    grads = dict(dx=da @ w_ih, dh0=dh, dw_ih=np.einsum("tbg,tbi->gi", da, x),
                 dw_hh=np.einsum("tbg,tbh->gh", da, h_prev), db_ih=da.sum(axis=(0, 1)), db_hh=da.sum(axis=(0, 1)))
    return grads, trace


def numpy_clipped(cell, args, grads, clip):
    """(grads dict, trace) of the per-step NumPy BPTT for one of cases.CELLS."""
    _, _, _, forward, _, extra, _ = CELLS[cell]
    if cell == "lstm":
        _, g, trace = numpy_lstm(args["x"], args["w_ih"], args["w_hh"], args["b_ih"], args["b_hh"], args["h0"],
                                 args["c0"], args.get("lengths"), grads["dy"], grads["dh_n"], grads["dc_n"], clip)
        return g, trace
    cache = forward(**args, **extra)[-1]
    backward = numpy_gru_backward if cell.startswith("gru") else numpy_rnn_backward
    return backward(cache, grads["dy"], grads["dh_n"], clip)


def fused(cell, args, grads, **options):
    """Forward + backward through fastrnn.functional with backward ``options``;
    returns (grads dict, trace)."""
    _, forward, backward, *_, extra, _ = CELLS[cell]
    ctx = forward(**args, training=True, **extra)[-1]
    trace = np.full(grads["dy"].shape, np.nan, grads["dy"].dtype)  # poisoned: every entry must be written
    g = backward(ctx, **grads, hidden_grads_out=trace, **options)
    return g._asdict(), trace


SHAPES = [(6, 1, 3, 5), (5, 2, 4, 3), (7, 4, 3, 6)]  # B = 1, 2 hand-written product; B >= 3 BLAS


# --- clipping ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_clipping_bounds_every_step_of_the_trace(cell, dtype):
    args, grads = make_inputs(cell, 7, 4, 3, 6, dtype, seed=3)
    grads = {k: v * 4 for k, v in grads.items()}  # so that clipping bites
    _, unclipped = fused(cell, args, grads)
    clip = 0.5
    assert np.abs(unclipped).max() > 2 * clip, "the test must exercise clipping"
    g, trace = fused(cell, args, grads, clip_per_step=clip)
    assert np.all(np.abs(trace) <= np.asarray(clip, dtype))
    assert np.any(np.abs(trace) == np.asarray(clip, dtype))
    for b, n in enumerate(args["lengths"]):
        assert np.all(trace[n:, b] == 0)
    assert all(np.all(np.isfinite(v)) for v in g.values() if v is not None)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_huge_clip_equals_no_clip_exactly(cell):
    for dtype in (np.float32, np.float64):
        args, grads = make_inputs(cell, 6, 3, 3, 5, dtype, seed=5)
        _, forward, backward, *_, extra, _ = CELLS[cell]
        ctx = forward(**args, training=True, **extra)[-1]
        plain = backward(ctx, **grads)
        g, trace = fused(cell, args, grads, clip_per_step=1e30)  # beyond float32's range: clipping off there
        g_small, trace_off = fused(cell, args, grads)
        for name, value in plain._asdict().items():
            if value is not None:
                np.testing.assert_array_equal(g[name], value, err_msg=name)
                np.testing.assert_array_equal(g_small[name], value, err_msg=name)
        np.testing.assert_array_equal(trace, trace_off)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T%dB%dI%dH%d" % s)
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_clipped_gradients_match_numpy(cell, shape):
    args, grads = make_inputs(cell, *shape, np.float64, seed=sum(shape), lengths="mixed")
    grads = {k: v * 3 for k, v in grads.items()}
    clip = 0.6
    expected, expected_trace = numpy_clipped(cell, args, grads, clip)
    _, unclipped_trace = numpy_clipped(cell, args, grads, None)
    assert np.abs(unclipped_trace).max() > clip  # clipping is active
    g, trace = fused(cell, args, grads, clip_per_step=clip)
    np.testing.assert_allclose(trace, expected_trace, rtol=1e-10, atol=1e-12)
    for name, value in expected.items():
        np.testing.assert_allclose(g[name], value, rtol=1e-9, atol=1e-12, err_msg=f"{cell} {name}")
    # clip without a trace: the same gradients
    _, forward, backward, *_, extra, _ = CELLS[cell]
    no_trace = backward(forward(**args, training=True, **extra)[-1], **grads, clip_per_step=clip)._asdict()
    for name, value in g.items():
        if value is not None:
            np.testing.assert_array_equal(no_trace[name], value, err_msg=name)


def _projection_case(batch, seed=0):
    rng = np.random.default_rng(seed)
    steps, n_in, hidden, width = 5, 3, 5, 2
    args = dict(x=rng.uniform(-1, 1, (steps, batch, n_in)), w_ih=rng.uniform(-.6, .6, (4 * hidden, n_in)),
                w_hh=rng.uniform(-.6, .6, (4 * hidden, width)), b_ih=rng.uniform(-.3, .3, 4 * hidden),
                b_hh=rng.uniform(-.3, .3, 4 * hidden), h0=rng.uniform(-1, 1, (batch, width)),
                c0=rng.uniform(-1, 1, (batch, hidden)), w_hr=rng.uniform(-.8, .8, (width, hidden)))
    lengths = np.array([steps, 1, 3, 4][:batch])
    grads = dict(dy=rng.uniform(-3, 3, (steps, batch, width)), dh_n=rng.uniform(-3, 3, (batch, width)),
                 dc_n=rng.uniform(-3, 3, (batch, hidden)))
    return args, lengths, grads


@pytest.mark.parametrize("clip", [None, 0.7])
@pytest.mark.parametrize("batch", [1, 4])
def test_lstm_projection_clipped_matches_numpy(batch, clip):
    args, lengths, grads = _projection_case(batch)
    _, expected, expected_trace = numpy_lstm(**{k: v for k, v in args.items() if k != "w_hr"}, lengths=lengths,
                                             **grads, clip=clip, w_hr=args["w_hr"])
    ctx = F.lstm(**args, lengths=lengths, training=True)[-1]
    trace = np.full(grads["dy"].shape, np.nan)
    g = F.lstm_backward(ctx, **grads, clip_per_step=clip, hidden_grads_out=trace)
    assert trace.shape == (5, batch, 2)
    np.testing.assert_allclose(trace, expected_trace, rtol=1e-10, atol=1e-12)
    for name, value in expected.items():
        np.testing.assert_allclose(getattr(g, name), value, rtol=1e-9, atol=1e-12, err_msg=name)
    if clip is not None:
        assert np.all(np.abs(trace) <= clip) and np.any(np.abs(trace) == clip)


# --- the trace is dL/dh_t -------------------------------------------------------------
def _suffix_state_grad(cell, args, grads, t):
    """dL/dh_t without clipping, from the reference alone: dy_t plus the dh0 of a run
    of steps t+1.. started from the (h_t, c_t) of the full run."""
    _, _, _, forward, backward, extra, has_c = CELLS[cell]
    x, lengths = args["x"], np.asarray(args["lengths"])
    prefix = {k: v for k, v in args.items() if k != "x"}
    prefix["x"], prefix["lengths"] = x[:t + 1], np.minimum(lengths, t + 1)
    states = forward(**prefix, **extra)[1:-1]  # (h_t, c_t) per sequence, frozen past each length
    expected = np.zeros(grads["dy"].shape[1:])
    carried = grads["dh_n"].copy()  # sequences ending at t: nothing flows back from later steps
    go_on = lengths > t + 1
    if np.any(go_on):
        suffix = {k: v for k, v in args.items() if k not in ("x", "lengths", "h0", "c0")}
        suffix["x"], suffix["lengths"] = x[t + 1:, go_on], lengths[go_on] - t - 1
        suffix["h0"] = states[0][go_on]
        suffix_grads = dict(dy=grads["dy"][t + 1:, go_on], dh_n=grads["dh_n"][go_on])
        if has_c:
            suffix["c0"] = states[1][go_on]
            suffix_grads["dc_n"] = grads["dc_n"][go_on]
        carried[go_on] = backward(forward(**suffix, **extra)[-1], **suffix_grads)["dh0"]
    valid = lengths > t
    expected[valid] = grads["dy"][t, valid] + carried[valid]
    return expected


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_trace_is_dl_dh_from_reference_suffix_runs(cell):
    args, grads = make_inputs(cell, 6, 4, 3, 5, np.float64, seed=21, lengths=[6, 1, 4, 5])
    _, trace = fused(cell, args, grads)
    for t in range(6):
        np.testing.assert_allclose(trace[t], _suffix_state_grad(cell, args, grads, t), rtol=1e-9, atol=1e-12,
                                   err_msg=f"{cell} step {t}")


@pytest.mark.parametrize("batch", [1, 3])
def test_lstm_projection_trace_matches_finite_differences(batch):
    args, lengths, grads = _projection_case(batch, seed=batch)
    ctx = F.lstm(**args, lengths=lengths, training=True)[-1]
    trace = np.empty(grads["dy"].shape)
    F.lstm_backward(ctx, **grads, hidden_grads_out=trace)
    plain = {k: v for k, v in args.items() if k != "w_hr"}
    delta = np.zeros_like(grads["dy"])
    eps = 1e-6
    numeric = np.zeros_like(delta)
    valid = _valid(lengths, *delta.shape[:2])
    for index in np.ndindex(delta.shape):
        if not valid[index[:2]]:
            continue
        losses = []
        for sign in (1, -1):
            delta[index] = sign * eps
            losses.append(numpy_lstm(**plain, lengths=lengths, **grads, w_hr=args["w_hr"], delta=delta)[0])
        delta[index] = 0
        numeric[index] = (losses[0] - losses[1]) / (2 * eps)
    np.testing.assert_allclose(trace, numeric, rtol=1e-6, atol=1e-8)


# --- check_finite ----------------------------------------------------------------------
def _forward(cell, args, **options):
    _, forward, *_, extra, _ = CELLS[cell]
    return forward(**args, **extra, **options)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_check_finite_names_x_and_its_time_step(cell):
    args, _ = make_inputs(cell, 10, 3, 4, 5, np.float32, lengths=None)
    args["x"][7, 2, 1] = np.nan
    args["x"][9, 0, 0] = np.inf  # later: the first one is reported
    with pytest.raises(NonFiniteError, match=r"check_finite: x \(input of \w+\) has NaN at time step 7 "
                                             r"\(sequence 2;") as info:
        _forward(cell, args, check_finite=True)
    assert (info.value.tensor, info.value.step, info.value.sequence, info.value.index) == ("x", 7, 2, (7, 2, 1))
    assert isinstance(info.value, FloatingPointError)
    y = _forward(cell, args)[0]  # without the check NaN propagates as IEEE says
    assert np.all(np.isfinite(y[:7])) and np.isnan(y[7, 2]).all()


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_check_finite_names_an_initial_state(cell):
    args, _ = make_inputs(cell, 5, 3, 2, 4, np.float64)
    args["h0"][1, 2] = -np.inf
    with pytest.raises(NonFiniteError, match=r"h0 \(input of \w+\) has -Inf \(first non-finite element at "
                                             r"index \(1, 2\)"):
        _forward(cell, args, check_finite=True, training=True)
    if "c0" in args:
        args["h0"][1, 2] = 0
        args["c0"][0, 3] = np.nan
        with pytest.raises(NonFiniteError, match=r"c0 \(input of lstm\) has NaN"):
            _forward(cell, args, check_finite=True)


def test_check_finite_names_a_weight():
    args, _ = make_inputs("gru", 5, 3, 2, 4, np.float32)
    args["b_hh"][3] = np.nan
    with pytest.raises(NonFiniteError, match=r"b_hh \(input of gru\) has NaN") as info:
        F.gru(**args, check_finite=True)
    assert info.value.step is None and info.value.index == (3,)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_check_finite_names_dy_and_its_time_step(cell):
    args, grads = make_inputs(cell, 6, 3, 2, 4, np.float32, lengths=None)
    _, forward, backward, *_, extra, _ = CELLS[cell]
    ctx = forward(**args, training=True, **extra)[-1]
    grads["dy"][3, 1, 0] = np.nan
    with pytest.raises(NonFiniteError, match=r"dy \(input of \w+_backward\) has NaN at time step 3 "
                                             r"\(sequence 1;"):
        backward(ctx, **grads, check_finite=True)
    g = backward(ctx, **grads)  # unchecked: NaN reaches the gradients
    assert np.isnan(g.dw_ih).any()


def test_check_finite_names_an_overflow_inside_the_forward():
    """A relu RNN with huge weights overflows to inf in float32: y is named, at the
    first step where it overflows (computed here in float64)."""
    steps, batch, n_in, hidden = 16, 2, 3, 4
    x = np.ones((steps, batch, n_in), np.float32)
    x[:, 1] = 0.5
    w_ih = np.full((hidden, n_in), 1e3, np.float32)
    w_hh = np.full((hidden, hidden), 1e3, np.float32)
    h, first = np.zeros((batch, hidden)), None
    for t in range(steps):
        h = np.maximum(x[t].astype(np.float64) @ w_ih.T.astype(np.float64) + h @ w_hh.T.astype(np.float64), 0)
        if first is None and np.any(h > np.finfo(np.float32).max):
            first = (t, int(np.flatnonzero((h > np.finfo(np.float32).max).any(axis=1))[0]))
    assert first is not None and 0 < first[0] < steps - 1
    with pytest.raises(NonFiniteError, match=rf"y \(output of rnn\) has \+Inf at time step {first[0]} "
                                             rf"\(sequence {first[1]};") as info:
        F.rnn(x, w_ih, w_hh, nonlinearity="relu", check_finite=True)
    assert info.value.tensor == "y" and info.value.step == first[0]


def test_check_finite_names_an_overflow_inside_the_backward():
    """Finite dy near float32's maximum: the summed dL/dh_t overflows, and dx is
    named at the earliest step holding an Inf or NaN."""
    args, grads = make_inputs("rnn_relu", 6, 2, 3, 4, np.float32, lengths=None)
    args["w_ih"] = np.abs(args["w_ih"]) + 1
    args["w_hh"] = np.abs(args["w_hh"]) + 1
    args["x"] = np.abs(args["x"])
    ctx = F.rnn(**args, nonlinearity="relu", training=True, check_finite=True)[-1]  # forward is finite
    dy = np.full(grads["dy"].shape, 3e38, np.float32)
    unchecked = F.rnn_backward(ctx, dy)
    where = first_nonfinite(unchecked.dx)
    assert where is not None
    with pytest.raises(NonFiniteError, match=rf"dx \(result of rnn_backward\) has [-+]?\w+ at time step "
                                             rf"{where[0]} \(sequence {where[1]};"):
        F.rnn_backward(ctx, dy, check_finite=True)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_check_finite_passes_silently_on_finite_data(cell):
    args, grads = make_inputs(cell, 5, 3, 2, 4, np.float32)
    _, forward, backward, *_, extra, _ = CELLS[cell]
    checked = forward(**args, training=True, check_finite=True, **extra)
    plain = forward(**args, training=True, **extra)
    for a, b in zip(checked[:-1], plain[:-1]):
        np.testing.assert_array_equal(a, b)
    g_checked = backward(checked[-1], **grads, check_finite=True)
    g_plain = backward(plain[-1], **grads)
    for a, b in zip(g_checked, g_plain):
        if b is not None:
            np.testing.assert_array_equal(a, b)


def test_first_nonfinite_and_require_finite():
    a = np.zeros((4, 3, 2))
    assert first_nonfinite(a) is None and first_nonfinite(a, has_time_axis=False) is None
    a[2, 1, 1], a[3, 0, 0] = np.inf, np.nan
    assert first_nonfinite(a) == (2, 1)
    assert first_nonfinite(a, has_time_axis=False) == (2, 1, 1)
    big = np.full((3, 2, 2), 3e38, np.float32)  # the sum overflows, yet every element is finite
    assert first_nonfinite(big) is None
    require_finite("big", big, True)
    with pytest.raises(NonFiniteError, match=r"a has \+Inf at time step 2 \(sequence 1;"):
        require_finite("a", a, True)
    require_finite("none", None, True)
    assert first_nonfinite(np.arange(3)) is None  # integers are always finite


# --- validation -------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_validation_of_the_new_keywords(cell):
    args, grads = make_inputs(cell, 4, 3, 2, 5, np.float32)
    _, forward, backward, *_, extra, _ = CELLS[cell]
    ctx = forward(**args, training=True, **extra)[-1]
    for bad in (0, -1.0, np.nan, np.inf, "1", True, [1.0]):
        with pytest.raises(ValueError, match=r"clip_per_step must be None or a positive finite number"):
            backward(ctx, **grads, clip_per_step=bad)
    backward(ctx, **grads, clip_per_step=np.float32(2))  # NumPy scalars and ints are fine
    backward(ctx, **grads, clip_per_step=3)
    with pytest.raises(ValueError, match=r"hidden_grads_out must have shape \(T, B, H\) = \(4, 3, 5\), "
                                         r"got shape \(4, 3, 4\)"):
        backward(ctx, **grads, hidden_grads_out=np.zeros((4, 3, 4), np.float32))
    with pytest.raises(TypeError, match=r"hidden_grads_out has dtype float64 but the forward ran in float32"):
        backward(ctx, **grads, hidden_grads_out=np.zeros((4, 3, 5)))
    with pytest.raises(TypeError, match=r"hidden_grads_out must be None or a NumPy array, got list"):
        backward(ctx, **grads, hidden_grads_out=np.zeros((4, 3, 5), np.float32).tolist())
    with pytest.raises(ValueError, match=r"hidden_grads_out must be a C-contiguous, writable array.*not C-contig"):
        backward(ctx, **grads, hidden_grads_out=np.zeros((5, 3, 4), np.float32).transpose(2, 1, 0))
    read_only = np.zeros((4, 3, 5), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match=r"hidden_grads_out must be a C-contiguous, writable array.*read-only"):
        backward(ctx, **grads, hidden_grads_out=read_only)
    with pytest.raises(ValueError, match=r"hidden_grads_out must not share memory with dy"):
        backward(ctx, **grads, hidden_grads_out=grads["dy"])
    y = forward(**args, training=True, **extra)
    with pytest.raises(ValueError, match=r"hidden_grads_out must not share memory with the forward's saved"):
        backward(y[-1], **grads, hidden_grads_out=y[0])
    with pytest.raises(TypeError, match=r"check_finite must be True or False"):
        backward(ctx, **grads, check_finite="yes")
    with pytest.raises(TypeError, match=r"check_finite must be True or False"):
        forward(**args, check_finite=1, **extra)
    with pytest.raises(TypeError, match=r"positional argument"):  # the new options are keyword-only
        backward(ctx, grads["dy"], None, None, 1.0) if cell == "lstm" else backward(ctx, grads["dy"], None, 1.0)


def test_lstm_projection_trace_has_width_p():
    args, lengths, grads = _projection_case(2)
    ctx = F.lstm(**args, lengths=lengths, training=True)[-1]
    with pytest.raises(ValueError, match=r"hidden_grads_out must have shape \(T, B, H\) = \(5, 2, 2\)"):
        F.lstm_backward(ctx, **grads, hidden_grads_out=np.zeros((5, 2, 5)))


# --- the same keywords with the cell variants (fastrnn._variants) ------------------------
def _variant_run(cell, options, dtype=np.float32, seed=4):
    """A small variant forward (training) and dy: (ctx, y, dy, forward, backward)."""
    rng = np.random.default_rng(seed)
    T, B, I, H = 5, 3, 2, 4
    G = 4 if cell == "lstm" else 3
    if cell == "lstm" and options.get("coupled"):
        G = 3
    x = rng.standard_normal((T, B, I)).astype(dtype)
    w_ih = (0.5 * rng.standard_normal((G * H, I))).astype(dtype)
    w_hh = (0.5 * rng.standard_normal((G * H, H))).astype(dtype)
    forward, backward = (F.lstm, F.lstm_backward) if cell == "lstm" else (F.gru, F.gru_backward)
    out = forward(x, w_ih, w_hh, lengths=[5, 2, 4], training=True, **options)
    return out[-1], out[0], rng.standard_normal(out[0].shape).astype(dtype), forward, backward


def _variant_options(cell, dtype=np.float32, seed=5):
    rng = np.random.default_rng(seed)
    H, B, T = 4, 3, 5
    if cell == "lstm":
        return [{"cell_clip": 0.5}, {"peephole": tuple(rng.standard_normal(H).astype(dtype) for _ in range(3))},
                {"layer_norm": tuple(1 + 0.1 * rng.standard_normal(n).astype(dtype) for n in (16, 16, H, H))},
                {"zoneout_h": 0.3, "zoneout_c": (rng.random((T, B, H)) < 0.4).astype(dtype)},
                {"coupled": True, "recurrent_mask": (2 * (rng.random((B, H)) < 0.5)).astype(dtype)}]
    return [{"zoneout_h": 0.3}, {"layer_norm": tuple(1 + 0.1 * rng.standard_normal(12).astype(dtype) for _ in range(2))},
            {"input_mask": (2 * (rng.random((B, 2)) < 0.5)).astype(dtype),
             "weight_hh_mask": (rng.random((12, H)) < 0.7).astype(dtype)}]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_check_finite_with_variants_passes_silently_on_finite_data(cell):
    """The backward's result scan covers the variant gradients (it crashed on them)."""
    for options in _variant_options(cell):
        ctx, _, dy, _, backward = _variant_run(cell, options)
        checked, plain = backward(ctx, dy, check_finite=True), backward(ctx, dy)
        for name, a in checked._asdict().items():
            b = getattr(plain, name)
            for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
                if v is not None:
                    np.testing.assert_array_equal(u, v, err_msg=f"{cell} {sorted(options)} {name}")


@pytest.mark.parametrize("cell,option,name", [
    ("lstm", "peephole", "peephole"), ("lstm", "layer_norm", r"layer_norm\[1\]"),
    ("lstm", "recurrent_mask", "recurrent_mask"), ("gru", "layer_norm", r"layer_norm\[0\]"),
    ("gru", "weight_hh_mask", "weight_hh_mask")])
def test_check_finite_names_a_variant_parameter(cell, option, name):
    options = next(o for o in _variant_options(cell) if option in o)
    value = options[option]
    if isinstance(value, tuple):
        value = tuple(v.copy() for v in value)
        value[1 if option == "layer_norm" and cell == "lstm" else 0][1] = np.nan
    else:
        value = value.copy()
        value.flat[2] = np.nan
    with pytest.raises(NonFiniteError, match=rf"check_finite: {name} \(input of {cell}\) has NaN"):
        _variant_run(cell, {**options, option: value, "check_finite": True})


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_hidden_grads_out_must_not_overlap_variant_saved_arrays(cell):
    """Variant contexts nest their saved arrays (kernel state, masks) in tuples:
    every level is searched, as for the plain kernels."""
    zone = (np.random.default_rng(0).random((5, 3, 4)) < 0.4).astype(np.float32)
    ctx, y, dy, _, backward = _variant_run(cell, {"zoneout_h": zone})
    for shared in (y, zone):
        with pytest.raises(ValueError, match=r"hidden_grads_out must not share memory with the forward's saved"):
            backward(ctx, dy, hidden_grads_out=shared)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bounds_beyond_float32_mean_no_clipping_without_overflow(cell):
    """A float32 bound above float32's range is inf (no clipping), with no overflow
    warning from the cast (it would raise under np.errstate(over="raise"))."""
    with np.errstate(over="raise"):
        ctx, y, dy, forward, backward = _variant_run(cell, {"zoneout_h": 0.3})
        huge = backward(ctx, dy, clip_per_step=1e39)
        plain = backward(ctx, dy)
        for name in ("dx", "dw_hh"):
            np.testing.assert_array_equal(getattr(huge, name), getattr(plain, name))
        if cell == "lstm":
            clipped_never = _variant_run(cell, {"cell_clip": 1e39})[1]  # 1e39 is inf in float32
            np.testing.assert_array_equal(clipped_never, _variant_run(cell, {"cell_clip": 1e30})[1])
