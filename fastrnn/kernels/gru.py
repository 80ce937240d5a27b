"""Fused GRU over a whole sequence (gates r, z, n; DESIGN.md), both reset forms.

reset-after (PyTorch, cuDNN, Keras default):
    r, z = sigmoid(W_i{r,z} x + b_i{r,z} + W_h{r,z} h + b_h{r,z})
    n    = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h'   = (1 - z) * n + z * h  =  n + z * (h - n)
reset-before (Cho et al. 2014, Keras reset_after=False):
    n    = tanh(W_in x + b_in + W_hn (r * h) + b_hn)

Kernels allocate nothing and check nothing; drivers below allocate.
"""
import numpy as np

from .._jit import kernel
from .activations import dsigmoid, dtanh, one_minus, sigmoid, tanh
from .blas import gemm, matmul_add, matmul_transposed_add, pack_transposed
from .common import input_and_weight_grads


@kernel
def gru_forward_kernel(x, w_ih, w_hh, w_hh_t, b_ih, b_hh, h, lengths, y, gates, h_n_all, h_proj, training):
    """Reset-after GRU over all T steps.

    x (T, B, I); w_ih (3H, I); w_hh (3H, H); w_hh_t its packed transpose for small
    batches (blas.pack_transposed); b_ih, b_hh (3H,); h (B, H) initial state in,
    final state out; lengths (B,) int64 in 1..T; y (T, B, H) output.
    gates (T, B, 3H) workspace, on return r, z, n; h_n_all (T, B, H): W_hn h + b_hn of
    every step when ``training`` (else ignored, may have T = 0);
    h_proj (B, 3H) workspace for the recurrent product.
    """
    steps, batch, n_in = x.shape
    hidden = h.shape[1]
    gemm(False, True, 1.0, x.reshape(steps * batch, n_in), w_ih, 0.0, gates.reshape(steps * batch, 3 * hidden))
    bi_r, bi_z, bi_n = b_ih[0:hidden], b_ih[hidden:2 * hidden], b_ih[2 * hidden:]
    bh_r, bh_z, bh_n = b_hh[0:hidden], b_hh[hidden:2 * hidden], b_hh[2 * hidden:]
    for t in range(steps):
        h_proj[:] = 0
        matmul_transposed_add(h, w_hh, w_hh_t, h_proj)
        for b in range(batch):
            h_b, y_tb = h[b], y[t, b]
            if t < lengths[b]:
                row, hp = gates[t, b], h_proj[b]
                x_r, x_z, x_n = row[0:hidden], row[hidden:2 * hidden], row[2 * hidden:]
                h_r, h_z, h_n = hp[0:hidden], hp[hidden:2 * hidden], hp[2 * hidden:]
                for j in range(hidden):
                    r = sigmoid(x_r[j] + bi_r[j] + h_r[j] + bh_r[j])
                    z = sigmoid(x_z[j] + bi_z[j] + h_z[j] + bh_z[j])
                    hn = h_n[j] + bh_n[j]
                    n = tanh(x_n[j] + bi_n[j] + r * hn)
                    h_new = n + z * (h_b[j] - n)
                    h_b[j] = h_new
                    y_tb[j] = h_new
                    x_r[j], x_z[j], x_n[j] = r, z, n
                    h_n[j] = hn
                if training:
                    h_n_all[t, b] = h_n
            else:
                y_tb[:] = 0


@kernel
def gru_backward_kernel(x, w_ih, w_hh, h0, lengths, y, gates, h_n_all, dy, dh,
                        dg_x, dg_h, dx, dw_ih, dw_hh, db_ih, db_hh):
    """Backpropagate through :func:`gru_forward_kernel` (training mode).

    Saved forward arrays are read only. dy (T, B, H); dh (B, H): dL/dh_n in, dL/dh0 out.
    dg_x, dg_h (T, B, 3H) workspace: gradients of the input pre-activations
    (W_ih x + b_ih) and of the recurrent ones (W_hh h + b_hh); they differ in the n block.
    Outputs (overwritten): dx (T, B, I), dw_ih, dw_hh, db_ih, db_hh.
    """
    steps, batch, n_in = x.shape
    hidden = h0.shape[1]
    for t in range(steps - 1, -1, -1):
        for b in range(batch):
            dx_row, dh_row = dg_x[t, b], dg_h[t, b]
            if t < lengths[b]:
                row = gates[t, b]
                g_r, g_z, g_n = row[0:hidden], row[hidden:2 * hidden], row[2 * hidden:]
                dx_r, dx_z, dx_n = dx_row[0:hidden], dx_row[hidden:2 * hidden], dx_row[2 * hidden:]
                dh_r, dh_z, dh_n = dh_row[0:hidden], dh_row[hidden:2 * hidden], dh_row[2 * hidden:]
                h_prev = y[t - 1, b] if t > 0 else h0[b]
                hn, dy_tb, dh_b = h_n_all[t, b], dy[t, b], dh[b]
                for j in range(hidden):
                    r, z, n = g_r[j], g_z[j], g_n[j]
                    dh_t = dh_b[j] + dy_tb[j]
                    d_n = dh_t * one_minus(z) * dtanh(n)
                    d_z = dh_t * (h_prev[j] - n) * dsigmoid(z)
                    d_r = d_n * hn[j] * dsigmoid(r)
                    dx_r[j] = d_r
                    dx_z[j] = d_z
                    dx_n[j] = d_n
                    dh_r[j] = d_r
                    dh_z[j] = d_z
                    dh_n[j] = d_n * r
                    dh_b[j] = dh_t * z  # plus the recurrent product below
            else:
                dx_row[:] = 0
                dh_row[:] = 0
        matmul_add(dg_h[t], w_hh, dh)
    rows = steps * batch
    input_and_weight_grads(x, h0, y, dg_x.reshape(rows, 3 * hidden), dg_h.reshape(rows, 3 * hidden),
                           w_ih, dx, dw_ih, dw_hh, db_ih, db_hh)


