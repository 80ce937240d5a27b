"""Scalar gate math shared by every kernel: activations and their derivatives.

Each function is a plain Python function (usable from Python and, later, as a device
helper) with a Numba overload per dtype:

* float64 uses libm (``math.tanh``, ``math.exp``): exact to the last bits, so float64
  kernels match the NumPy reference to ~1e-15.
* float32 uses an exp-free rational tanh (Eigen's 13/6 minimax form, clamped to
  |x| <= 7.905). It is only multiplies, adds, one divide and two selects, so LLVM
  vectorizes the pointwise loops (libm calls do not vectorize without SVML, and cost
  60-110 ns each). Measured max abs error vs float64 tanh: see tests/test_activations.py.
  sigmoid(x) = (1 + tanh(x/2)) / 2 inherits the bound (absolute error, which is
  what a float32 gate needs).

Derivatives take the activation's *output* (what the forward pass stores).
Kernels must not write float literals next to float32 values (``1.0 - x`` turns
float32 into float64 in Numba); :func:`one_minus` gives a dtype-preserving ``1 - x``.
"""
import math

import numpy as np
from numba import types
from numba.extending import overload

_F32 = np.float32
_TANH_CLAMP = _F32(7.90531110763549805)
_A1, _A3, _A5, _A7 = _F32(4.89352455891786e-03), _F32(6.37261928875436e-04), _F32(1.48572235717979e-05), _F32(5.12229709037114e-08)
_A9, _A11, _A13 = _F32(-8.60467152213735e-11), _F32(2.00018790482477e-13), _F32(-2.76076847742355e-16)
_B0, _B2, _B4, _B6 = _F32(4.89352518554385e-03), _F32(2.26843463243900e-03), _F32(1.18534705686654e-04), _F32(1.19825839466702e-06)
_HALF32, _ONE32, _ZERO32 = _F32(0.5), _F32(1.0), _F32(0.0)


def _tanh_f32(x):
    # The comparisons are written so that NaN falls through unchanged (IEEE propagation).
    # Single assignments only: Numba's IR inliner mishandles rebound names.
    upper = _TANH_CLAMP if x > _TANH_CLAMP else x
    clamped = -_TANH_CLAMP if upper < -_TANH_CLAMP else upper
    x2 = clamped * clamped
    numerator = clamped * (((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2) + _A1)
    denominator = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
    return numerator / denominator


def _sigmoid_f64(x):
    # Branch on the sign so exp never overflows.
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def tanh(x):
    """Hyperbolic tangent of a float32/float64 scalar."""
    if isinstance(x, np.float32):
        return _F32(_tanh_f32(x))
    return math.tanh(x)


def sigmoid(x):
    """Logistic sigmoid 1/(1+exp(-x)) of a float32/float64 scalar; never overflows."""
    if isinstance(x, np.float32):
        return _F32(_HALF32 + _HALF32 * _tanh_f32(_HALF32 * x))
    return _sigmoid_f64(x)


def relu(x):
    """max(x, 0), propagating NaN (0, not NaN, at -inf)."""
    return type(x)(0) if x < 0 else x


def one_minus(x):
    """1 - x in x's own dtype."""
    return 1 - x


def dsigmoid(s):
    """Derivative of sigmoid given its output s: s (1 - s)."""
    return s - s * s


def dtanh(t):
    """Derivative of tanh given its output t: 1 - t^2."""
    return one_minus(t * t)


def drelu(h):
    """Derivative of relu given its output h (0 at h = 0 and at NaN, like the compiled form)."""
    return type(h)(1) if h > 0 else type(h)(0)


def _is_f32(x):
    return x == types.float32


@overload(tanh)
def _tanh_overload(x):
    if _is_f32(x):
        return _tanh_f32
    return lambda x: math.tanh(x)


@overload(sigmoid)
def _sigmoid_overload(x):
    if _is_f32(x):
        return lambda x: _HALF32 + _HALF32 * tanh(_HALF32 * x)
    return _sigmoid_f64


@overload(relu)
def _relu_overload(x):
    if _is_f32(x):
        return lambda x: _ZERO32 if x < _ZERO32 else x
    return lambda x: 0.0 if x < 0.0 else x


@overload(one_minus)
def _one_minus_overload(x):
    if _is_f32(x):
        return lambda x: _ONE32 - x
    return lambda x: 1.0 - x


@overload(dsigmoid)
def _dsigmoid_overload(s):
    return lambda s: s - s * s


@overload(dtanh)
def _dtanh_overload(t):
    return lambda t: one_minus(t * t)


@overload(drelu)
def _drelu_overload(h):
    if _is_f32(h):
        return lambda h: _ONE32 if h > _ZERO32 else _ZERO32
    return lambda h: 1.0 if h > 0.0 else 0.0


# Whole-row passes. Each loop reads and writes one array in place plus one bias
# stream, so LLVM vectorizes it without runtime alias checks (an out-of-place
# version fails them when called in place; one big loop writing many gate arrays
# at once stayed scalar: 5.4 vs 3.5 ns per LSTM element at S2).
from .._jit import kernel  # noqa: E402  (after the overloads it compiles against)


@kernel
def sigmoid_rows(a, bias):
    """a[j] = sigmoid(a[j] + bias[j]) in place over 1-D arrays of equal length."""
    for j in range(a.shape[0]):
        a[j] = sigmoid(a[j] + bias[j])


@kernel
def tanh_rows(a, bias):
    """a[j] = tanh(a[j] + bias[j]) in place over 1-D arrays of equal length."""
    for j in range(a.shape[0]):
        a[j] = tanh(a[j] + bias[j])
