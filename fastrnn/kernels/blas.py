"""Matrix products for the kernels: direct BLAS ``?gemm`` calls plus a small-batch path.

``np.dot`` inside ``@njit`` allocates its result and cannot accumulate; calling
scipy's BLAS directly lets a kernel add the recurrent product straight into the
pre-projected gate buffer (``beta=1``), use transposes without copies and allocate
nothing per step. The BLAS symbols are registered with LLVM by name at import time,
so compiled kernels stay cacheable (a raw function address would not be).

All matrices are 2-D row-major views whose last axis is unit-stride; rows may be
strided (column slices of a wider buffer are fine).
"""
import llvmlite.binding as llvm
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic, overload

from .._jit import inline_kernel, kernel

for _name in ("sgemm", "dgemm"):
    llvm.add_symbol("fastrnn_" + _name, get_cython_function_address("scipy.linalg.cython_blas", _name))

_GEMM_SIG = types.void(*([types.voidptr] * 13))
_sgemm = types.ExternalFunction("fastrnn_sgemm", _GEMM_SIG)
_dgemm = types.ExternalFunction("fastrnn_dgemm", _GEMM_SIG)

#: batches up to this size use the hand-written loop: below it a BLAS call's fixed
#: cost (~1.5 us) exceeds the arithmetic.
SMALL_BATCH = 2

#: tile edge of the transposing add in :func:`matmul_add_transposed_out` (16 floats
#: of a row of c_t fill one 64-byte line)
_TILE = 16

#: largest weight (elements) :func:`pack_for_rows` copies: the copy of W_hh pays at
#: S2 and S3 sizes (LSTM: 65K, 1M elements) but not at S4 (4M)
_PACK_LIMIT = 1 << 20


@intrinsic
def _address_of(typingctx, value):
    """Pointer to a stack copy of ``value`` (Fortran BLAS takes every scalar by reference)."""

    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once_value(builder, args[0])
        return builder.bitcast(slot, cgutils.voidptr_t)

    return types.voidptr(value), codegen


def _blas_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    raise NotImplementedError("only callable from compiled code")


