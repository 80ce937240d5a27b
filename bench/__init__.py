"""pytest-benchmark suites (a package so its test_bench.py does not clash with tests/test_bench.py)."""
