"""Helpers shared by the CUDA cell modules: launch geometry, device allocation,
the whole-sequence (persistent) kernels' launch, work split and barrier, the
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


def persistent(kernel, blocks, *args):
    """Launch ``kernel(*args)``, a whole-sequence kernel: a 1-D grid of blocks of
    config.TILE x config.TILE threads whose blocks share each step's products
    (:func:`fastrnn.cuda.gemm.grid_product`) and element-wise work (items from
    :func:`thread_range`) and meet at grid barriers (:func:`grid_barrier`), so the
    grid must be co-resident: ``blocks`` (the most the work can use) capped at
    CUDA's cooperative-launch limit for this kernel.

    One launch per sequence instead of two or more per step: a Numba launch costs
    tens of microseconds, more than a step's work at the benchmark sizes. The
    simulator runs cooperative grids of one block only.
    """
    block = (config.TILE, config.TILE)
    if simulated():
        kernel[1, block](*args)
        return
    specialized = kernel.specialize(*args)  # compiled once per argument types
    resident = next(iter(specialized.overloads.values())).max_cooperative_grid_blocks(block)
    specialized[max(1, min(blocks, resident)), block](*args)


def item_blocks(items):
    """Blocks that :func:`persistent` needs for one thread per item."""
    return math.ceil(items / (config.TILE * config.TILE))


@cuda.jit(device=True)
def thread_range():
    """(first, stride) of this thread's items in a whole-sequence kernel: items
    first, first + stride, ... (blocks of blockDim.x x blockDim.y threads)."""
    threads = cuda.blockDim.x * cuda.blockDim.y
    first = cuda.blockIdx.x * threads + cuda.threadIdx.y * cuda.blockDim.x + cuda.threadIdx.x
    return first, cuda.gridDim.x * threads


@cuda.jit(device=True)
def grid_barrier(grid):
    """Every thread of the grid waits here for all others, and sees their writes
    (a block barrier when the grid is one block: cheaper)."""
    if cuda.gridDim.x == 1:
        cuda.syncthreads()
    else:
        grid.sync()


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
