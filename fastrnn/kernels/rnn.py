"""Fused vanilla (Elman) RNN over a whole sequence (DESIGN.md).

    h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   act = tanh or relu

The backward needs only the outputs: act'(pre) is 1 - h^2 for tanh and [h > 0]
for relu, so training mode stores nothing beyond y.
"""
import numpy as np

from .._jit import kernel
from .activations import drelu, dtanh, relu, tanh
from .blas import matmul_add, matmul_transposed, matmul_transposed_add, pack_transposed
from .common import bound_in, input_and_weight_grads, total_hidden_grad
from .workspace import reused


@kernel
def rnn_forward_kernel(x, weights, bias, h, lengths, y, pre, use_relu):
    """Run the RNN over all T steps.

    x (T, B, I); weights = (w_ih (H, I), w_ih_t, w_hh (H, H), w_hh_t) where the ``_t``
    entries are packed transposes for few rows (blas.pack_transposed: T*B rows for
    w_ih, B for w_hh); bias (H,) = b_ih + b_hh; h (B, H) initial state
    in, final state out; lengths (B,) int64 in 1..T; y (T, B, H) output;
    pre (T, B, H) workspace for the pre-activations; use_relu selects the activation.
    """
    w_ih, w_ih_t, w_hh, w_hh_t = weights
    steps, batch, n_in = x.shape
    hidden = h.shape[1]
    matmul_transposed(x.reshape(steps * batch, n_in), w_ih, w_ih_t, pre.reshape(steps * batch, hidden))
    for t in range(steps):
        matmul_transposed_add(h, w_hh, w_hh_t, pre[t])
        for b in range(batch):
            h_b, y_tb = h[b], y[t, b]
            if t < lengths[b]:
                p = pre[t, b]
                if use_relu:
                    for j in range(hidden):
                        h_b[j] = relu(p[j] + bias[j])
                else:
                    for j in range(hidden):
                        h_b[j] = tanh(p[j] + bias[j])
                y_tb[:] = h_b
            else:
                y_tb[:] = 0


@kernel
def rnn_backward_kernel(x, w_ih, w_hh, h0, lengths, y, dy, dh, dpre, dx, dw_ih, dw_hh, db, use_relu,
                        clip, trace):
    """Backpropagate through :func:`rnn_forward_kernel`.

    dy (T, B, H); dh (B, H): dL/dh_n in, dL/dh0 out; dpre (T, B, H) workspace.
    Outputs (overwritten): dx (T, B, I), dw_ih, dw_hh, db (H,) (gradient of both biases).
    clip (scalar of the dtype): at every valid step the total dL/dh_t (dy_t plus what
    flows back from step t+1) is clipped elementwise to [-clip, clip] before it flows
    on; inf turns clipping off. trace (T, B, H): receives that clipped dL/dh_t of
    every step, 0 past each length; a (0, B, H) array turns tracing off.
    """
    steps, batch, n_in = x.shape
    hidden = h0.shape[1]
    clipping, tracing = clip < np.inf, trace.shape[0] > 0
    for t in range(steps - 1, -1, -1):
        for b in range(batch):
            d_row = dpre[t, b]
            if t < lengths[b]:
                h_t, dy_tb, dh_b = y[t, b], dy[t, b], dh[b]
                if clipping or tracing:
                    total_hidden_grad(dh_b, dy_tb, clip, trace, t, b)  # dh_b now holds dL/dh_t
                    if use_relu:
                        for j in range(hidden):
                            d_row[j] = dh_b[j] * drelu(h_t[j])
                    else:
                        for j in range(hidden):
                            d_row[j] = dh_b[j] * dtanh(h_t[j])
                elif use_relu:
                    for j in range(hidden):
                        d_row[j] = (dh_b[j] + dy_tb[j]) * drelu(h_t[j])
                else:
                    for j in range(hidden):
                        d_row[j] = (dh_b[j] + dy_tb[j]) * dtanh(h_t[j])
                dh_b[:] = 0  # refilled by the recurrent product below
            else:
                d_row[:] = 0
                if tracing:
                    trace[t, b] = 0
        matmul_add(dpre[t], w_hh, dh)
    dp_2d = dpre.reshape(steps * batch, hidden)
    input_and_weight_grads(x, h0, y, dp_2d, dp_2d, w_ih, dx, dw_ih, dw_hh, db, db)



def rnn_forward(x, w_ih, w_hh, bias, h0, lengths, training, use_relu):
    """Driver: allocate and run the fused forward. bias (H,) = b_ih + b_hh.

    Returns (y, h_n, saved); saved is None unless ``training``.
    """
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    h = h0.copy()
    y = np.empty((steps, batch, hidden), x.dtype)
    pre = reused("rnn.pre", (steps, batch, hidden), x.dtype)  # workspace: never kept
    weights = (w_ih, pack_transposed(w_ih, steps * batch), w_hh, pack_transposed(w_hh, batch))
    rnn_forward_kernel(x, weights, bias, h, lengths, y, pre, use_relu)
    saved = (x, w_ih, w_hh, h0, lengths, y, use_relu) if training else None
    return y, h, saved


def rnn_backward(saved, dy, dh_n, clip=np.inf, trace=None):
    """Driver: run the fused backward. Returns (dx, dh0, dw_ih, dw_hh, db).

    clip: per-step bound on dL/dh_t (inf: off); trace: None or a C-contiguous
    (T, B, H) array of the dtype that receives the clipped dL/dh_t of every step
    (see :func:`rnn_backward_kernel`).
    """
    x, w_ih, w_hh, h0, lengths, y, use_relu = saved
    if trace is None:
        trace = np.empty((0, x.shape[1], h0.shape[1]), x.dtype)
    bound = bound_in(x.dtype, clip)
    dh = dh_n.copy()
    dpre = reused("rnn.dpre", y.shape, x.dtype)
    dx = np.empty_like(x)
    dw_ih, dw_hh = np.empty_like(w_ih), np.empty_like(w_hh)
    db = np.empty(w_hh.shape[0], x.dtype)
    rnn_backward_kernel(x, w_ih, w_hh, h0, lengths, y, dy, dh, dpre, dx, dw_ih, dw_hh, db, use_relu, bound, trace)
    return dx, dh, dw_ih, dw_hh, db
