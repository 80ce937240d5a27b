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
from .activations import dsigmoid, dtanh, one_minus, sigmoid_rows, tanh, tanh_rows
from .blas import (gemm, matmul_add, matmul_add_transposed_out, matmul_transposed, matmul_transposed_add,
                   pack_for_rows, pack_transposed)
from .common import bound_in, input_and_weight_grads, total_hidden_grad
from .workspace import carve, reused


@kernel
def gru_forward_kernel(x, weights, biases, h, lengths, y, gates, h_n_all, h_proj, training):
    """Reset-after GRU over all T steps.

    x (T, B, I); weights = (w_ih (3H, I), w_ih_t, w_hh (3H, H), w_hh_t) where the
    ``_t`` entries are packed transposes for few rows (blas.pack_transposed: T*B rows
    for w_ih, B for w_hh); biases = (b_ih + b_hh, b_ih, b_hh), each (3H,) (r and z see
    the sum, n each part on its own side of the reset); h (B, H) initial state in,
    final state out; lengths (B,) int64 in 1..T; y (T, B, H) output.
    gates (T, B, 3H) workspace, on return r, z, n; h_n_all (T, B, H): W_hn h + b_hn of
    every step when ``training`` (else ignored, may have T = 0);
    h_proj (B, 3H) workspace for the recurrent product.
    """
    w_ih, w_ih_t, w_hh, w_hh_t = weights
    b_sum, b_ih, b_hh = biases
    steps, batch, n_in = x.shape
    hidden = h.shape[1]
    matmul_transposed(x.reshape(steps * batch, n_in), w_ih, w_ih_t, gates.reshape(steps * batch, 3 * hidden))
    b_rz, b_in, b_hn = b_sum[:2 * hidden], b_ih[2 * hidden:], b_hh[2 * hidden:]
    for t in range(steps):
        h_proj[:] = 0
        matmul_transposed_add(h, w_hh, w_hh_t, h_proj)
        for b in range(batch):
            h_b, y_tb = h[b], y[t, b]
            if t < lengths[b]:
                row, hp = gates[t, b], h_proj[b]
                rz, hp_rz = row[:2 * hidden], hp[:2 * hidden]
                r, z, n = row[0:hidden], row[hidden:2 * hidden], row[2 * hidden:]
                hn = hp[2 * hidden:]
                # One output stream per loop, so every loop vectorizes (see activations).
                for j in range(2 * hidden):
                    rz[j] += hp_rz[j]
                sigmoid_rows(rz, b_rz)
                for j in range(hidden):
                    hn[j] += b_hn[j]  # W_hn h + b_hn, kept for the backward
                for j in range(hidden):
                    n[j] = tanh(n[j] + b_in[j] + r[j] * hn[j])
                for j in range(hidden):
                    y_tb[j] = n[j] + z[j] * (h_b[j] - n[j])
                h_b[:] = y_tb
                if training:
                    h_n_all[t, b] = hn
            else:
                y_tb[:] = 0


