"""Scalar gate math of the CUDA kernels: the CPU kernels' own functions.

:mod:`fastrnn.kernels.activations` defines sigmoid, tanh, relu and their
derivatives as plain Python functions with a Numba ``@overload`` per dtype. Numba's
CUDA target resolves those overloads too (checked by compiling the kernels to PTX
for both dtypes: the float32 code stays float32), and the simulator runs the plain
Python versions. So the CPU and GPU kernels share one definition of the math:

* float64: libm ``tanh``; sigmoid branches on the sign of x so ``exp`` never
  overflows (the simulator would raise ``OverflowError`` where a GPU returns inf);
* float32: an exp-free rational tanh (max abs error ~2.4e-7, tested on the CPU) and
  sigmoid(x) = (1 + tanh(x/2)) / 2, so float32 kernels never leave float32.
"""
from ..kernels.activations import dsigmoid, drelu, dtanh, one_minus, relu, sigmoid, tanh

__all__ = ["sigmoid", "tanh", "relu", "one_minus", "dsigmoid", "dtanh", "drelu"]
