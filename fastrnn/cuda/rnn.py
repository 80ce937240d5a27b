"""Elman RNN on CUDA, h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) with act tanh
or relu; mirrors :mod:`fastrnn.kernels.rnn`. The input projection of all steps is
one GEMM, the time loop one launch (:func:`rnn_sequence_kernel`, backward
:func:`rnn_backward_sequence_kernel`). Training keeps only y (the derivative
of either activation is a function of its output). Device arrays of one float
dtype, C-contiguous, no kernel argument aliasing another."""
from ._device import cuda
from .activations import drelu, dtanh, relu, tanh
from .common import empty, grid_barrier, input_and_weight_grads, persistent, row_dot, rows, transposed
from .gemm import gemm
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


@cuda.jit
def rnn_sequence_kernel(pre, b_ih, b_hh, w_hh_t, h_pair, lengths, y, use_relu):
    """All T steps in one launch (see common.persistent): per step each thread adds
    h_{t-1} W_hh^T into pre[t] for its (b, j) (w_hh_t (H, H) = W_hh^T) and applies
    :func:`rnn_cell`; h_pair (2, B, H) holds h_{t-1} in plane t % 2 (h0 in plane 0
    on entry), one grid barrier per step."""
    grid = cuda.cg.this_grid()
    batch, hidden = h_pair.shape[1], h_pair.shape[2]
    first, stride = cuda.grid(1), cuda.gridsize(1)
    for t in range(pre.shape[0]):
        h_prev, h_next = h_pair[t % 2], h_pair[(t + 1) % 2]
        for idx in range(first, batch * hidden, stride):
            b = idx // hidden
            j = idx - b * hidden
            pre[t, b, j] += row_dot(h_prev, b, w_hh_t, j)
            rnn_cell(t, b, j, pre, b_ih, b_hh, h_prev, h_next, lengths, y, use_relu)
        grid_barrier(grid)


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


@cuda.jit
def rnn_backward_sequence_kernel(y, lengths, dy, dh, dpre, w_hh, use_relu):
    """The backward of all T steps in one launch: per step (descending)
    :func:`rnn_cell_backward`, a grid barrier, then dh[b, j] += dpre[t, b, :] W_hh[:, j];
    one barrier per step (as the LSTM's)."""
    grid = cuda.cg.this_grid()
    batch, hidden = dh.shape
    first, stride = cuda.grid(1), cuda.gridsize(1)
    for t in range(y.shape[0] - 1, -1, -1):
        for idx in range(first, batch * hidden, stride):
            b = idx // hidden
            rnn_cell_backward(t, b, idx - b * hidden, y, lengths, dy, dh, dpre, use_relu)
        grid_barrier(grid)
        dpre_t = dpre[t]
        for idx in range(first, batch * hidden, stride):
            b = idx // hidden
            j = idx - b * hidden
            dh[b, j] += row_dot(dpre_t, b, w_hh, j)


def rnn_forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, training, use_relu):
    """Driver. Device arrays: x (T, B, I); w_ih (H, I); w_hh (H, H); b_ih, b_hh (H,);
    h0 (B, H) read only; lengths (B,) int64. Returns (y, h_n, saved or None)."""
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    dtype = x.dtype
    y = empty((steps, batch, hidden), dtype)
    pre = empty((steps, batch, hidden), dtype)
    gemm(rows(x), w_ih, rows(pre), trans_b=True)
    h_pair = empty((2, batch, hidden), dtype)
    h_pair[0].copy_to_device(h0)
    persistent(rnn_sequence_kernel, batch * hidden, pre, b_ih, b_hh, transposed(w_hh), h_pair, lengths, y, use_relu)
    h = h_pair[steps % 2]
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
    persistent(rnn_backward_sequence_kernel, batch * hidden, y, lengths, dy, dh, dpre, w_hh, use_relu)
    dx = empty(x.shape, dtype)
    dw_ih, dw_hh = empty(w_ih.shape, dtype), empty(w_hh.shape, dtype)
    db = empty((hidden,), dtype)
    dp = rows(dpre)
    input_and_weight_grads(x, h0, y, dp, dp, w_ih, dx, dw_ih, dw_hh, db, None)
    return dx, dh, dw_ih, dw_hh, db