@kernel
def gru_backward_kernel(x, w_ih, w_hh, h0, lengths, y, gates, h_n_all, dy, dh,
                        dg_x, dg_h, dx, dw_ih, dw_hh, db_ih, db_hh, clip, trace, w_hh_t, dh_t):
    """Backpropagate through :func:`gru_forward_kernel` (training mode).

    Saved forward arrays are read only. dy (T, B, H); dh (B, H): dL/dh_n in, dL/dh0 out.
    dg_x, dg_h (T, B, 3H) workspace: gradients of the input pre-activations
    (W_ih x + b_ih) and of the recurrent ones (W_hh h + b_hh); they differ in the n block.
    Outputs (overwritten): dx (T, B, I), dw_ih, dw_hh, db_ih, db_hh.
    clip (scalar of the dtype): at every valid step the total dL/dh_t (dy_t plus what
    flows back from step t+1) is clipped elementwise to [-clip, clip] before it flows
    on; inf turns clipping off. trace (T, B, H): receives that clipped dL/dh_t of
    every step, 0 past each length; a (0, B, H) array turns tracing off.
    w_hh_t, dh_t: blas.pack_for_rows(w_hh, B) and its (H, B) scratch (see
    blas.matmul_add_transposed_out).
    """
    steps, batch, n_in = x.shape
    hidden = h0.shape[1]
    tracing = trace.shape[0] > 0
    for t in range(steps - 1, -1, -1):
        for b in range(batch):
            dx_row, dh_row = dg_x[t, b], dg_h[t, b]
            if t < lengths[b]:
                row = gates[t, b]
                g_r, g_z, g_n = row[0:hidden], row[hidden:2 * hidden], row[2 * hidden:]
                dx_r, dx_z, dx_n = dx_row[0:hidden], dx_row[hidden:2 * hidden], dx_row[2 * hidden:]
                dh_r, dh_z, dh_n = dh_row[0:hidden], dh_row[hidden:2 * hidden], dh_row[2 * hidden:]
                h_prev = y[t - 1, b] if t > 0 else h0[b]
                hn, dh_b = h_n_all[t, b], dh[b]
                total_hidden_grad(dh_b, dy[t, b], clip, trace, t, b)  # dh_b now holds dL/dh_t
                for j in range(hidden):
                    dx_n[j] = dh_b[j] * one_minus(g_z[j]) * dtanh(g_n[j])
                for j in range(hidden):
                    dx_z[j] = dh_b[j] * (h_prev[j] - g_n[j]) * dsigmoid(g_z[j])
                for j in range(hidden):
                    dx_r[j] = dx_n[j] * hn[j] * dsigmoid(g_r[j])
                for j in range(hidden):
                    dh_n[j] = dx_n[j] * g_r[j]
                dh_r[:] = dx_r
                dh_z[:] = dx_z
                for j in range(hidden):
                    dh_b[j] *= g_z[j]  # plus the recurrent product below
            else:
                dx_row[:] = 0
                dh_row[:] = 0
                if tracing:
                    trace[t, b] = 0
        matmul_add_transposed_out(dg_h[t], w_hh, w_hh_t, dh_t, dh)
    rows = steps * batch
    input_and_weight_grads(x, h0, y, dg_x.reshape(rows, 3 * hidden), dg_h.reshape(rows, 3 * hidden),
                           w_ih, dx, dw_ih, dw_hh, db_ih, db_hh)


@kernel
def gru_reset_before_forward_kernel(x, weights, bias, h, lengths, y, gates, reset_h, training):
    """Reset-before GRU over all T steps.

    As :func:`gru_forward_kernel` except: bias (3H,) = b_ih + b_hh (both enter the
    same sums); reset_h (B, H) workspace for r * h; nothing beyond ``gates`` (r, z, n)
    is kept for training (r * h_{t-1} is recomputed in backward).
    """
    w_ih, w_ih_t, w_hh, w_hh_t = weights
    steps, batch, n_in = x.shape
    hidden = h.shape[1]
    matmul_transposed(x.reshape(steps * batch, n_in), w_ih, w_ih_t, gates.reshape(steps * batch, 3 * hidden))
    b_n = bias[2 * hidden:]
    w_rz, w_n = w_hh[:2 * hidden], w_hh[2 * hidden:]
    w_rz_t, w_n_t = w_hh_t[:, :2 * hidden], w_hh_t[:, 2 * hidden:]
    for t in range(steps):
        gates_t = gates[t]
        matmul_transposed_add(h, w_rz, w_rz_t, gates_t[:, :2 * hidden])
        for b in range(batch):
            row, h_b, rh = gates_t[b], h[b], reset_h[b]
            sigmoid_rows(row[:2 * hidden], bias[:2 * hidden])  # r, z
            for j in range(hidden):
                rh[j] = row[j] * h_b[j]
        matmul_transposed_add(reset_h, w_n, w_n_t, gates_t[:, 2 * hidden:])
        for b in range(batch):
            h_b, y_tb = h[b], y[t, b]
            if t < lengths[b]:
                row = gates_t[b]
                z, n = row[hidden:2 * hidden], row[2 * hidden:]
                tanh_rows(n, b_n)
                for j in range(hidden):
                    y_tb[j] = n[j] + z[j] * (h_b[j] - n[j])
                h_b[:] = y_tb
            else:
                y_tb[:] = 0


