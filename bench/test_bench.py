"""pytest-benchmark suite: the cases of ``python -m fastrnn.bench``, one benchmark each.

Every (cell, size, mode, impl) with impl in fastrnn / numpy (fastrnn.reference) /
torch; cases, inputs and runners come from :mod:`fastrnn.bench`. Results are grouped
by cell-size-mode so each group compares the three implementations::

    pytest bench/ --benchmark-only                 # time everything (several minutes)
    pytest bench/ --benchmark-only -k "lstm and S3"
    pytest bench/ --benchmark-disable -q           # smoke run: each case once, S1/S2 only

Not collected by a plain ``pytest`` (pyproject's testpaths = ["tests"]).
"""
import pytest

from fastrnn import bench as report

#: Sizes a smoke run (--benchmark-disable: every case runs once, untimed) keeps. S3 and
#: S4 are skipped there for every implementation: S1 (B=1 path) and S2 (BLAS path)
#: already exercise every code path, while S3/S4 would take most of the run (the NumPy
#: baseline alone needs seconds per call at S4).
SMOKE_SIZES = ("S1", "S2")

CASES = [(cell, size, mode, impl) for cell in report.CELLS for size in report.SIZES
         for mode in report.MODES for impl in report.IMPLS]

_inputs = {}


def case_inputs(cell, size):
    """The shared seeded inputs of (cell, size); only the latest pair is kept in memory."""
    key = (cell.name, size.name)
    if key not in _inputs:
        _inputs.clear()
        _inputs[key] = report.make_inputs(cell, size)
    return _inputs[key]


@pytest.mark.parametrize("cell, size, mode, impl", CASES, ids=["-".join(case) for case in CASES])
def test_recurrent(benchmark, cell, size, mode, impl):
    if benchmark.disabled and size not in SMOKE_SIZES:
        pytest.skip("smoke run (--benchmark-disable) skips S3/S4")
    cell, size = report.CELLS[cell], report.SIZES[size]
    try:
        run = report.make_runner(impl, cell, mode, case_inputs(cell, size))
    except report.Unavailable as exc:
        pytest.skip(str(exc))
    benchmark.group = f"{cell.name}-{size.name}-{mode}"
    benchmark.extra_info.update(size=str(size), flops=report.flops(cell, size, mode))
    if benchmark.disabled:
        benchmark(run)  # runs once
        return
    run()  # warm-up: compiles fastrnn's kernels (or loads them from the cache)
    rounds = report.DEFAULT_POLICY.repeats(report.time_once(run))
    benchmark.pedantic(run, rounds=rounds, iterations=1)
    benchmark.extra_info["gflops_median"] = benchmark.extra_info["flops"] / benchmark.stats.stats.median / 1e9
