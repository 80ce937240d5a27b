"""One tiled shared-memory GEMM kernel for every matrix product of the CUDA path
(numba.cuda has no cuBLAS): input projections, per-step recurrent products,
projections and all gradient products.

``c = op(a) @ op(b)`` (``accumulate=False``) or ``c += op(a) @ op(b)`` (True), with
``op(a) = a.T`` when ``trans_a``. Shapes: op(a) (M, K), op(b) (K, N), c (M, N); all
2-D device arrays of one float dtype whose last axis is unit-stride (row-strided
views such as a column slice ``g[:, :2*H]`` are fine). ``c`` must not alias ``a`` or
``b``. With ``accumulate=False`` c is never read, so a NaN-poisoned c is fine.

Tiling (config.TILE = T, REG = 4): a block of T x T threads computes a
(REG*T) x (REG*T) tile of c; each thread keeps REG x REG accumulators in registers,
for rows ``m0 + ty + i*T`` and columns ``n0 + tx + j*T`` (so a warp's stores are
contiguous). K is walked in slices of T: the block stages an (REG*T) x T slice of
op(a) and a T x (REG*T) slice of op(b) in shared memory, each thread loading REG
elements of each, ordered so that consecutive threads read consecutive addresses
of whichever operand layout is given (transposed or not); shared rows are padded
by one element so that the stores of a load walking k do not collide in one bank. Out-of-range elements
load as zero, so partial tiles need no other guard than the final store.

Determinism: every output is the sum over k in ascending order by one thread, so
results are bit-identical from run to run (no atomics, no split-K).
"""
import functools
import math

import numpy as np

from . import config
from ._device import cuda

#: outputs per thread along each axis (register blocking). A kernel constant, not a
#: knob: tests exercise it at full size by shrinking config.TILE instead.
REG = 4

_NUMBA_TYPES = {}


def _numba_type(dtype):
    from numba import from_dtype
    dtype = np.dtype(dtype)
    if dtype not in _NUMBA_TYPES:
        _NUMBA_TYPES[dtype] = from_dtype(dtype)
    return _NUMBA_TYPES[dtype]


@functools.lru_cache(maxsize=None)
def tile_product(tile, dtype):
    """The device function ``product(a, b, c, trans_a, trans_b, accumulate, m0, n0)``
    for one tile size and dtype: the calling block of tile x tile threads computes
    the (REG*tile) x (REG*tile) tile of c (+)= op(a) op(b) whose first element is
    c[m0, n0] (shared-array shapes and the accumulator type are compile-time
    constants). Every thread of the block must call it with the same arguments; it
    ends with a block barrier, so calls may follow each other."""
    nb_type = _numba_type(dtype)
    zero = np.dtype(dtype).type(0)
    span = REG * tile  # rows (and columns) of c per block
    padded = span + 1  # shared rows one longer: loads that walk k hit distinct banks
    threads = tile * tile

    @cuda.jit(device=True)
    def product(a, b, c, trans_a, trans_b, accumulate, m0, n0):
        a_tile = cuda.shared.array((tile, padded), nb_type)  # [k, m] slice of op(a)
        b_tile = cuda.shared.array((tile, padded), nb_type)  # [k, n] slice of op(b)
        acc = cuda.local.array((REG, REG), nb_type)
        a_reg = cuda.local.array(REG, nb_type)
        b_reg = cuda.local.array(REG, nb_type)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        lid = ty * tile + tx
        rows = c.shape[0]
        cols = c.shape[1]
        depth = a.shape[0] if trans_a else a.shape[1]
        for i in range(REG):
            for j in range(REG):
                acc[i, j] = zero
        for k0 in range(0, depth, tile):
            for e in range(REG):
                idx = lid + e * threads
                # op(a)[m, k]: a is (M, K), or (K, M) when transposed; consecutive
                # threads take consecutive elements of a's rows either way.
                if trans_a:
                    ka = idx // span
                    ma = idx - ka * span
                else:
                    ma = idx // tile
                    ka = idx - ma * tile
                gm = m0 + ma
                gk = k0 + ka
                value = zero
                if gm < rows and gk < depth:
                    if trans_a:
                        value = a[gk, gm]
                    else:
                        value = a[gm, gk]
                a_tile[ka, ma] = value
                # op(b)[k, n]: b is (K, N), or (N, K) when transposed.
                if trans_b:
                    nb = idx // tile
                    kb = idx - nb * tile
                else:
                    kb = idx // span
                    nb = idx - kb * span
                gn = n0 + nb
                gk = k0 + kb
                value = zero
                if gn < cols and gk < depth:
                    if trans_b:
                        value = b[gn, gk]
                    else:
                        value = b[gk, gn]
                b_tile[kb, nb] = value
            cuda.syncthreads()
            for kk in range(tile):
                for i in range(REG):
                    a_reg[i] = a_tile[kk, ty + i * tile]
                for j in range(REG):
                    b_reg[j] = b_tile[kk, tx + j * tile]
                for i in range(REG):
                    for j in range(REG):
                        acc[i, j] += a_reg[i] * b_reg[j]
            cuda.syncthreads()
        for i in range(REG):
            gm = m0 + ty + i * tile
            if gm < rows:
                for j in range(REG):
                    gn = n0 + tx + j * tile
                    if gn < cols:
                        if accumulate:
                            c[gm, gn] += acc[i, j]
                        else:
                            c[gm, gn] = acc[i, j]

    return product


