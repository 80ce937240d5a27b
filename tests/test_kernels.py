"""Fused kernels (through fastrnn.functional) against the NumPy reference and
central finite differences."""
import numpy as np
import pytest

from fastrnn.kernels import blas
from fastrnn.kernels import gru as gru_kernels
from fastrnn.kernels import lstm as lstm_kernels
from fastrnn.kernels import rnn as rnn_kernels
from fastrnn.kernels import workspace

from cases import (CELLS, PoisonedNumpy, assert_close, finite_difference, make_inputs, run_fused, run_reference,
                   tolerances)

SHAPES = [  # (T, B, I, H): B=1 and 2 take the hand-written product, B>=3 takes BLAS
    (1, 1, 3, 5),
    (6, 1, 4, 9),
    (5, 2, 3, 7),
    (7, 5, 4, 9),
    (1, 4, 2, 3),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lengths", [None, "mixed"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T%dB%dI%dH%d" % s)
@pytest.mark.parametrize("cell", list(CELLS))
def test_matches_reference(cell, shape, lengths, dtype):
    args, grads = make_inputs(cell, *shape, dtype, seed=sum(shape), lengths=lengths)
    (fwd_rtol, fwd_atol), (grad_rtol, grad_atol) = tolerances(dtype)
    out, g = run_fused(cell, args, grads)
    ref_out, ref_g = run_reference(cell, args, grads)
    assert_close(out, ref_out, fwd_rtol, fwd_atol, f"{cell} forward")
    assert_close(g, ref_g, grad_rtol, grad_atol, f"{cell} backward")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lengths", [None, "mixed"])
@pytest.mark.parametrize("shape", SHAPES + [(9, 6, 5, 11)], ids=lambda s: "T%dB%dI%dH%d" % s)
@pytest.mark.parametrize("cell", list(CELLS))
def test_inference_matches_reference(cell, shape, lengths, dtype):
    """The inference forward (training=False) has its own kernels for some shapes
    (the LSTM's feature-major one for B > 2): checked on its own against the reference."""
    args, _ = make_inputs(cell, *shape, dtype, seed=3 + sum(shape), lengths=lengths)
    (fwd_rtol, fwd_atol), _ = tolerances(dtype)
    _, forward, _, reference, _, extra, has_c = CELLS[cell]
    names = ("y", "h_n", "c_n") if has_c else ("y", "h_n")
    result = forward(**args, **extra)
    assert result[-1] is None
    out = dict(zip(names, result[:-1]))
    assert_close(out, dict(zip(names, reference(**args, **extra)[:-1])), fwd_rtol, fwd_atol, f"{cell} inference")


@pytest.mark.parametrize("pack_limit", [0, 1 << 20])
@pytest.mark.parametrize("batch", [3, 6])
@pytest.mark.parametrize("cell", list(CELLS))
def test_backward_with_and_without_packed_weights(cell, batch, pack_limit, monkeypatch):
    """Above two rows the backward's per-step product writes its transpose, from a
    packed copy of W_hh or (large weights, pack limit 0 here) from W_hh itself."""
    monkeypatch.setattr(blas, "_PACK_LIMIT", pack_limit)
    args, grads = make_inputs(cell, 6, batch, 3, 7, np.float64, seed=batch, lengths="mixed")
    _, (grad_rtol, grad_atol) = tolerances(np.float64)
    assert_close(run_fused(cell, args, grads)[1], run_reference(cell, args, grads)[1], grad_rtol, grad_atol, cell)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (8, 8), (16, 3), (17, 9), (36, 9), (256, 64), (0, 4), (4, 0)])
def test_transposed_copy_equals_numpy_transpose(shape, dtype):
    """The packed weights (blas.transposed_copy: blocks of eight rows, then the
    remainder) are exactly w.T, C-contiguous, also from a strided view."""
    rng = np.random.default_rng(shape[0] * 31 + shape[1])
    w = rng.standard_normal(shape).astype(dtype)
    strided = rng.standard_normal((2 * shape[0], 3 * shape[1])).astype(dtype)[::2, ::-3]
    for source in (w, strided):
        packed = blas.transposed_copy(source)
        assert packed.flags.c_contiguous and packed.dtype == dtype
        np.testing.assert_array_equal(packed, source.T)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("bias,initial_state", [(False, False), (True, False), (False, True)])
def test_optional_arguments(cell, bias, initial_state):
    args, grads = make_inputs(cell, 4, 3, 3, 5, np.float64, seed=7, bias=bias, initial_state=initial_state)
    out, g = run_fused(cell, args, grads)
    ref_out, ref_g = run_reference(cell, args, grads)
    assert_close(out, ref_out, 1e-10, 1e-12, cell)
    assert_close(g, ref_g, 1e-10, 1e-12, cell)
    if not bias:
        assert g["db_ih"] is None and g["db_hh"] is None


