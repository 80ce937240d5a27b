"""The one module of fastrnn that imports ``numba.cuda``.

Everything CUDA-related in fastrnn gets ``cuda`` from here, so moving to another
CUDA target for Numba is a change of this file only. Importing this module never
fails: when numba-cuda is missing, :data:`cuda` is None and :func:`require` says why.

``import fastrnn`` does not import this module; :mod:`fastrnn.cuda` imports it
lazily, on the first request for a CUDA path.
"""
import importlib.util
import os

__all__ = ["cuda", "is_available", "require", "simulated", "unavailable_reason"]

_SIMULATOR_HINT = ("to run the CUDA kernels without a GPU, use Numba's CUDA simulator: set the "
                   "environment variable NUMBA_ENABLE_CUDASIM=1 before Numba is first imported "
                   "(e.g. `NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda`)")

cuda = None
_import_error = None
if importlib.util.find_spec("numba_cuda") is None:
    _import_error = "numba-cuda is not installed (install it with `pip install 'fastrnn[cuda]'`)"
else:
    try:
        from numba import cuda  # noqa: F811  (numba-cuda redirects this import to itself)
    except Exception as exc:  # a broken install: report it, never crash `import fastrnn.cuda`
        _import_error = f"numba-cuda failed to import ({type(exc).__name__}: {exc})"


def simulated():
    """True when Numba's CUDA simulator is active (NUMBA_ENABLE_CUDASIM=1 at Numba import)."""
    return cuda is not None and _simulator_enabled()


def _simulator_enabled():
    try:  # the switch numba-cuda itself read when it was imported
        from numba.cuda.core import config
    except ImportError:
        from numba.core import config
    return bool(config.ENABLE_CUDASIM)


def unavailable_reason():
    """None when the CUDA kernels can run, else a sentence saying what is missing."""
    if cuda is None:
        return _import_error
    if _simulator_enabled():
        return None
    try:
        if cuda.is_available():
            return None
    except Exception as exc:  # driver present but broken
        return f"the CUDA driver failed to initialise ({type(exc).__name__}: {exc})"
    detail = ""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "").strip() not in ("", "0"):
        detail = (" (NUMBA_ENABLE_CUDASIM is set in the environment but Numba was imported before "
                  "it was set, so the simulator is off)")
    return "no usable CUDA GPU or driver was found (numba.cuda.is_available() is False)" + detail


def is_available():
    """Whether fastrnn's CUDA kernels can run here (a GPU with its driver, or the simulator)."""
    return unavailable_reason() is None


def require():
    """Raise one clear ``RuntimeError`` unless the CUDA kernels can run; returns ``cuda``."""
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"fastrnn: device='cuda' was requested but CUDA is unusable: {reason}; "
                           + _SIMULATOR_HINT)
    return cuda
