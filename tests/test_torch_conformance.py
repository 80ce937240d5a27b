"""The fused kernels reproduce torch.nn.LSTM/GRU/RNN: stored fixtures (no torch
needed) and, when torch imports, live comparisons on fresh random inputs."""
import numpy as np
import pytest

from cases import CELLS, assert_close, run_fused
from torch_fixtures import fixture_names, load_fixture, make_inputs, run_torch

INPUTS = ("x", "w_ih", "w_hh", "b_ih", "b_hh", "h0", "c0", "lengths")
GRADS = ("dy", "dh_n", "dc_n")


def _split(fixture):
    args = {k: fixture[k] for k in INPUTS if k in fixture and fixture[k] is not None}
    grads = {k: fixture[k] for k in GRADS if k in fixture}
    outputs = {k: fixture[k] for k in ("y", "h_n", "c_n") if k in fixture}
    expected_grads = {k: fixture[k] for k in ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh") if k in fixture}
    return args, grads, outputs, expected_grads


def _check(cell, fixture):
    args, grads, outputs, expected_grads = _split(fixture)
    out, g = run_fused(cell, args, grads)
    if args["x"].dtype == np.float64:
        fwd, bwd = (1e-10, 1e-12), (1e-9, 1e-12)
    else:  # torch float32 vs our float32: both ~1e-7 from the truth; see cases.tolerances
        fwd, bwd = (1e-5, 2e-6), (1e-4, 2e-5)
    assert_close(out, outputs, *fwd, f"{cell} forward vs torch")
    assert_close(g, expected_grads, *bwd, f"{cell} backward vs torch")


@pytest.mark.parametrize("name", fixture_names())
def test_stored_torch_fixture(name):
    fixture = load_fixture(name)
    _check(fixture["cell"], fixture)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_live_torch(cell, batch, with_lengths, dtype):
    pytest.importorskip("torch")
    inputs = make_inputs(cell, T=6, B=batch, I=3, H=7, with_lengths=with_lengths and batch > 1,
                         seed=batch + 10 * with_lengths, dtype=dtype)
    _check(cell, {**inputs, **run_torch(cell, inputs)})


def test_fused_cells_cover_every_torch_cell():
    assert {"lstm", "gru", "rnn_tanh", "rnn_relu"} <= set(CELLS)