@pytest.mark.parametrize("cell", list(CELLS))
def test_padded_outputs_are_exactly_zero_and_state_frozen(cell):
    args, grads = make_inputs(cell, 6, 4, 3, 5, np.float32, lengths=[6, 1, 3, 2])
    out, _ = run_fused(cell, args, grads)
    for b, n in enumerate(args["lengths"]):
        assert np.all(out["y"][n:, b] == 0)
        np.testing.assert_array_equal(out["h_n"][b], out["y"][n - 1, b])
    # Sequence 2 (length 3) run alone for 3 steps reaches the same final state.
    alone = {k: v for k, v in args.items() if k != "lengths"}
    alone["x"] = args["x"][:3, 2:3]
    for k in ("h0", "c0"):
        if k in args:
            alone[k] = args[k][2:3]
    short, _ = run_fused(cell, alone, {"dy": grads["dy"][:3, 2:3], "dh_n": grads["dh_n"][2:3]})
    np.testing.assert_allclose(out["h_n"][2], short["h_n"][0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lengths", [None, "mixed"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("cell", list(CELLS))
def test_gradients_match_finite_differences(cell, batch, lengths):
    args, grads = make_inputs(cell, 4, batch, 3, 4, np.float64, seed=11 + batch, lengths=lengths)
    _, forward, *_, extra, has_c = CELLS[cell]
    outputs = ("y", "h_n", "c_n") if has_c else ("y", "h_n")
    weights = dict(zip(outputs, (grads["dy"], grads["dh_n"], grads.get("dc_n"))))

    def loss():
        result = forward(**args, **extra)
        return sum(float(np.sum(w * r)) for w, r in zip(weights.values(), result[:-1]))

    _, g = run_fused(cell, args, grads)
    wrt = {"dx": "x", "dh0": "h0", "dc0": "c0", "dw_ih": "w_ih", "dw_hh": "w_hh", "db_ih": "b_ih", "db_hh": "b_hh"}
    for grad_name, arg_name in wrt.items():
        if arg_name not in args:
            continue
        numeric = finite_difference(loss, args[arg_name])
        np.testing.assert_allclose(g[grad_name], numeric, rtol=1e-6, atol=1e-8, err_msg=f"{cell} {grad_name}")


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("cell", list(CELLS))
def test_every_output_is_written(cell, batch, monkeypatch):
    """Outputs and workspaces poisoned with NaN: any element a kernel forgets to
    write (or reads before writing) shows up as NaN in the results."""
    args, grads = make_inputs(cell, 5, batch, 3, 6, np.float64, lengths="mixed")
    clean = run_fused(cell, args, grads)  # compiles before the module globals change
    for module in (lstm_kernels, gru_kernels, rnn_kernels, workspace):
        monkeypatch.setattr(module, "np", PoisonedNumpy())
    workspace.clear()  # reused scratch buffers are allocated afresh (poisoned) too
    poisoned = run_fused(cell, args, grads)
    for part_clean, part_poisoned in zip(clean, poisoned):
        for key, value in part_poisoned.items():
            assert np.all(np.isfinite(value)), f"{key} has unwritten elements"
            np.testing.assert_array_equal(value, part_clean[key])


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("cell", list(CELLS))
def test_every_inference_output_is_written(cell, batch, monkeypatch):
    """As above for the inference forward, which uses its own kernel for some shapes."""
    args, _ = make_inputs(cell, 5, batch, 3, 6, np.float64, lengths="mixed")
    _, forward, *_, extra, _ = CELLS[cell]
    clean = forward(**args, **extra)[:-1]
    for module in (lstm_kernels, gru_kernels, rnn_kernels, workspace):
        monkeypatch.setattr(module, "np", PoisonedNumpy())
    workspace.clear()
    poisoned = forward(**args, **extra)[:-1]
    for value, expected in zip(poisoned, clean):
        assert np.all(np.isfinite(value))
        np.testing.assert_array_equal(value, expected)


@pytest.mark.parametrize("cell", list(CELLS))
def test_backward_can_run_twice(cell):
    args, grads = make_inputs(cell, 4, 3, 2, 5, np.float64)
    _, forward, backward, *_, extra, _ = CELLS[cell]
    ctx = forward(**args, training=True, **extra)[-1]
    first, second = backward(ctx, **grads), backward(ctx, **grads)
    for a, b in zip(first, second):
        if a is not None:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", list(CELLS))
def test_inference_matches_training_forward(cell):
    args, _ = make_inputs(cell, 5, 3, 2, 4, np.float32)
    _, forward, *_, extra, _ = CELLS[cell]
    inference, training = forward(**args, **extra), forward(**args, training=True, **extra)
    assert inference[-1] is None
    for a, b in zip(inference[:-1], training[:-1]):
        # the LSTM's inference kernel sums its products in another order (feature-major)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cell", list(CELLS))
def test_non_contiguous_inputs(cell):
    args, grads = make_inputs(cell, 5, 3, 4, 6, np.float64)
    strided = {k: (np.asfortranarray(v) if v.ndim > 1 else v) for k, v in args.items()}
    strided["x"] = np.ascontiguousarray(args["x"][::-1])[::-1]  # negative strides
    strided["w_hh"] = np.ascontiguousarray(args["w_hh"].T).T
    for k in ("b_ih", "b_hh"):
        strided[k] = np.repeat(args[k], 2)[::2]
    grads_strided = {k: np.asfortranarray(v) for k, v in grads.items()}
    out, g = run_fused(cell, args, grads)
    out_s, g_s = run_fused(cell, strided, grads_strided)
    assert_close(out_s, out, 0, 0, cell)
    assert_close(g_s, g, 0, 0, cell)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("batch", [2, 4])
@pytest.mark.parametrize("cell", list(CELLS))
def test_nan_propagates(cell, batch, training):
    args, _ = make_inputs(cell, 4, batch, 3, 5, np.float32, lengths=None)
    args["x"][2, 0, 1] = np.nan
    _, forward, *_, extra, _ = CELLS[cell]
    y = forward(**args, training=training, **extra)[0]
    assert np.all(np.isfinite(y[:2]))
    assert np.all(np.isnan(y[2:, 0])) and np.all(np.isfinite(y[:, 1:]))


@pytest.mark.parametrize("lengths", [None, [4, 1, 2]])
@pytest.mark.parametrize("batch", [1, 3])
def test_lstm_projection_gradients_match_finite_differences(batch, lengths, monkeypatch):
    from fastrnn import functional as F
    rng = np.random.default_rng(batch)
    T_, I_, H_, P_ = 4, 3, 5, 2
    args = dict(x=rng.uniform(-1, 1, (T_, batch, I_)), w_ih=rng.uniform(-.6, .6, (4 * H_, I_)),
                w_hh=rng.uniform(-.6, .6, (4 * H_, P_)), b_ih=rng.uniform(-.3, .3, 4 * H_),
                b_hh=rng.uniform(-.3, .3, 4 * H_), h0=rng.uniform(-1, 1, (batch, P_)),
                c0=rng.uniform(-1, 1, (batch, H_)), w_hr=rng.uniform(-.6, .6, (P_, H_)))
    lens = None if lengths is None else np.array(lengths[:batch])
    if lens is not None:
        lens[0] = T_
    dy, dh_n, dc_n = rng.uniform(-1, 1, (T_, batch, P_)), rng.uniform(-1, 1, (batch, P_)), rng.uniform(-1, 1, (batch, H_))

    def loss():
        y, h, c, _ = F.lstm(**args, lengths=lens)
        return float(np.sum(y * dy) + np.sum(h * dh_n) + np.sum(c * dc_n))

    y, h, c, ctx = F.lstm(**args, lengths=lens, training=True)
    assert y.shape == (T_, batch, P_) and h.shape == (batch, P_) and c.shape == (batch, H_)
    if lens is not None:
        for b, n in enumerate(lens):
            assert np.all(y[n:, b] == 0)
    g = F.lstm_backward(ctx, dy, dh_n, dc_n)
    assert type(g).__name__ == "LSTMProjectionGrads"
    wrt = dict(dx="x", dh0="h0", dc0="c0", dw_ih="w_ih", dw_hh="w_hh", db_ih="b_ih", db_hh="b_hh", dw_hr="w_hr")
    for grad_name, arg_name in wrt.items():
        numeric = finite_difference(loss, args[arg_name])
        np.testing.assert_allclose(getattr(g, grad_name), numeric, rtol=1e-6, atol=1e-8, err_msg=grad_name)
    # every buffer written: poison fresh allocations and compare
    monkeypatch.setattr(lstm_kernels, "np", PoisonedNumpy())
    monkeypatch.setattr(workspace, "np", PoisonedNumpy())
    workspace.clear()
    y2, _, _, ctx2 = F.lstm(**args, lengths=lens, training=True)
    g2 = F.lstm_backward(ctx2, dy, dh_n, dc_n)
    np.testing.assert_array_equal(y2, y)
    for a, b in zip(g2, g):
        np.testing.assert_array_equal(a, b)


def test_lstm_projection_shapes_are_validated():
    from fastrnn import functional as F
    x = np.zeros((2, 1, 3))
    with pytest.raises(ValueError, match=r"w_hh must have shape \(G\*H, P\) with w_hr \(P, H\) = \(20, 2\)"):
        F.lstm(x, np.zeros((20, 3)), np.zeros((20, 5)), w_hr=np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"h0 must have shape \(B, P\)"):
        F.lstm(x, np.zeros((20, 3)), np.zeros((20, 2)), w_hr=np.zeros((2, 5)), h0=np.zeros((1, 5)))
