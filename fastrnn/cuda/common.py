"""Helpers shared by the CUDA cell modules: launch geometry, device allocation,
the whole-sequence (persistent) kernels' recurrent product and barrier, the
fixed-order bias-gradient reduction and the end-of-sequence gradient GEMMs
(mirrors :mod:`fastrnn.kernels.common`)."""
import math

import numpy as np

from . import config
from ._device import cuda, simulated
from .gemm import gemm


def elementwise(kernel, count):
    """``kernel`` configured for ``count`` threads (one per element) in blocks of
    config.TILE**2 threads. ``count`` must be at least 1."""
    block = config.TILE * config.TILE
    return kernel[math.ceil(count / block), block]


def empty(shape, dtype):
    """An uninitialised device array (every kernel writing it writes all of it)."""
    return cuda.device_array(shape, dtype=np.dtype(dtype))


def zeros(shape, dtype):
    """A zero-filled device array (small arrays only: it is copied from the host)."""
    return cuda.to_device(np.zeros(shape, dtype))


def persistent(kernel, items, *args):
    """Launch ``kernel(*args)``, a whole-sequence kernel: its threads walk ``items``
    work items (one per (b, j)) in a grid-stride loop and meet at a grid-wide barrier
    (:func:`grid_barrier`) between time steps, so the grid must be co-resident.

    Blocks of config.TILE**2 threads; as many blocks as the items need, capped at
    what the GPU can keep resident for this kernel (CUDA's cooperative-launch
    limit). One launch per sequence instead of two or more per step: Numba's
    launch costs tens of microseconds, which dwarfed the work of a step at the
    benchmark sizes. The simulator runs cooperative grids of one block only.
    """
    block = config.TILE * config.TILE
    wanted = max(1, math.ceil(items / block))
    if simulated():
        kernel[1, block](*args)
        return
    specialized = kernel.specialize(*args)  # compiled once per argument types
    resident = next(iter(specialized.overloads.values())).max_cooperative_grid_blocks(block)
    specialized[min(wanted, max(1, resident)), block](*args)


@cuda.jit(device=True)
def grid_barrier(grid):
    """Every thread of the grid waits here for all others (a block barrier when the
    grid is one block: cheaper, and all the small sizes need)."""
    if cuda.gridDim.x == 1:
        cuda.syncthreads()
    else:
        grid.sync()


@cuda.jit(device=True)
def row_dot(a, b, w, col):
    """sum_k a[b, k] w[k, col] for 2-D a (B, K) and w (K, N), k ascending (K >= 1).

    The recurrent product of one (b, column) in the whole-sequence kernels: with
    threads of a warp on consecutive columns, w's reads are coalesced and a's are
    one broadcast address."""
    total = a[b, 0] * w[0, col]
    for k in range(1, a.shape[1]):
        total += a[b, k] * w[k, col]
    return total


@cuda.jit
def _transpose_kernel(a, out):
    idx = cuda.grid(1)
    cols = a.shape[1]
    if idx < a.shape[0] * cols:
        r = idx // cols
        out[idx - r * cols, r] = a[r, idx - r * cols]


def transposed(a):
    """A new C-contiguous device array a.T for a 2-D device array a (M, N)."""
    out = empty((a.shape[1], a.shape[0]), a.dtype)
    elementwise(_transpose_kernel, a.shape[0] * a.shape[1])(a, out)
    return out


def rows(array):
    """A C-contiguous (A, B, ..., F) device array viewed as (A*B*..., F)."""
    *lead, last = tuple(array.shape)  # (the simulator's shapes reject negative indices)
    return array.reshape(math.prod(lead), last)


@cuda.jit
def _sum_rows_kernel(a, out):
    j = cuda.grid(1)
    if j < out.shape[0]:
        total = a[0, j]
        for r in range(1, a.shape[0]):
            total += a[r, j]
        out[j] = total


def sum_rows(a, out):
    """out (N,) = sum of the rows of a (M >= 1, N).

    One thread per column adds the rows in ascending order: deterministic (no
    atomics), and consecutive threads read consecutive addresses of every row.
    """
    elementwise(_sum_rows_kernel, out.shape[0])(a, out)


def input_and_weight_grads(x, h0, y, dg_x, dg_h, w_ih, dx, dw_ih, dw_hh, db_ih, db_hh):
    """Input, weight and bias gradients after the backward time loop.

    As :func:`fastrnn.kernels.common.input_and_weight_grads`: x (T, B, I);
    h0 (B, H); y (T, B, H) outputs (the recurrent input h_{t-1} is h0 at t = 0 and
    y[t-1] after: padded rows of y are zero, and so are their gradients);
    dg_x (T*B, G*H) gradient of the input pre-activations; dg_h (T*B, W) of the
    recurrent ones (may be dg_x or a column slice of it). Writes dx (T, B, I),
    dw_ih (G*H, I), dw_hh (W, H), db_ih (G*H,), db_hh (W,) (db_hh may be None when
    it would equal db_ih).
    """
    steps, batch, _ = x.shape
    gemm(dg_x, w_ih, rows(dx))                               # dx = dg_x W_ih
    gemm(dg_x, rows(x), dw_ih, trans_a=True)                 # dW_ih = dg_x^T x
    gemm(dg_h[:batch], h0, dw_hh, trans_a=True)              # dW_hh = sum_t dg_h[t]^T h_{t-1}
    if steps > 1:
        gemm(dg_h[batch:], rows(y)[:(steps - 1) * batch], dw_hh, trans_a=True, accumulate=True)
    sum_rows(dg_x, db_ih)
    if db_hh is not None:
        sum_rows(dg_h, db_hh)
