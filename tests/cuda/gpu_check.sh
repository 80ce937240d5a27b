#!/usr/bin/env bash
# The checks that need a real GPU, as one script for a GPU host with numba-cuda,
# pytest, pytest-xdist and (for the comparison) torch with CUDA installed:
#   1. the whole tests/cuda suite on the hardware (plus the `gpu`-marked tests),
#   2. bench/gpu_bench.py (fastrnn's CUDA kernels against cuDNN).
#
#   bash tests/cuda/gpu_check.sh [OUTDIR]      # logs: OUTDIR/{env.txt,pytest.log,bench.log}
#
# Knobs (environment): PYTHON (python3), WORKERS (8 pytest-xdist workers, 0 for none: the suite's
# time is mostly kernel compilation, one CPU core per worker), TEST_TIMEOUT (300 s),
# BENCH_TIMEOUT (150 s), BENCH_ARGS (--repeats 10).
set -u
cd "$(dirname "$0")/../.."
out=${1:-${OUT:-/tmp/fastrnn_gpu_check}}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} NUMBA_ENABLE_CUDASIM=0 PYTHONUNBUFFERED=1
# Small test shapes launch few blocks on purpose; Numba warns about each such launch.
export NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS=0

{
    nvidia-smi -L
    $py -c "import sys, numpy, numba, numba_cuda; print('python', sys.version.split()[0], '| numpy',
numpy.__version__, '| numba', numba.__version__, '| numba-cuda', numba_cuda.__version__)"
    $py -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available())"
} 2>&1 | tee "$out/env.txt"

workers=${WORKERS:-8}
xdist=()
[ "$workers" = 0 ] || xdist=(-n "$workers")

status=0
timeout "${TEST_TIMEOUT:-300}" $py -m pytest tests/cuda -q -rfEs -p no:cacheprovider \
    "${xdist[@]}" --durations=10 2>&1 | tee "$out/pytest.log"
test_rc=${PIPESTATUS[0]}
[ "$test_rc" -eq 0 ] || status=$test_rc

timeout "${BENCH_TIMEOUT:-150}" $py bench/gpu_bench.py ${BENCH_ARGS:---repeats 10} 2>&1 | tee "$out/bench.log"
bench_rc=${PIPESTATUS[0]}
[ "$bench_rc" -eq 0 ] || status=$bench_rc

echo "gpu_check: tests exit $test_rc, bench exit $bench_rc"
exit $status
