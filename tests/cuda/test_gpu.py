"""Hardware-only checks (marker ``gpu``; skipped under the simulator): benchmark-like
shapes at the default tile size, determinism there, and zero-copy torch CUDA input.
Run on a GPU host with `NUMBA_ENABLE_CUDASIM=0 python -m pytest tests/cuda`."""
import numpy as np
import pytest

from fastrnn import functional as F
from fastrnn.cuda import config

from cases import CELLS, assert_close, make_inputs

DEFAULT_TILE = config.TILE  # read at import, before the small-tile fixture applies
pytestmark = pytest.mark.gpu


def _run(cell, args, grads, device):
    _, forward, backward, _, _, extra, has_c = CELLS[cell]
    result = forward(**args, training=True, **extra, device=device)
    outputs = dict(zip(("y", "h_n", "c_n") if has_c else ("y", "h_n"), result[:-1]))
    return outputs, backward(result[-1], **grads)._asdict()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", list(CELLS))
def test_large_shapes_match_cpu(cell, dtype, monkeypatch):
    monkeypatch.setattr(config, "TILE", DEFAULT_TILE)
    args, grads = make_inputs(cell, 20, 32, 64, 128, dtype, seed=1)
    out, g = _run(cell, args, grads, "cuda")
    cpu_out, cpu_g = _run(cell, args, grads, "cpu")
    fwd, grad = ((1e-9, 1e-11), (1e-8, 1e-10)) if dtype == np.float64 else ((1e-4, 2e-5), (1e-3, 2e-4))
    assert_close(out, cpu_out, *fwd, f"{cell} forward")
    assert_close(g, cpu_g, *grad, f"{cell} backward")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_whole_sequence_kernels_when_threads_walk_several_items(cell, monkeypatch):
    """TILE = 2 (blocks of 4 threads): B*H = 64*300 items exceed what a cooperative
    grid of such blocks can hold (at most 32 resident blocks per SM on current GPUs),
    so each thread of the whole-sequence kernels walks several (b, j) items and
    several blocks meet at grid.sync() (the simulator runs one block only)."""
    monkeypatch.setattr(config, "TILE", 2)
    args, grads = make_inputs(cell, 3, 64, 8, 300, np.float64, seed=4)
    out, g = _run(cell, args, grads, "cuda")
    cpu_out, cpu_g = _run(cell, args, grads, "cpu")
    assert_close(out, cpu_out, 1e-9, 1e-11, f"{cell} forward")
    assert_close(g, cpu_g, 1e-8, 1e-10, f"{cell} backward")


@pytest.mark.parametrize("cell", ["lstm", "gru", "gru_reset_before"])
def test_large_runs_are_bit_identical(cell, monkeypatch):
    monkeypatch.setattr(config, "TILE", DEFAULT_TILE)
    args, grads = make_inputs(cell, 10, 64, 64, 256, np.float32, seed=2)
    first, second = _run(cell, args, grads, "cuda"), _run(cell, args, grads, "cuda")
    for a, b in zip(first, second):
        for key, value in a.items():
            if value is not None:
                np.testing.assert_array_equal(value, b[key], err_msg=key)


def test_torch_cuda_tensors_are_used_without_copy():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    args, _ = make_inputs("lstm", 5, 4, 8, 16, np.float32, seed=3)
    tensors = {k: (torch.from_numpy(v).cuda() if isinstance(v, np.ndarray) and k != "lengths" else v)
               for k, v in args.items()}
    y, h_n, c_n, _ = F.lstm(**tensors, device="cuda")
    y_host, *_ = F.lstm(**args, device="cuda")
    np.testing.assert_array_equal(y.copy_to_host(), y_host)
