"""The tiled GEMM kernel and the bias-gradient reduction against NumPy."""
import numpy as np
import pytest

from fastrnn.cuda import common, config
from fastrnn.cuda._device import cuda
from fastrnn.cuda.gemm import REG, gemm

SHAPES = [(9, 20, 5), (1, 7, 3), (8, 8, 8), (3, 1, 17)]  # (M, N, K): partial and exact tiles


def _operands(rng, m, n, k, trans_a, trans_b, dtype):
    a = rng.uniform(-1, 1, (k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.uniform(-1, 1, (n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "M%dN%dK%d" % s)
def test_gemm_matches_numpy(shape, trans_a, trans_b, dtype):
    rng = np.random.default_rng(sum(shape))
    m, n, k = shape
    a, b = _operands(rng, m, n, k, trans_a, trans_b, dtype)
    c0 = rng.uniform(-1, 1, (m, n)).astype(dtype)
    want = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    for accumulate in (False, True):
        c = cuda.to_device(c0 if accumulate else np.full((m, n), np.nan, dtype))  # never read unless accumulating
        gemm(cuda.to_device(a), cuda.to_device(b), c, trans_a, trans_b, accumulate)
        got = c.copy_to_host()
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want + (c0 if accumulate else 0), **tol)


@pytest.mark.parametrize("tile", [1, 3])
def test_gemm_on_strided_views_and_other_tiles(tile, monkeypatch):
    """Column slices (row-strided views) as a and c, as the GRU reset-before form uses."""
    monkeypatch.setattr(config, "TILE", tile)
    rng = np.random.default_rng(tile)
    big_a = rng.uniform(-1, 1, (6, 15))
    w = rng.uniform(-1, 1, (5, 10))
    c_host = rng.uniform(-1, 1, (6, 15))
    a_dev, c_dev = cuda.to_device(big_a), cuda.to_device(c_host)
    gemm(a_dev[:, 10:], w, c_dev[:, :10], accumulate=True)  # c[:, :10] += a[:, 10:] @ w
    want = c_host.copy()
    want[:, :10] += big_a[:, 10:] @ w
    np.testing.assert_allclose(c_dev.copy_to_host(), want, rtol=1e-12, atol=1e-12)


def test_gemm_is_deterministic():
    rng = np.random.default_rng(3)
    a, b = _operands(rng, 9, 20, 13, True, False, np.float32)
    results = []
    for _ in range(2):
        c = cuda.to_device(np.zeros((9, 20), np.float32))
        gemm(cuda.to_device(a), cuda.to_device(b), c, trans_a=True)
        results.append(c.copy_to_host())
    np.testing.assert_array_equal(results[0], results[1])


def test_tile_geometry():
    assert REG >= 1 and config.TILE >= 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sum_rows_adds_rows_in_order(dtype):
    rng = np.random.default_rng(5)
    a = rng.uniform(-1, 1, (7, 11)).astype(dtype)
    out = cuda.to_device(np.full(11, np.nan, dtype))
    common.sum_rows(cuda.to_device(a), out)
    want = a[0].copy()
    for row in a[1:]:
        want += row  # the same fixed order, in the same dtype
    np.testing.assert_array_equal(out.copy_to_host(), want)