@kernel
def gru_reset_before_forward_kernel(x, w_ih, w_hh, w_hh_t, bias, h, lengths, y, gates, reset_h, training):
    """Reset-before GRU over all T steps.

    As :func:`gru_forward_kernel` except: bias (3H,) = b_ih + b_hh (both enter the
    same sums); reset_h (B, H) workspace for r * h; nothing beyond ``gates`` (r, z, n)
    is kept for training (r * h_{t-1} is recomputed in backward).
    """
    steps, batch, n_in = x.shape
    hidden = h.shape[1]
    gemm(False, True, 1.0, x.reshape(steps * batch, n_in), w_ih, 0.0, gates.reshape(steps * batch, 3 * hidden))
    b_r, b_z, b_n = bias[0:hidden], bias[hidden:2 * hidden], bias[2 * hidden:]
    w_rz, w_n = w_hh[:2 * hidden], w_hh[2 * hidden:]
    w_rz_t, w_n_t = w_hh_t[:, :2 * hidden], w_hh_t[:, 2 * hidden:]
    for t in range(steps):
        gates_t = gates[t]
        matmul_transposed_add(h, w_rz, w_rz_t, gates_t[:, :2 * hidden])
        for b in range(batch):
            row, h_b, rh = gates_t[b], h[b], reset_h[b]
            g_r, g_z = row[0:hidden], row[hidden:2 * hidden]
            for j in range(hidden):
                r = sigmoid(g_r[j] + b_r[j])
                g_r[j] = r
                g_z[j] = sigmoid(g_z[j] + b_z[j])
                rh[j] = r * h_b[j]
        matmul_transposed_add(reset_h, w_n, w_n_t, gates_t[:, 2 * hidden:])
        for b in range(batch):
            h_b, y_tb = h[b], y[t, b]
            if t < lengths[b]:
                row = gates_t[b]
                g_z, g_n = row[hidden:2 * hidden], row[2 * hidden:]
                for j in range(hidden):
                    n = tanh(g_n[j] + b_n[j])
                    h_new = n + g_z[j] * (h_b[j] - n)
                    g_n[j] = n
                    h_b[j] = h_new
                    y_tb[j] = h_new
            else:
                y_tb[:] = 0


