"""CUDA kernels (through fastrnn.functional with device="cuda") against the CPU
kernels and the NumPy reference: every cell and form, lengths, both dtypes, tiny
shapes with config.TILE forced small so multi-block and partial-tile paths run."""
import numpy as np
import pytest

from fastrnn import functional as F
from fastrnn.cuda import config

from cases import CELLS, assert_close, make_inputs, run_reference, tolerances

SHAPES = [  # (T, B, I, H)
    (1, 1, 3, 5),
    (3, 1, 4, 5),
    (3, 3, 4, 5),
]


def run(cell, args, grads, device, training=True):
    """Forward + backward through fastrnn.functional on ``device``."""
    _, forward, backward, _, _, extra, has_c = CELLS[cell]
    result = forward(**args, training=training, **extra, device=device)
    outputs = dict(zip(("y", "h_n", "c_n") if has_c else ("y", "h_n"), result[:-1]))
    if not training:
        assert result[-1] is None
        return outputs, None
    return outputs, backward(result[-1], **grads)._asdict()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lengths", [None, "mixed"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T%dB%dI%dH%d" % s)
@pytest.mark.parametrize("cell", list(CELLS))
def test_matches_cpu_and_reference(cell, shape, lengths, dtype):
    args, grads = make_inputs(cell, *shape, dtype, seed=sum(shape), lengths=lengths)
    (fwd_rtol, fwd_atol), (grad_rtol, grad_atol) = tolerances(dtype)
    out, g = run(cell, args, grads, "cuda")
    cpu_out, cpu_g = run(cell, args, grads, "cpu")
    ref_out, ref_g = run_reference(cell, args, grads)
    # The independent oracle first, for both devices: a failure then says which side is off.
    assert_close(out, ref_out, fwd_rtol, fwd_atol, f"{cell} CUDA forward vs reference")
    assert_close(g, ref_g, grad_rtol, grad_atol, f"{cell} CUDA backward vs reference")
    assert_close(cpu_out, ref_out, fwd_rtol, fwd_atol, f"{cell} CPU forward vs reference")
    assert_close(cpu_g, ref_g, grad_rtol, grad_atol, f"{cell} CPU backward vs reference")
    assert_close(out, cpu_out, fwd_rtol, fwd_atol, f"{cell} forward vs CPU")
    assert_close(g, cpu_g, grad_rtol, grad_atol, f"{cell} backward vs CPU")


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("bias,initial_state", [(False, False), (True, False), (False, True)])
def test_optional_arguments(cell, bias, initial_state):
    args, grads = make_inputs(cell, 3, 2, 3, 5, np.float64, seed=7, bias=bias, initial_state=initial_state)
    out, g = run(cell, args, grads, "cuda")
    ref_out, ref_g = run_reference(cell, args, grads)
    assert_close(out, ref_out, 1e-10, 1e-12, cell)
    assert_close(g, ref_g, 1e-10, 1e-12, cell)
    if not bias:
        assert g["db_ih"] is None and g["db_hh"] is None


