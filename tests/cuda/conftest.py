"""CUDA kernel tests: Numba's CUDA simulator by default, a real GPU on request.

Run them in their own pytest process (the main run ignores this folder, see
tests/conftest.py), because the simulator switch is read once, when Numba is first
imported:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda      # simulator (the default here)
    NUMBA_ENABLE_CUDASIM=0 python -m pytest tests/cuda      # a real GPU: same tests + `gpu` ones

This file sets NUMBA_ENABLE_CUDASIM=1 unless the variable is already set, before
anything imports Numba. Tests marked ``gpu`` (large shapes, hardware-only checks)
are skipped under the simulator.
"""
import os
import sys

_requested = os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import pytest  # noqa: E402

if "numba" in sys.modules:
    from numba.core import config as _numba_config
    if bool(_numba_config.ENABLE_CUDASIM) != (_requested.strip() not in ("", "0")):
        raise pytest.UsageError(
            "tests/cuda must run in a pytest process of its own: Numba was imported before "
            "tests/cuda/conftest.py could set NUMBA_ENABLE_CUDASIM. Run "
            "`NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda`.")

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))  # tests/cases.py

from fastrnn.cuda import _device, config  # noqa: E402

SIMULATED = _device.simulated()


def _lock_simulator_shared_arrays():
    """Make the simulator's ``cuda.shared.array`` allocation atomic.

    numba-cuda 0.30.4's simulator (FakeCUDAShared.array) looks the block's array up
    by source line and, when missing, creates and stores it without a lock. Its
    threads are Python threads, so two of them can both miss, each get a private
    array and never see the other's writes: the block then reads uninitialised
    memory (results like 1e+227; test_other_tile_sizes[lstm-8] failed so in about 1
    run in 6, and the earlier one-in-five gru_reset_before flake in .ci/run looks
    the same). A real GPU has one array per block, which the lock restores.
    """
    import threading

    import numpy as np
    from numba.cuda import types
    from numba.cuda.np import numpy_support
    from numba.cuda.simulator import kernelapi

    shared = kernelapi.FakeCUDAShared
    if getattr(shared, "_fastrnn_locked", False):
        return
    allocate = shared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory / refused: as before
            return allocate(self, shape, dtype, alignment)
        frame = sys._getframe(1)
        caller = (frame.f_code.co_filename, frame.f_lineno)  # as the original: one array per line
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        with lock:
            result = self._allocations.get(caller)
            if result is None:
                result = self._allocations[caller] = np.empty(shape, dtype)
        return result

    shared.array = array
    shared._fastrnn_locked = True
if SIMULATED:
    # The simulator runs one Python thread per CUDA thread and polls them while
    # holding the GIL; the default 5 ms switch interval makes each syncthreads()
    # round cost milliseconds. 0.2 ms makes the suite about 5x faster.
    sys.setswitchinterval(2e-4)
    _lock_simulator_shared_arrays()

#: config.TILE for most tests: 2 -> 4-thread blocks, 8 x 8 GEMM tiles, so H = 5
#: (G*H = 15 or 20) spans several blocks and partial tiles everywhere.
SMALL_TILE = 2


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a real CUDA GPU (skipped under the simulator)")
    config.addinivalue_line("markers", "no_cuda_needed: runs even where the CUDA kernels cannot")


def pytest_collection_modifyitems(config, items):
    reason = _device.unavailable_reason()
    if reason is not None:
        skip = pytest.mark.skip(reason=f"CUDA kernels cannot run: {reason}")
    elif SIMULATED:
        skip = pytest.mark.skip(reason="needs a real GPU (NUMBA_ENABLE_CUDASIM=1)")
    else:
        return
    for item in items:
        if reason is not None and "no_cuda_needed" not in item.keywords:
            item.add_marker(skip)
        elif reason is None and "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def small_tile(monkeypatch):
    """Every test starts with config.TILE = SMALL_TILE (tests may set another)."""
    monkeypatch.setattr(config, "TILE", SMALL_TILE)
    return SMALL_TILE


@pytest.fixture
def poisoned(monkeypatch):
    """Make every device allocation of the CUDA drivers NaN-filled, so anything read
    before it is written shows up as NaN in the results."""
    import numpy as np

    from fastrnn.cuda import common, gru, lstm, rnn

    def empty(shape, dtype):
        return _device.cuda.to_device(np.full(shape, np.nan, np.dtype(dtype)))

    for module in (common, lstm, gru, rnn):
        monkeypatch.setattr(module, "empty", empty)
