"""Elman RNN on CUDA, h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) with act tanh
or relu; mirrors :mod:`fastrnn.kernels.rnn`. Training keeps only y (the derivative
of either activation is a function of its output). Device arrays of one float
dtype, C-contiguous, no kernel argument aliasing another."""
from ._device import cuda
from .activations import drelu, dtanh, relu, tanh
from .common import elementwise, empty, input_and_weight_grads, rows
from .gemm import gemm
from .lstm import Saved


@cuda.jit
def rnn_step_kernel(t, pre, b_ih, b_hh, h, lengths, y, use_relu):
    """Step t, one thread per (b, j) of (B, H): h = act(pre[t] + b_ih + b_hh) and
    y[t] = h for valid rows, y zero past the length. pre (T, B, H) holds
    W_ih x_t + W_hh h_{t-1}."""
    idx = cuda.grid(1)
    hidden = h.shape[1]
    if idx >= h.shape[0] * hidden:
        return
    b = idx // hidden
    j = idx - b * hidden
    if t < lengths[b]:
        value = pre[t, b, j] + (b_ih[j] + b_hh[j])
        if use_relu:
            value = relu(value)
        else:
            value = tanh(value)
        h[b, j] = value
        y[t, b, j] = value
    else:
        y[t, b, j] = 0


@cuda.jit
def rnn_backward_step_kernel(t, y, lengths, dy, dh, dpre, use_relu):
    """Backward of step t, one thread per (b, j): dpre[t] = (dh + dy[t]) act'(y[t]) and
    dh = 0 for valid rows (refilled by the GEMM dh += dpre[t] W_hh); zero dpre and
    unchanged dh past the length."""
    idx = cuda.grid(1)
    hidden = dh.shape[1]
    if idx >= dh.shape[0] * hidden:
        return
    b = idx // hidden
    j = idx - b * hidden
    if t < lengths[b]:
        if use_relu:
            slope = drelu(y[t, b, j])
        else:
            slope = dtanh(y[t, b, j])
        dpre[t, b, j] = (dh[b, j] + dy[t, b, j]) * slope
        dh[b, j] = 0
    else:
        dpre[t, b, j] = 0


def rnn_forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, training, use_relu):
    """Driver. Device arrays: x (T, B, I); w_ih (H, I); w_hh (H, H); b_ih, b_hh (H,);
    h0 (B, H) read only; lengths (B,) int64. Returns (y, h_n, saved or None)."""
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    dtype = x.dtype
    h = empty((batch, hidden), dtype)
    h.copy_to_device(h0)
    y = empty((steps, batch, hidden), dtype)
    pre = empty((steps, batch, hidden), dtype)
    gemm(rows(x), w_ih, rows(pre), trans_b=True)
    step = elementwise(rnn_step_kernel, batch * hidden)
    for t in range(steps):
        gemm(h, w_hh, pre[t], trans_b=True, accumulate=True)
        step(t, pre, b_ih, b_hh, h, lengths, y, use_relu)
    saved = Saved(x, w_ih, w_hh, h0, lengths, y, use_relu) if training else None
    return y, h, saved


def rnn_backward(saved, dy, dh_n):
    """Driver: returns (dx, dh0, dw_ih, dw_hh, db) with db the gradient of both biases."""
    x, w_ih, w_hh, h0, lengths, y, use_relu = saved.arrays
    steps, batch, _ = x.shape
    hidden = h0.shape[1]
    dtype = x.dtype
    dh = empty((batch, hidden), dtype)
    dh.copy_to_device(dh_n)
    dpre = empty(y.shape, dtype)
    step = elementwise(rnn_backward_step_kernel, batch * hidden)
    for t in range(steps - 1, -1, -1):
        step(t, y, lengths, dy, dh, dpre, use_relu)
        gemm(dpre[t], w_hh, dh, accumulate=True)
    dx = empty(x.shape, dtype)
    dw_ih, dw_hh = empty(w_ih.shape, dtype), empty(w_hh.shape, dtype)
    db = empty((hidden,), dtype)
    dp = rows(dpre)
    input_and_weight_grads(x, h0, y, dp, dp, w_ih, dx, dw_ih, dw_hh, db, None)
    return dx, dh, dw_ih, dw_hh, db
