"""Layer normalization of rows on CUDA, forward and backward, for the variant kernels;
mirrors :mod:`fastrnn.kernels.layer_norm` (same equations, same eps):

    LN(v) = (v - mean(v)) / sqrt(var(v) + eps)      mean, biased var over the row
    dL/dv = rstd * (d_hat - mean(d_hat) - v_hat * mean(d_hat * v_hat))

One block of config.TILE**2 threads per row: each thread sums its elements
j = tid, tid + block, ... in ascending order, then the block adds the partial sums
in a fixed tree over shared memory (:func:`block_sum`). The order depends on the
block size only, so results are bit-identical from run to run (no atomics).

Rows are (t, b) pairs: row r of a (R, N) array is step t0 + r // B of sequence
r % B (B = lengths.shape[0]); rows past a sequence's length are skipped (forward)
or get zero gradients (backward). Shared-memory shapes and the float constants are
compile-time values, so the kernels are built per (block, dtype), as the GEMM is.
"""
import functools
import math

import numpy as np

from . import config
from ._device import cuda
from .gemm import _numba_type

EPS = 1e-5  # as fastrnn.kernels.layer_norm (torch.nn.LayerNorm's default)


@cuda.jit(device=True)
def block_sum(sh, tid, count):
    """Sum each row of the shared array sh (K, count) over its ``count`` partial sums,
    in a fixed tree order; every thread of the block must call it (with its partial
    sums already in sh[:, tid]). Leaves the totals in sh[:, 0]; the caller reads them
    and calls cuda.syncthreads() before writing sh again."""
    cuda.syncthreads()
    n = count
    while n > 1:
        half = (n + 1) // 2
        if tid + half < n:
            for k in range(sh.shape[0]):
                sh[k, tid] += sh[k, tid + half]
        cuda.syncthreads()
        n = half


def row_geometry(kernel, rows):
    """``kernel`` launched with one block of config.TILE**2 threads per row."""
    return kernel[rows, block_size()]


def block_size():
    return config.TILE * config.TILE


@functools.lru_cache(maxsize=None)
def _forward_kernel(block, dtype):
    nb_type = _numba_type(dtype)
    cast = np.dtype(dtype).type
    zero, one, eps = cast(0), cast(1), cast(EPS)

    @cuda.jit
    def layer_norm_rows_kernel(v, gain, out, xhat, rstd, lengths, t0, accumulate, keep):
        """out[r] (+)= gain * LN(v[r]) for valid rows r of v (R, N); with ``keep`` also
        xhat[r] = LN(v[r]) and rstd[r] = 1 / sqrt(var + eps). out may alias v."""
        sh = cuda.shared.array((1, block), nb_type)
        r = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        batch = lengths.shape[0]
        q = r // batch
        b = r - q * batch
        if t0 + q >= lengths[b]:  # the whole block returns together
            return
        n = v.shape[1]
        inv_n = one / cast(n)
        s = zero
        for j in range(tid, n, block):
            s += v[r, j]
        sh[0, tid] = s
        block_sum(sh, tid, block)
        mean = sh[0, 0] * inv_n
        cuda.syncthreads()
        s = zero
        for j in range(tid, n, block):
            d = v[r, j] - mean
            s += d * d
        sh[0, tid] = s
        block_sum(sh, tid, block)
        rs = one / math.sqrt(sh[0, 0] * inv_n + eps)
        if keep and tid == 0:
            rstd[r] = rs
        for j in range(tid, n, block):
            hat = (v[r, j] - mean) * rs
            if keep:
                xhat[r, j] = hat
            if accumulate:
                out[r, j] += gain[j] * hat
            else:
                out[r, j] = gain[j] * hat

    return layer_norm_rows_kernel


@functools.lru_cache(maxsize=None)
def _backward_kernel(block, dtype):
    nb_type = _numba_type(dtype)
    cast = np.dtype(dtype).type
    zero, one = cast(0), cast(1)

    @cuda.jit
    def layer_norm_rows_backward_kernel(d, gain, xhat, rstd, lengths, t0, dv, dgain):
        """For rows r of d (R, N) = dL/d(gain * LN(v) + ...): dgain[r] = d[r] * xhat[r]
        (per-row gain gradients, summed by the caller) and dv[r] = dL/dv[r]; both zero
        past the length. dv may alias d."""
        sh = cuda.shared.array((2, block), nb_type)
        r = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        batch = lengths.shape[0]
        q = r // batch
        b = r - q * batch
        n = d.shape[1]
        if t0 + q >= lengths[b]:
            for j in range(tid, n, block):
                dv[r, j] = 0
                dgain[r, j] = 0
            return
        inv_n = one / cast(n)
        s1 = zero
        s2 = zero
        for j in range(tid, n, block):
            d_hat = d[r, j] * gain[j]
            s1 += d_hat
            s2 += d_hat * xhat[r, j]
        sh[0, tid] = s1
        sh[1, tid] = s2
        block_sum(sh, tid, block)
        m1 = sh[0, 0] * inv_n
        m2 = sh[1, 0] * inv_n
        rs = rstd[r]
        for j in range(tid, n, block):
            g = d[r, j]
            x_j = xhat[r, j]
            dgain[r, j] = g * x_j
            dv[r, j] = rs * (g * gain[j] - m1 - x_j * m2)

    return layer_norm_rows_backward_kernel


def layer_norm_rows(v, gain, out, xhat, rstd, lengths, t0, accumulate, keep):
    """Launch the forward over the rows of v (R, N) (see the kernel); xhat (R, N) and
    rstd (R,) are written only with ``keep`` (pass any arrays of those ranks otherwise)."""
    kernel = _forward_kernel(block_size(), v.dtype)
    row_geometry(kernel, v.shape[0])(v, gain, out, xhat, rstd, lengths, t0, accumulate, keep)


def layer_norm_rows_backward(d, gain, xhat, rstd, lengths, t0, dv, dgain):
    """Launch the backward over the rows of d (R, N) (see the kernel)."""
    kernel = _backward_kernel(block_size(), d.dtype)
    row_geometry(kernel, d.shape[0])(d, gain, xhat, rstd, lengths, t0, dv, dgain)
