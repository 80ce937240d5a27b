"""Elman RNN on CUDA, h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) with act tanh
or relu; mirrors :mod:`fastrnn.kernels.rnn`. The input projection of all steps is
one GEMM, the time loop one launch (:func:`rnn_sequence_kernel`, backward
:func:`rnn_backward_sequence_kernel`). Training keeps only y (the derivative
of either activation is a function of its output). Device arrays of one float
dtype, C-contiguous, no kernel argument aliasing another."""
import functools

from . import config
from ._device import cuda
from .activations import drelu, dtanh, relu, tanh
from .common import empty, grid_barrier, input_and_weight_grads, item_blocks, persistent, rows, thread_range
from .gemm import gemm, grid_product, tile_count
from .lstm import Saved


@cuda.jit(device=True)
def rnn_cell(t, b, j, pre, b_ih, b_hh, h_prev, h_next, lengths, y, use_relu):
    """Step t for one (b, j) of (B, H): h_t = act(pre[t, b, j] + b_ih + b_hh) into
    h_next and y[t] for valid rows (pre (T, B, H) holds W_ih x_t + W_hh h_{t-1});
    past the length y is zero and h_next keeps h_prev's value."""
    if t < lengths[b]:
        value = pre[t, b, j] + (b_ih[j] + b_hh[j])
        if use_relu:
            value = relu(value)
        else:
            value = tanh(value)
        h_next[b, j] = value
        y[t, b, j] = value
    else:
        y[t, b, j] = 0
        h_next[b, j] = h_prev[b, j]


@functools.lru_cache(maxsize=None)
def rnn_sequence_kernel(tile, dtype):
    """The kernel running all T steps in one launch (see common.persistent), for one
    tile size and dtype: ``kernel(pre, b_ih, b_hh, w_hh, h, lengths, y, use_relu)``;
    per step the grid adds h W_hh^T into pre[t] (w_hh (H, H)), meets at a barrier,
    applies :func:`rnn_cell` to every (b, j) (h (B, H) in place: h0 on entry, h_T on
    return) and meets again."""
    grid_gemm = grid_product(tile, dtype)

    @cuda.jit
    def kernel(pre, b_ih, b_hh, w_hh, h, lengths, y, use_relu):
        grid = cuda.cg.this_grid()
        batch, hidden = h.shape
        first, stride = thread_range()
        for t in range(pre.shape[0]):
            grid_gemm(h, w_hh, pre[t], True, True)
            grid_barrier(grid)
            for idx in range(first, batch * hidden, stride):
                b = idx // hidden
                rnn_cell(t, b, idx - b * hidden, pre, b_ih, b_hh, h, h, lengths, y, use_relu)
            grid_barrier(grid)

    return kernel


@cuda.jit(device=True)
def rnn_cell_backward(t, b, j, y, lengths, dy, dh, dpre, use_relu):
    """Backward of step t for one (b, j): dpre[t] = (dh + dy[t]) act'(y[t]) and dh = 0
    for valid rows (refilled by dh += dpre[t] W_hh); zero dpre and unchanged dh past
    the length."""
    if t < lengths[b]:
        if use_relu:
            slope = drelu(y[t, b, j])
        else:
            slope = dtanh(y[t, b, j])
        dpre[t, b, j] = (dh[b, j] + dy[t, b, j]) * slope
        dh[b, j] = 0
    else:
        dpre[t, b, j] = 0


@functools.lru_cache(maxsize=None)
def rnn_backward_sequence_kernel(tile, dtype):
    """The kernel running the backward of all T steps in one launch:
    ``kernel(y, lengths, dy, dh, dpre, w_hh, use_relu)``; per step (descending)
    :func:`rnn_cell_backward` for every (b, j), a grid barrier, dh += dpre[t] W_hh
    by the whole grid, a barrier (as the LSTM's)."""
    grid_gemm = grid_product(tile, dtype)

    @cuda.jit
    def kernel(y, lengths, dy, dh, dpre, w_hh, use_relu):
        grid = cuda.cg.this_grid()
        batch, hidden = dh.shape
        first, stride = thread_range()
        for t in range(y.shape[0] - 1, -1, -1):
            for idx in range(first, batch * hidden, stride):
                b = idx // hidden
                rnn_cell_backward(t, b, idx - b * hidden, y, lengths, dy, dh, dpre, use_relu)
            grid_barrier(grid)
            grid_gemm(dpre[t], w_hh, dh, False, True)
            grid_barrier(grid)

    return kernel


def rnn_forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, training, use_relu):
    """Driver. Device arrays: x (T, B, I); w_ih (H, I); w_hh (H, H); b_ih, b_hh (H,);
    h0 (B, H) read only; lengths (B,) int64. Returns (y, h_n, saved or None)."""
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    dtype = x.dtype
    y = empty((steps, batch, hidden), dtype)
    pre = empty((steps, batch, hidden), dtype)
    gemm(rows(x), w_ih, rows(pre), trans_b=True)
    h = empty((batch, hidden), dtype)
    h.copy_to_device(h0)
    blocks = max(tile_count(batch, hidden), item_blocks(batch * hidden))
    persistent(rnn_sequence_kernel(config.TILE, dtype), blocks, pre, b_ih, b_hh, w_hh, h, lengths, y, use_relu)
    saved = Saved(x, w_ih, w_hh, h0, lengths, y, use_relu) if training else None
    return y, h, saved


def rnn_backward(saved, dy, dh_n):
    """Driver: returns (dx, dh0, dw_ih, dw_hh, db) with db the gradient of both biases."""
    x, w_ih, w_hh, h0, lengths, y, use_relu = saved.arrays
    batch = x.shape[1]
    hidden = h0.shape[1]
    dtype = x.dtype
    dh = empty((batch, hidden), dtype)
    dh.copy_to_device(dh_n)
    dpre = empty(y.shape, dtype)
    blocks = max(tile_count(batch, hidden), item_blocks(batch * hidden))
    persistent(rnn_backward_sequence_kernel(config.TILE, dtype), blocks, y, lengths, dy, dh, dpre, w_hh, use_relu)
    dx = empty(x.shape, dtype)
    dw_ih, dw_hh = empty(w_ih.shape, dtype), empty(w_hh.shape, dtype)
    db = empty((hidden,), dtype)
    dp = rows(dpre)
    input_and_weight_grads(x, h0, y, dp, dp, w_ih, dx, dw_ih, dw_hh, db, None)
    return dx, dh, dw_ih, dw_hh, db