def _projection_case(dtype, width, lengths, seed=0):
    rng = np.random.default_rng(seed)
    steps, batch, n_in, hidden = 3, 3, 4, 5

    def draw(*shape):
        return rng.uniform(-0.8, 0.8, shape).astype(dtype)

    args = dict(x=draw(steps, batch, n_in), w_ih=draw(4 * hidden, n_in), w_hh=draw(4 * hidden, width),
                b_ih=draw(4 * hidden), b_hh=draw(4 * hidden), h0=draw(batch, width), c0=draw(batch, hidden),
                w_hr=draw(width, hidden), lengths=lengths)
    grads = dict(dy=draw(steps, batch, width), dh_n=draw(batch, width), dc_n=draw(batch, hidden))
    return args, grads


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lengths", [None, [3, 1, 2]])
@pytest.mark.parametrize("width", [3, 7])  # P < H (torch's rule) and P > H (allowed here)
def test_lstm_projection_matches_cpu(width, lengths, dtype):
    args, grads = _projection_case(dtype, width, lengths)
    (fwd_rtol, fwd_atol), (grad_rtol, grad_atol) = tolerances(dtype)
    y, h_n, c_n, ctx = F.lstm(**args, training=True, device="cuda")
    g = F.lstm_backward(ctx, **grads)
    cpu_y, cpu_h, cpu_c, cpu_ctx = F.lstm(**args, training=True)
    cpu_g = F.lstm_backward(cpu_ctx, **grads)
    assert type(g) is F.LSTMProjectionGrads
    assert_close(dict(y=y, h_n=h_n, c_n=c_n), dict(y=cpu_y, h_n=cpu_h, c_n=cpu_c), fwd_rtol, fwd_atol, "forward")
    assert_close(g._asdict(), cpu_g._asdict(), grad_rtol, grad_atol, "backward")
    y_inf, h_inf, c_inf, none = F.lstm(**args, device="cuda")  # inference: m in a (1, B, H) scratch
    assert none is None
    np.testing.assert_array_equal(y_inf, y)
    np.testing.assert_array_equal(h_inf, h_n)
    np.testing.assert_array_equal(c_inf, c_n)


@pytest.mark.parametrize("cell", list(CELLS))
def test_inference_matches_training(cell):
    args, grads = make_inputs(cell, 3, 3, 4, 5, np.float32, seed=2)
    out, _ = run(cell, args, grads, "cuda")
    out_inference, _ = run(cell, args, grads, "cuda", training=False)
    for key, value in out.items():
        np.testing.assert_array_equal(out_inference[key], value, err_msg=key)


@pytest.mark.parametrize("cell", [*CELLS, "lstm_projection"])
def test_every_output_written_and_padding_zero(cell, poisoned):
    """Device buffers start NaN-filled: no NaN may reach a result, padded outputs are
    exactly zero and h_n is the output of each sequence's last valid step."""
    lengths = [3, 1, 2]
    if cell == "lstm_projection":
        args, grads = _projection_case(np.float32, 3, lengths)
        y, h_n, c_n, ctx = F.lstm(**args, training=True, device="cuda")
        out, g = dict(y=y, h_n=h_n, c_n=c_n), F.lstm_backward(ctx, **grads)._asdict()
    else:
        args, grads = make_inputs(cell, 3, 3, 4, 5, np.float32, seed=4, lengths=lengths)
        out, g = run(cell, args, grads, "cuda")
    for name, value in {**out, **g}.items():
        assert np.all(np.isfinite(value)), f"{cell}: {name} holds NaN (read before written)"
    for b, n in enumerate(lengths):
        assert np.all(out["y"][n:, b] == 0)
        np.testing.assert_array_equal(out["h_n"][b], out["y"][n - 1, b])


@pytest.mark.parametrize("tile", [1, 3, 8])
@pytest.mark.parametrize("cell", ["lstm", "gru_reset_before"])
def test_other_tile_sizes(cell, tile, monkeypatch):
    monkeypatch.setattr(config, "TILE", tile)
    args, grads = make_inputs(cell, 2, 3, 4, 5, np.float64, seed=tile)
    out, g = run(cell, args, grads, "cuda")
    ref_out, ref_g = run_reference(cell, args, grads)
    assert_close(out, ref_out, 1e-10, 1e-12, f"{cell} TILE={tile}")
    assert_close(g, ref_g, 1e-10, 1e-12, f"{cell} TILE={tile}")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_repeated_runs_are_bit_identical(cell):
    args, grads = make_inputs(cell, 3, 3, 4, 5, np.float32, seed=9)
    first_out, first_g = run(cell, args, grads, "cuda")
    second_out, second_g = run(cell, args, grads, "cuda")
    for key in first_out:
        np.testing.assert_array_equal(first_out[key], second_out[key])
    for key, value in first_g.items():
        if value is not None:
            np.testing.assert_array_equal(value, second_g[key])
