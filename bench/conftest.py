"""Settings for the pytest-benchmark suite: thread limits and machine info.

``--bench-threads N`` (default 2) gives every library N threads, as
``python -m fastrnn.bench --threads N`` does.
"""
import os
import sys
import warnings

import pytest

from fastrnn import bench as report

# OpenBLAS reads these when it loads; they halve its GEMM speed on some machines. If
# numpy is not loaded yet (the usual case: conftest runs before any test module) they
# are removed for this pytest process; otherwise the run is flagged. The unit tests
# (tests/) never do this.
_present = [name for name in report.OPENBLAS_OVERRIDES if name in os.environ]
if _present and "numpy" not in sys.modules:  # pragma: no cover - machine dependent
    for _name in _present:
        del os.environ[_name]
    REMOVED_ENV = _present
else:
    REMOVED_ENV = []
    if _present:  # pragma: no cover - machine dependent
        warnings.warn(f"{', '.join(_present)} set and numpy already loaded: OpenBLAS may run at "
                      "half speed; unset them or use python -m fastrnn.bench")


def pytest_addoption(parser):
    parser.addoption("--bench-threads", type=int, default=2,
                     help="threads for numpy/scipy BLAS, numba and torch in bench/ (default 2)")


@pytest.fixture(scope="session", autouse=True)
def bench_threads(request):
    """Limit every library to --bench-threads threads for the whole session."""
    threads = request.config.getoption("--bench-threads")
    limiter = report.limit_threads(threads)
    yield threads
    if limiter is not None:
        limiter.restore_original_limits()


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record CPU, versions, BLAS libraries and the thread count with the results."""
    machine_info["fastrnn_bench"] = report.machine_info(config.getoption("--bench-threads"), REMOVED_ENV)