@functools.lru_cache(maxsize=None)
def _gemm_kernel(tile, dtype):
    """The GEMM kernel for one tile size and dtype: block (x, y) computes the tile of
    c at (y * span, x * span)."""
    product = tile_product(tile, dtype)
    span = REG * tile

    @cuda.jit
    def gemm_kernel(a, b, c, trans_a, trans_b, accumulate):
        product(a, b, c, trans_a, trans_b, accumulate, cuda.blockIdx.y * span, cuda.blockIdx.x * span)

    return gemm_kernel


@functools.lru_cache(maxsize=None)
def grid_product(tile, dtype):
    """The device function ``grid_gemm(a, b, c, trans_b, accumulate)``: c (+)= a op(b)
    computed by the whole grid of a whole-sequence kernel (1-D grid of tile x tile
    blocks), block k taking tiles k, k + gridDim.x, ... (row-major over c's tiles).
    Callers separate it from readers of c by a grid barrier."""
    product = tile_product(tile, dtype)
    span = REG * tile

    @cuda.jit(device=True)
    def grid_gemm(a, b, c, trans_b, accumulate):
        across = (c.shape[1] + span - 1) // span
        count = ((c.shape[0] + span - 1) // span) * across
        for index in range(cuda.blockIdx.x, count, cuda.gridDim.x):
            down = index // across
            product(a, b, c, False, trans_b, accumulate, down * span, (index - down * across) * span)

    return grid_gemm


def tile_count(rows, cols):
    """How many blocks :func:`grid_product` can keep busy for a (rows, cols) product."""
    span = REG * config.TILE
    return math.ceil(rows / span) * math.ceil(cols / span)


def gemm(a, b, c, trans_a=False, trans_b=False, accumulate=False):
    """Launch ``c (+)= op(a) @ op(b)`` (see the module docstring for shapes)."""
    rows, cols = c.shape
    depth = a.shape[0] if trans_a else a.shape[1]
    if rows == 0 or cols == 0:
        return
    if depth == 0:
        raise ValueError("gemm: the inner dimension K must be at least 1")
    tile = config.TILE
    span = REG * tile
    grid = (math.ceil(cols / span), math.ceil(rows / span))
    _gemm_kernel(tile, c.dtype)[grid, (tile, tile)](a, b, c, bool(trans_a), bool(trans_b), bool(accumulate))
