"""Fused LSTM over a whole sequence (gates i, f, g, o; DESIGN.md).

    i, f, o = sigmoid(.), g = tanh(.)   of   W_ih x_t + W_hh h_{t-1} + b
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Kernels allocate nothing, check nothing and write into the arrays they are given;
the drivers below allocate and pick arguments. All arrays share one float dtype and
are C-contiguous unless said otherwise.
"""
import numpy as np

from .._jit import kernel
from .activations import dsigmoid, dtanh, sigmoid_rows, tanh, tanh_rows
from .blas import gemm, matmul_add, matmul_transposed_add, pack_transposed
from .common import input_and_weight_grads


@kernel
def lstm_forward_kernel(x, w_ih, w_hh, w_hh_t, bias, h, c, lengths, y, gates, c_all, training):
    """Run the LSTM over all T steps.

    x (T, B, I); w_ih (4H, I); w_hh (4H, H); w_hh_t its packed transpose for
    small batches (see blas.pack_transposed); bias (4H,) = b_ih + b_hh;
    h, c (B, H): initial state on entry, final state on return (in place);
    lengths (B,) int64 in 1..T; y (T, B, H) output (zero past each length);
    gates (T, B, 4H) workspace, on return the activated gates i, f, g, o;
    c_all (T, B, H): cell state after every step when ``training`` (ignored otherwise,
    may have T = 0). No argument aliases another.
    """
    steps, batch, n_in = x.shape
    hidden = h.shape[1]
    gates_2d = gates.reshape(steps * batch, 4 * hidden)
    gemm(False, True, 1.0, x.reshape(steps * batch, n_in), w_ih, 0.0, gates_2d)
    for t in range(steps):
        matmul_transposed_add(h, w_hh, w_hh_t, gates[t])
        for b in range(batch):
            h_b, c_b, y_tb = h[b], c[b], y[t, b]
            if t < lengths[b]:
                row = gates[t, b]
                sigmoid_rows(row[:2 * hidden], bias[:2 * hidden])  # i, f
                tanh_rows(row[2 * hidden:3 * hidden], bias[2 * hidden:3 * hidden])  # g
                sigmoid_rows(row[3 * hidden:], bias[3 * hidden:])  # o
                i, f = row[0:hidden], row[hidden:2 * hidden]
                g, o = row[2 * hidden:3 * hidden], row[3 * hidden:]
                for j in range(hidden):
                    c_b[j] = f[j] * c_b[j] + i[j] * g[j]
                for j in range(hidden):
                    y_tb[j] = o[j] * tanh(c_b[j])
                h_b[:] = y_tb
            else:
                y_tb[:] = 0
            if training:
                c_all[t, b] = c_b


@kernel
def lstm_backward_kernel(x, w_ih, w_hh, h0, c0, lengths, y, gates, c_all, dy,
                         dh, dc, dgates, dx, dw_ih, dw_hh, db):
    """Backpropagate through all T steps of :func:`lstm_forward_kernel`.

    x, w_ih, w_hh (4H, H), h0, c0, lengths, y, gates, c_all: as the training forward
    left them (read only). dy (T, B, H) gradient of y.
    dh, dc (B, H): dL/dh_n, dL/dc_n on entry, dL/dh0, dL/dc0 on return (in place).
    dgates (T, B, 4H) workspace: gradients of the gate pre-activations.
    Outputs (overwritten): dx (T, B, I), dw_ih (4H, I), dw_hh (4H, H), db (4H,).
    """
    steps, batch, n_in = x.shape
    hidden = h0.shape[1]
    for t in range(steps - 1, -1, -1):
        for b in range(batch):
            d_row = dgates[t, b]
            if t < lengths[b]:
                row = gates[t, b]
                g_i, g_f = row[0:hidden], row[hidden:2 * hidden]
                g_g, g_o = row[2 * hidden:3 * hidden], row[3 * hidden:]
                d_i, d_f = d_row[0:hidden], d_row[hidden:2 * hidden]
                d_g, d_o = d_row[2 * hidden:3 * hidden], d_row[3 * hidden:]
                c_prev = c_all[t - 1, b] if t > 0 else c0[b]
                c_t, dy_tb, dh_b, dc_b = c_all[t, b], dy[t, b], dh[b], dc[b]
                # One output stream per loop, so every loop vectorizes (see activations).
                for j in range(hidden):
                    dh_b[j] += dy_tb[j]  # dh_b now holds dL/dh_t
                for j in range(hidden):
                    d_o[j] = dh_b[j] * tanh(c_t[j]) * dsigmoid(g_o[j])
                for j in range(hidden):
                    dc_b[j] += dh_b[j] * g_o[j] * dtanh(tanh(c_t[j]))  # dc_b now holds dL/dc_t
                for j in range(hidden):
                    d_i[j] = dc_b[j] * g_g[j] * dsigmoid(g_i[j])
                for j in range(hidden):
                    d_f[j] = dc_b[j] * c_prev[j] * dsigmoid(g_f[j])
                for j in range(hidden):
                    d_g[j] = dc_b[j] * g_i[j] * dtanh(g_g[j])
                for j in range(hidden):
                    dc_b[j] *= g_f[j]
                dh_b[:] = 0  # refilled by the recurrent product below
            else:
                d_row[:] = 0  # frozen state: dh, dc pass through unchanged
        matmul_add(dgates[t], w_hh, dh)
    dg_2d = dgates.reshape(steps * batch, 4 * hidden)
    input_and_weight_grads(x, h0, y, dg_2d, dg_2d, w_ih, dx, dw_ih, dw_hh, db, db)


def lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths, training):
    """Driver: allocate outputs/workspace and run the fused forward.

    Arguments are validated, C-contiguous, one dtype; bias (4H,) is b_ih + b_hh;
    lengths (B,) int64. Returns (y, h_n, c_n, saved) where saved is the tuple the
    backward needs (None unless ``training``).
    """
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    h, c = h0.copy(), c0.copy()
    y = np.empty((steps, batch, hidden), x.dtype)
    gates = np.empty((steps, batch, 4 * hidden), x.dtype)
    c_all = np.empty((steps if training else 0, batch, hidden), x.dtype)
    lstm_forward_kernel(x, w_ih, w_hh, pack_transposed(w_hh, batch), bias, h, c, lengths, y, gates, c_all, training)
    saved = (x, w_ih, w_hh, h0, c0, lengths, y, gates, c_all) if training else None
    return y, h, c, saved


def lstm_backward(saved, dy, dh_n, dc_n):
    """Driver: run the fused backward. Returns (dx, dh0, dc0, dw_ih, dw_hh, db)."""
    x, w_ih, w_hh, h0, c0, lengths, y, gates, c_all = saved
    dh, dc = dh_n.copy(), dc_n.copy()
    dgates = np.empty_like(gates)
    dx = np.empty_like(x)
    dw_ih, dw_hh = np.empty_like(w_ih), np.empty_like(w_hh)
    db = np.empty(w_ih.shape[0], x.dtype)
    lstm_backward_kernel(x, w_ih, w_hh, h0, c0, lengths, y, gates, c_all, dy, dh, dc, dgates, dx, dw_ih, dw_hh, db)
    return dx, dh, dc, dw_ih, dw_hh, db