@overload(_blas_gemm)
def _blas_gemm_overload(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    if c.dtype == types.float32:
        routine, scalar = _sgemm, np.float32
    elif c.dtype == types.float64:
        routine, scalar = _dgemm, np.float64
    else:
        return None

    def impl(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        routine(_address_of(np.uint8(ta)), _address_of(np.uint8(tb)),
                _address_of(np.int32(m)), _address_of(np.int32(n)), _address_of(np.int32(k)),
                _address_of(scalar(alpha)), a.ctypes, _address_of(np.int32(lda)),
                b.ctypes, _address_of(np.int32(ldb)),
                _address_of(scalar(beta)), c.ctypes, _address_of(np.int32(ldc)))

    return impl


@inline_kernel
def _leading_dim(a):
    return max(a.strides[0] // a.itemsize, a.shape[1], 1)


@kernel
def gemm(trans_a, trans_b, alpha, a, b, beta, c):
    """``c = alpha * op(a) @ op(b) + beta * c`` for row-major 2-D arrays.

    op(a) is ``a.T`` when ``trans_a`` else ``a``; shapes op(a) (M, K), op(b) (K, N),
    c (M, N); all of one float dtype. ``c`` must not alias ``a`` or ``b``.
    """
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if m == 0 or n == 0:
        return
    # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap operands.
    _blas_gemm(84 if trans_b else 78, 84 if trans_a else 78, n, m, k, alpha,
               b, _leading_dim(b), a, _leading_dim(a), beta, c, _leading_dim(c))


@kernel
def small_matmul_add(a, b, c):
    """``c += a @ b`` by plain loops, for few rows: a (M, K), b (K, N), c (M, N).

    Vectorizes over N without reassociating any sum; four rows of ``b`` per pass
    so ``c`` is loaded and stored a quarter as often. At batch 1 the product streams
    all of ``b`` from L2 every step (LSTM S1: 64 KB in 0.73-0.95 us, L2's bandwidth):
    eight rows per pass, row dot products on ``w`` itself, and interleaving it with
    the gate math in chunks all measured no faster; splitting it over two threads
    (Numba prange, a spin barrier per step) ran 1.5x faster on idle cores but 28x
    slower once any BLAS call had left OpenBLAS's threads spinning on the two cores.
    """
    m, k_total = a.shape
    for row in range(m):
        a_row = a[row]
        c_row = c[row]
        k = 0
        while k + 4 <= k_total:
            a0, a1, a2, a3 = a_row[k], a_row[k + 1], a_row[k + 2], a_row[k + 3]
            b0, b1, b2, b3 = b[k], b[k + 1], b[k + 2], b[k + 3]
            for j in range(c_row.shape[0]):
                c_row[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j]
            k += 4
        while k < k_total:
            a0 = a_row[k]
            b0 = b[k]
            for j in range(c_row.shape[0]):
                c_row[j] += a0 * b0[j]
            k += 1


@kernel
def matmul_add(a, b, c):
    """``c += a @ b`` (a (M, K), b (K, N), c (M, N)), picking the loop or BLAS by M."""
    if a.shape[0] <= SMALL_BATCH:
        small_matmul_add(a, b, c)
    else:
        gemm(False, False, 1.0, a, b, 1.0, c)


@kernel
def matmul_add_transposed_out(a, b, b_t, c_t, c):
    """``c += a @ b`` (a (M, K), b (K, N), c (M, N)) for the backward's per-step product.

    Above SMALL_BATCH rows BLAS writes the transpose ``c_t (N, M) = (a @ b).T``,
    which is then added into ``c``: with ``b`` on that side OpenBLAS packs it as its
    cheap operand. ``b_t`` is ``b.T`` packed row-major (N, K) or empty (then BLAS
    transposes ``b`` itself); :func:`pack_for_rows` chooses. Measured here (float32,
    2 threads, LSTM backward): S2 13.4-13.9 ms packed, 14.1-14.6 unpacked, 14.8-15.3
    for ``a @ b`` straight into ``c``; S4 517-520 packed (the copy of W_hh costs),
    504-505 unpacked, 510 straight. Small M takes the loop on ``b``.
    """
    if a.shape[0] <= SMALL_BATCH:
        small_matmul_add(a, b, c)
        return
    if b_t.shape[0] > 0:
        gemm(False, True, 1.0, b_t, a, 0.0, c_t)
    else:
        gemm(True, True, 1.0, b, a, 0.0, c_t)
    rows, cols = c.shape
    # In tiles, so the column reads of c_t hit lines already in L1 (row by row, every
    # read was a new line: at S3 that cost half of what the transposed product saved).
    for m0 in range(0, rows, _TILE):
        for n0 in range(0, cols, _TILE):
            for m in range(m0, min(m0 + _TILE, rows)):
                c_row = c[m]
                for n in range(n0, min(n0 + _TILE, cols)):
                    c_row[n] += c_t[n, m]


@kernel
def matmul_transposed_add(a, b, b_t, c):
    """``c += a @ b.T`` (a (M, K), b (N, K), c (M, N)).

    ``b_t`` is ``b.T`` packed row-major (K, N), used by the small-M loop; for larger
    M BLAS reads ``b`` directly and ``b_t`` may be empty (see :func:`pack_transposed`).
    """
    if a.shape[0] <= SMALL_BATCH:
        small_matmul_add(a, b_t, c)
    else:
        gemm(False, True, 1.0, a, b, 1.0, c)


@kernel
def matmul_transposed(a, b, b_t, c):
    """``c = a @ b.T`` overwriting c; same arguments as :func:`matmul_transposed_add`."""
    if a.shape[0] <= SMALL_BATCH:
        c[:] = 0
        small_matmul_add(a, b_t, c)
    else:
        gemm(False, True, 1.0, a, b, 0.0, c)


@kernel
def transpose_into(a, out):
    """``out (N, M) = a (M, N).T`` (any strides; one float dtype; no aliasing).

    Eight rows of ``a`` at a time: each column of that block becomes eight
    consecutive elements of a row of ``out``, so the reads and the writes both walk
    memory forwards. numpy's transposing copy (``np.ascontiguousarray(w.T)``) walks
    one side with the full row stride, which at power-of-two widths keeps evicting
    its own lines: measured here (float32, one call) 12.1 vs 5.3 us for a 256 x 64
    weight, 83 vs 23 us for 512 x 128, 4.8 vs 0.7 ms for 2048 x 512.
    """
    rows, cols = a.shape
    r0 = 0
    while r0 + 8 <= rows:
        a0, a1, a2, a3 = a[r0], a[r0 + 1], a[r0 + 2], a[r0 + 3]
        a4, a5, a6, a7 = a[r0 + 4], a[r0 + 5], a[r0 + 6], a[r0 + 7]
        for col in range(cols):
            o = out[col]
            o[r0], o[r0 + 1], o[r0 + 2], o[r0 + 3] = a0[col], a1[col], a2[col], a3[col]
            o[r0 + 4], o[r0 + 5], o[r0 + 6], o[r0 + 7] = a4[col], a5[col], a6[col], a7[col]
        r0 += 8
    for row in range(r0, rows):
        for col in range(cols):
            out[col, row] = a[row, col]


def transposed_copy(w):
    """``w.T`` (w 2-D float) as a new C-contiguous array: ``np.ascontiguousarray(w.T)``, faster."""
    out = np.empty((w.shape[1], w.shape[0]), w.dtype)
    transpose_into(w, out)
    return out


def pack_transposed(w, rows):
    """``w.T`` as a C-contiguous copy when ``rows`` (the batch) takes the small path,
    else an empty array of the same type (BLAS transposes for free)."""
    if rows <= SMALL_BATCH:
        return transposed_copy(w)
    return np.empty((0, 0), w.dtype)


def pack_for_rows(w, rows):
    """``w.T`` as a C-contiguous copy for :func:`matmul_add_transposed_out` when ``rows``
    (the batch) is above SMALL_BATCH and ``w`` is small enough that the copy pays
    (up to _PACK_LIMIT elements); else an empty array of the same type."""
    if rows > SMALL_BATCH and w.size <= _PACK_LIMIT:
        return transposed_copy(w)
    return np.empty((0, 0), w.dtype)