@kernel
def gru_reset_before_backward_kernel(x, w_ih, w_hh, h0, lengths, y, gates, dy, dh,
                                     dgates, reset_h_all, d_reset_h, dx, dw_ih, dw_hh, db, db_scratch,
                                     clip, trace):
    """Backpropagate through :func:`gru_reset_before_forward_kernel`.

    dgates (T, B, 3H) workspace (pre-activation gradients, shared by both biases);
    reset_h_all (T, B, H) workspace for r * h_{t-1}; d_reset_h (B, H) workspace.
    dh (B, H): dL/dh_n in, dL/dh0 out. Outputs: dx, dw_ih, dw_hh, db (3H,) which is
    the gradient of b_ih and of b_hh alike; db_scratch (2H,) workspace.
    clip, trace: as in :func:`gru_backward_kernel`.
    """
    steps, batch, n_in = x.shape
    hidden = h0.shape[1]
    tracing = trace.shape[0] > 0
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
                rh, dh_b = reset_h_all[t, b], dh[b]
                total_hidden_grad(dh_b, dy[t, b], clip, trace, t, b)  # dh_b now holds dL/dh_t
                for j in range(hidden):
                    d_n[j] = dh_b[j] * one_minus(g_z[j]) * dtanh(g_n[j])
                for j in range(hidden):
                    d_z[j] = dh_b[j] * (h_prev[j] - g_n[j]) * dsigmoid(g_z[j])
                for j in range(hidden):
                    rh[j] = g_r[j] * h_prev[j]
                for j in range(hidden):
                    dh_b[j] *= g_z[j]
            else:
                d_row[:] = 0
                reset_h_all[t, b] = 0  # uninitialised memory could hold NaN, and 0 * NaN = NaN
                if tracing:
                    trace[t, b] = 0
        d_reset_h[:] = 0
        matmul_add(dg_t[:, 2 * hidden:], w_n, d_reset_h)
        for b in range(batch):
            d_r = dg_t[b, 0:hidden]
            if t < lengths[b]:
                g_r = gates[t, b, 0:hidden]
                h_prev = y[t - 1, b] if t > 0 else h0[b]
                drh, dh_b = d_reset_h[b], dh[b]
                for j in range(hidden):
                    d_r[j] = drh[j] * h_prev[j] * dsigmoid(g_r[j])
                for j in range(hidden):
                    dh_b[j] += drh[j] * g_r[j]
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
    shapes = [(steps, batch, 3 * hidden), ((steps if training else 0) if reset_after else 0, batch, hidden)]
    if training:  # kept for the backward: one block (see workspace.carve)
        gates, h_n_all = carve(x.dtype, shapes, "gru.saved")
    else:
        gates, h_n_all = (reused(f"gru.forward{k}", shape, x.dtype) for k, shape in enumerate(shapes))
    weights = (w_ih, pack_transposed(w_ih, steps * batch), w_hh, pack_transposed(w_hh, batch))
    if reset_after:
        h_proj = reused("gru.h_proj", (batch, 3 * hidden), x.dtype)
        gru_forward_kernel(x, weights, (b_ih + b_hh, b_ih, b_hh), h, lengths, y, gates, h_n_all, h_proj, training)
        saved = (True, x, w_ih, w_hh, h0, lengths, y, gates, h_n_all)
    else:
        reset_h = reused("gru.reset_h", (batch, hidden), x.dtype)
        gru_reset_before_forward_kernel(x, weights, b_ih + b_hh, h, lengths, y, gates, reset_h, training)
        saved = (False, x, w_ih, w_hh, h0, lengths, y, gates)
    return y, h, (saved if training else None)


def gru_backward(saved, dy, dh_n, clip=np.inf, trace=None):
    """Driver: run the fused backward. Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh).

    clip: per-step bound on dL/dh_t (inf: off); trace: None or a C-contiguous
    (T, B, H) array of the dtype that receives the clipped dL/dh_t of every step
    (see :func:`gru_backward_kernel`).
    """
    reset_after, x, w_ih, w_hh, h0, lengths, y, gates = saved[:8]
    steps, batch, _ = x.shape
    hidden = h0.shape[1]
    if trace is None:
        trace = np.empty((0, batch, hidden), x.dtype)
    bound = bound_in(x.dtype, clip)
    dh = dh_n.copy()
    dx = np.empty_like(x)
    dw_ih, dw_hh = np.empty_like(w_ih), np.empty_like(w_hh)
    db_ih = np.empty(3 * hidden, x.dtype)
    if reset_after:
        db_hh = np.empty(3 * hidden, x.dtype)
        dg_x, dg_h = reused("gru.dg_x", gates.shape, x.dtype), reused("gru.dg_h", gates.shape, x.dtype)
        gru_backward_kernel(x, w_ih, w_hh, h0, lengths, y, gates, saved[8], dy, dh,
                            dg_x, dg_h, dx, dw_ih, dw_hh, db_ih, db_hh, bound, trace,
                            pack_for_rows(w_hh, batch), np.empty((hidden, batch), x.dtype))
    else:
        dgates = reused("gru.dg_x", gates.shape, x.dtype)
        reset_h_all = reused("gru.reset_h_all", y.shape, x.dtype)
        d_reset_h = reused("gru.d_reset_h", (batch, hidden), x.dtype)
        gru_reset_before_backward_kernel(x, w_ih, w_hh, h0, lengths, y, gates, dy, dh,
                                         dgates, reset_h_all, d_reset_h, dx, dw_ih, dw_hh, db_ih,
                                         np.empty(2 * hidden, x.dtype), bound, trace)
        db_hh = db_ih.copy()
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh
