"""Error bounds of the vectorizable float32 activations and IEEE behaviour."""
import math

import numba
import numpy as np
import pytest

from fastrnn.kernels.activations import sigmoid, tanh


@numba.njit
def _apply(x, out_tanh, out_sigmoid):
    for i in range(x.shape[0]):
        out_tanh[i] = tanh(x[i])
        out_sigmoid[i] = sigmoid(x[i])


def _run(x):
    t, s = np.empty_like(x), np.empty_like(x)
    _apply(x, t, s)
    return t, s


def test_float32_error_bound():
    x = np.linspace(-30, 30, 2_000_001, dtype=np.float32)
    t, s = _run(x)
    exact_t = np.tanh(x.astype(np.float64))
    exact_s = 1 / (1 + np.exp(-x.astype(np.float64)))
    # Measured: tanh 3.95e-7 (near |x| = 5.8, ~7 float32 ulps below 1.0), sigmoid 2.3e-7.
    # Without FMA contraction (fastmath is off) the rational form loses a few ulps;
    # still well inside the float32 test tolerances of the kernels.
    assert np.max(np.abs(t - exact_t)) < 5e-7
    assert np.max(np.abs(s - exact_s)) < 3e-7
    assert np.all(np.abs(t) <= 1) and np.all((s >= 0) & (s <= 1))


def test_float64_is_exact_to_rounding():
    x = np.linspace(-800, 800, 100_001)
    t, s = _run(x)
    np.testing.assert_allclose(t, np.tanh(x), rtol=1e-15, atol=0)  # libm vs numpy: 1 ulp apart at most
    e = np.exp(-np.abs(x))
    stable = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    np.testing.assert_allclose(s, stable, rtol=1e-15, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ieee_special_values(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype)
    t, s = _run(x)
    assert np.isnan(t[0]) and np.isnan(s[0])
    assert t[1] == 1 and t[2] == -1 and s[1] == 1 and s[2] == 0
    assert t[3] == 0 and s[3] == 0.5


def test_python_fallbacks_agree():
    for v in (-3.0, -0.1, 0.0, 2.5):
        assert math.isclose(tanh(v), math.tanh(v))
        assert abs(float(tanh(np.float32(v))) - math.tanh(v)) < 5e-7
        assert abs(float(sigmoid(np.float32(v))) - 1 / (1 + math.exp(-v))) < 2.5e-7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_python_fallbacks_match_the_compiled_forms_at_special_values(dtype):
    """The CUDA simulator runs the plain-Python relu/drelu: they must give what the
    compiled ones give (relu(-inf) = 0, drelu(inf) = 1, drelu(NaN) = 0), not NaN."""
    from fastrnn.kernels.activations import drelu, relu

    @numba.njit
    def compiled(x, out_relu, out_drelu):
        for i in range(x.shape[0]):
            out_relu[i] = relu(x[i])
            out_drelu[i] = drelu(x[i])

    x = np.array([-np.inf, -2.0, -0.0, 0.0, 3.0, np.inf, np.nan], dtype)
    want_relu, want_drelu = np.empty_like(x), np.empty_like(x)
    compiled(x, want_relu, want_drelu)
    got_relu = np.array([relu(v) for v in x])
    got_drelu = np.array([drelu(v) for v in x])
    assert got_relu.dtype == dtype and got_drelu.dtype == dtype
    np.testing.assert_array_equal(got_relu, want_relu)
    np.testing.assert_array_equal(got_drelu, want_drelu)
    np.testing.assert_array_equal(want_relu[:2], [0, 0])
    np.testing.assert_array_equal(want_drelu, [0, 0, 0, 0, 1, 1, 0])
