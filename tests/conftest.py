# tests/cuda runs in a pytest process of its own (NUMBA_ENABLE_CUDASIM must be set
# before Numba is imported): `NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda`.
import pytest

collect_ignore = ["cuda"]


@pytest.fixture(scope="module")
def one_blas_thread():
    """Small shapes: one BLAS thread is faster, and on a loaded shared machine a
    multi-threaded OpenBLAS can be 10-100x slower (threads spin waiting for each other).
    Modules that train or run examples use it for all their tests (``pytestmark``)."""
    try:
        import scipy.linalg  # noqa: F401  (loads the OpenBLAS fastrnn's kernels call)
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1):
        yield