@kernel
def gru_reset_before_backward_kernel(x, w_ih, w_hh, h0, lengths, y, gates, dy, dh,
                                     dgates, reset_h_all, d_reset_h, dx, dw_ih, dw_hh, db, db_scratch):
    """Backpropagate through :func:`gru_reset_before_forward_kernel`.

    dgates (T, B, 3H) workspace (pre-activation gradients, shared by both biases);
    reset_h_all (T, B, H) workspace for r * h_{t-1}; d_reset_h (B, H) workspace.
    dh (B, H): dL/dh_n in, dL/dh0 out. Outputs: dx, dw_ih, dw_hh, db (3H,) which is
    the gradient of b_ih and of b_hh alike.
    """
    steps, batch, n_in = x.shape
    hidden = h0.shape[1]
    w_rz, w_n = w_hh[:2 * hidden], w_hh[2 * hidden:]
    for t in range(steps - 1, -1, -1):
        dg_t = dgates[t]
        for b in range(batch):
            d_row = dg_t[b]
            if t < lengths[b]:
                row = gates[t, b]
                g_r, g_z, g_n = row[0:hidden], row[hidden:2 * hidden], row[2 * hidden:]
                d_z, d_n = d_row[hidden:2 * hidden], d_row[2 * hidden:]
                h_prev = y[t - 1, b] if t > 0 else h0[b]
                rh, dy_tb, dh_b = reset_h_all[t, b], dy[t, b], dh[b]
                for j in range(hidden):
                    z, n = g_z[j], g_n[j]
                    dh_t = dh_b[j] + dy_tb[j]
                    d_n[j] = dh_t * one_minus(z) * dtanh(n)
                    d_z[j] = dh_t * (h_prev[j] - n) * dsigmoid(z)
                    dh_b[j] = dh_t * z
                    rh[j] = g_r[j] * h_prev[j]
            else:
                d_row[:] = 0
                reset_h_all[t, b] = 0  # uninitialised memory could hold NaN, and 0 * NaN = NaN
        d_reset_h[:] = 0
        matmul_add(dg_t[:, 2 * hidden:], w_n, d_reset_h)
        for b in range(batch):
            d_r = dg_t[b, 0:hidden]
            if t < lengths[b]:
                g_r = gates[t, b, 0:hidden]
                h_prev = y[t - 1, b] if t > 0 else h0[b]
                drh, dh_b = d_reset_h[b], dh[b]
                for j in range(hidden):
                    r = g_r[j]
                    d_r[j] = drh[j] * h_prev[j] * dsigmoid(r)
                    dh_b[j] += drh[j] * r
        matmul_add(dg_t[:, :2 * hidden], w_rz, dh)
    rows = steps * batch
    dg_2d = dgates.reshape(rows, 3 * hidden)
    input_and_weight_grads(x, h0, y, dg_2d, dg_2d[:, :2 * hidden], w_ih, dx, dw_ih, dw_hh[:2 * hidden], db, db_scratch)
    gemm(True, False, 1.0, dg_2d[:, 2 * hidden:], reset_h_all.reshape(rows, hidden), 0.0, dw_hh[2 * hidden:])


def gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, training, reset_after):
    """Driver: allocate outputs/workspace, run the fused forward of either form.

    Arguments validated, C-contiguous, one dtype; b_ih, b_hh (3H,) (zeros when the
    layer has no bias); lengths (B,) int64. Returns (y, h_n, saved) where saved is
    what the backward needs (None unless ``training``).
    """
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    h = h0.copy()
    y = np.empty((steps, batch, hidden), x.dtype)
    gates = np.empty((steps, batch, 3 * hidden), x.dtype)
    w_hh_t = pack_transposed(w_hh, batch)
    if reset_after:
        h_n_all = np.empty((steps if training else 0, batch, hidden), x.dtype)
        h_proj = np.empty((batch, 3 * hidden), x.dtype)
        gru_forward_kernel(x, w_ih, w_hh, w_hh_t, b_ih, b_hh, h, lengths, y, gates, h_n_all, h_proj, training)
        saved = (True, x, w_ih, w_hh, h0, lengths, y, gates, h_n_all)
    else:
        reset_h = np.empty((batch, hidden), x.dtype)
        gru_reset_before_forward_kernel(x, w_ih, w_hh, w_hh_t, b_ih + b_hh, h, lengths, y, gates, reset_h, training)
        saved = (False, x, w_ih, w_hh, h0, lengths, y, gates)
    return y, h, (saved if training else None)


def gru_backward(saved, dy, dh_n):
    """Driver: run the fused backward. Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh)."""
    reset_after, x, w_ih, w_hh, h0, lengths, y, gates = saved[:8]
    steps, batch, _ = x.shape
    hidden = h0.shape[1]
    dh = dh_n.copy()
    dx = np.empty_like(x)
    dw_ih, dw_hh = np.empty_like(w_ih), np.empty_like(w_hh)
    db_ih = np.empty(3 * hidden, x.dtype)
    if reset_after:
        db_hh = np.empty(3 * hidden, x.dtype)
        dg_x, dg_h = np.empty_like(gates), np.empty_like(gates)
        gru_backward_kernel(x, w_ih, w_hh, h0, lengths, y, gates, saved[8], dy, dh,
                            dg_x, dg_h, dx, dw_ih, dw_hh, db_ih, db_hh)
    else:
        dgates = np.empty_like(gates)
        reset_h_all = np.empty_like(y)
        d_reset_h = np.empty((batch, hidden), x.dtype)
        gru_reset_before_backward_kernel(x, w_ih, w_hh, h0, lengths, y, gates, dy, dh,
                                         dgates, reset_h_all, d_reset_h, dx, dw_ih, dw_hh, db_ih,
                                         np.empty(2 * hidden, x.dtype))
        db_hh = db_ih.copy()
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh
