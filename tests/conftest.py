# tests/cuda runs in a pytest process of its own (NUMBA_ENABLE_CUDASIM must be set
# before Numba is imported): `NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda`.
collect_ignore = ["cuda"]
