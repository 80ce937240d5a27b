"""Every CUDA kernel through Numba's real CUDA compiler (the simulator checks no
types). Runs compile_check.py in a process without the simulator; skipped where
the CUDA toolchain (NVVM) is not installed, e.g. with plain `numba-cuda` on a
machine without the CUDA toolkit (`pip install 'numba-cuda[cu13]'` provides it)."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.no_cuda_needed
def test_kernels_compile_to_ptx_in_both_dtypes():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run([sys.executable, os.path.join(HERE, "compile_check.py")], env=env,
                            capture_output=True, text=True, timeout=600)
    if result.returncode == 77:
        pytest.skip(result.stdout.strip())
    assert result.returncode == 0, result.stdout + result.stderr
