"""fastrnn's CUDA kernels (``numba.cuda``), mirroring :mod:`fastrnn.kernels` module
for module: :mod:`.lstm`, :mod:`.gru`, :mod:`.rnn`, :mod:`.lstm_variants`,
:mod:`.gru_variants`, :mod:`.layer_norm`, :mod:`.activations`, plus :mod:`.gemm`
(the one tiled shared-memory GEMM kernel) and :mod:`.common`.

Use them through ``fastrnn.functional.lstm/gru/rnn(..., device="cuda")``. Inputs
may be NumPy arrays (copied to the device; results come back as NumPy arrays) or
objects with ``__cuda_array_interface__`` (CuPy arrays, torch CUDA tensors, Numba
device arrays; used without a copy; results are Numba device arrays).

Importing this package imports nothing CUDA-related: :mod:`._device`, the one
module that imports ``numba.cuda``, loads on the first call below. Without a GPU,
run everything under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` set before
Numba is imported). :mod:`.config` holds the one launch-geometry knob, ``TILE``.
"""
from . import config

__all__ = ["config", "is_available", "require", "unavailable_reason"]


def is_available():
    """Whether the CUDA kernels can run here: numba-cuda installed and a GPU with its
    driver, or Numba's CUDA simulator enabled."""
    from . import _device
    return _device.is_available()


def unavailable_reason():
    """None when the CUDA kernels can run, else what is missing (one sentence)."""
    from . import _device
    return _device.unavailable_reason()


def require():
    """Raise one clear ``RuntimeError`` (what is missing, how to use the simulator)
    unless the CUDA kernels can run."""
    from . import _device
    _device.require()
