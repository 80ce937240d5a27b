"""Fused LSTM over a whole sequence (gates i, f, g, o; DESIGN.md), optionally with a
projection of the output (``proj_size``, as torch and Sak et al. 2014):

    i, f, o = sigmoid(.), g = tanh(.)   of   W_ih x_t + W_hh h_{t-1} + b
    c_t = f * c_{t-1} + i * g
    m_t = o * tanh(c_t)
    h_t = m_t                 without projection
    h_t = W_hr m_t            with projection: W_hr (P, H), h and y have width P

Inference with a batch above SMALL_BATCH and no projection runs
:func:`lstm_inference_fm_kernel` (feature-major layout, below); everything else the
batch-major :func:`lstm_forward_kernel` and :func:`lstm_backward_kernel`.

Kernels allocate nothing, check nothing and write into the arrays they are given;
the drivers below allocate and pick arguments. All arrays share one float dtype and
are C-contiguous unless said otherwise. "No projection" is spelled by a W_hr of
shape (0, 0); then P = H.
"""
import numpy as np

from .._jit import kernel
from .activations import dsigmoid, dtanh, sigmoid, sigmoid_rows, tanh, tanh_rows
from .blas import (SMALL_BATCH, gemm, matmul_add, matmul_add_transposed_out, matmul_transposed,
                   matmul_transposed_add, pack_for_rows, pack_transposed)
from .common import bound_in, input_and_weight_grads, total_hidden_grad
from .workspace import carve, reused


@kernel
def lstm_forward_kernel(x, weights, bias, h, c, lengths, y, gates, c_all, m_all, h_proj, training):
    """Run the LSTM over all T steps.

    x (T, B, I); weights = (w_ih (4H, I), w_ih_t, w_hh (4H, P), w_hh_t, w_hr (P, H), w_hr_t)
    where the ``_t`` entries are packed transposes for few rows (blas.pack_transposed:
    T*B rows for w_ih, B for the others) and w_hr is (0, 0) without projection;
    bias (4H,) = b_ih + b_hh; h (B, P), c (B, H): initial state on entry, final state
    on return (in place); lengths (B,) int64 in 1..T; y (T, B, P) output (zero past
    each length); gates (T, B, 4H) workspace, on return the activated gates i, f, g, o;
    c_all (T, B, H): cell state after every step when ``training`` (else T may be 0);
    m_all (T, B, H) with projection: o * tanh(c) of every step when ``training``
    (zero past each length), (1, B, H) scratch in inference, unused (0, B, H) without
    projection; h_proj (B, P) scratch with projection. No argument aliases another.
    """
    w_ih, w_ih_t, w_hh, w_hh_t, w_hr, w_hr_t = weights
    projected = w_hr.shape[0] > 0
    steps, batch, n_in = x.shape
    hidden = c.shape[1]
    matmul_transposed(x.reshape(steps * batch, n_in), w_ih, w_ih_t, gates.reshape(steps * batch, 4 * hidden))
    for t in range(steps):
        matmul_transposed_add(h, w_hh, w_hh_t, gates[t])
        m_t = m_all[t if training else 0] if projected else y[t]
        for b in range(batch):
            c_b, m_tb = c[b], m_t[b]
            if t < lengths[b]:
                row = gates[t, b]
                sigmoid_rows(row[:2 * hidden], bias[:2 * hidden])  # i, f
                tanh_rows(row[2 * hidden:3 * hidden], bias[2 * hidden:3 * hidden])  # g
                sigmoid_rows(row[3 * hidden:], bias[3 * hidden:])  # o
                i, f = row[0:hidden], row[hidden:2 * hidden]
                g, o = row[2 * hidden:3 * hidden], row[3 * hidden:]
                # One output stream per loop, so every loop vectorizes (see activations).
                for j in range(hidden):
                    c_b[j] = f[j] * c_b[j] + i[j] * g[j]
                for j in range(hidden):
                    m_tb[j] = o[j] * tanh(c_b[j])
                if not projected:
                    h[b] = m_tb
            else:
                m_tb[:] = 0  # y is zero past the length (and m must be, for dW_hr)
            if training:
                c_all[t, b] = c_b
        if projected:
            h_proj[:] = 0
            matmul_transposed_add(m_t, w_hr, w_hr_t, h_proj)
            for b in range(batch):
                if t < lengths[b]:
                    h[b] = h_proj[b]
                    y[t, b] = h_proj[b]
                else:
                    y[t, b] = 0


@kernel
def lstm_backward_kernel(x, weights, h0, c0, lengths, y, gates, c_all, m_all, dy,
                         dh, dc, dgates, dh_all, dm, dh_t, dx, grads, clip, trace):
    """Backpropagate through all T steps of :func:`lstm_forward_kernel` (training mode).

    x, weights = (w_ih, w_hh, w_hh_t, w_hr), h0, c0, lengths, y, gates, c_all, m_all:
    as the training forward left them (read only), w_hh_t from blas.pack_for_rows;
    dy (T, B, P) gradient of y.
    dh (B, P), dc (B, H): dL/dh_n, dL/dc_n on entry, dL/dh0, dL/dc0 on return.
    Workspaces: dgates (T, B, 4H) pre-activation gradients; with projection dh_all
    (T, B, P) (dL/dh_t of every step) and dm (B, H) (else both unused, T or B = 0);
    dh_t (P, B) above SMALL_BATCH (see blas.matmul_add_transposed_out), else (0, 0).
    grads = (dw_ih (4H, I), dw_hh (4H, P), dw_hr (P, H) or (0, 0), db (4H,) as a
    (1, 4H) array): overwritten, as is dx (T, B, I).
    clip (scalar of the dtype): at every valid step the total dL/dh_t (dy_t plus what
    flows back from step t+1; width P) is clipped elementwise to [-clip, clip] before
    it flows on (Graves 2013); inf turns clipping off (the pass is skipped).
    trace (T, B, P): receives that clipped dL/dh_t of every step, 0 past each
    length; a (0, B, P) array turns tracing off. Neither aliases another argument.
    """
    w_ih, w_hh, w_hh_t, w_hr = weights
    dw_ih, dw_hh, dw_hr, db = grads
    projected = w_hr.shape[0] > 0
    steps, batch, n_in = x.shape
    hidden = c0.shape[1]
    tracing = trace.shape[0] > 0
    for t in range(steps - 1, -1, -1):
        for b in range(batch):
            if t < lengths[b]:
                total_hidden_grad(dh[b], dy[t, b], clip, trace, t, b)  # dh now holds dL/dh_t
            elif tracing:
                trace[t, b] = 0
        if projected:
            for b in range(batch):
                if t < lengths[b]:
                    dh_all[t, b] = dh[b]
                else:
                    dh_all[t, b] = 0
            dm[:] = 0
            matmul_add(dh_all[t], w_hr, dm)  # dL/dm_t = dL/dh_t W_hr
        dm_t = dm if projected else dh
        for b in range(batch):
            d_row = dgates[t, b]
            if t < lengths[b]:
                row = gates[t, b]
                g_i, g_f = row[0:hidden], row[hidden:2 * hidden]
                g_g, g_o = row[2 * hidden:3 * hidden], row[3 * hidden:]
                d_i, d_f = d_row[0:hidden], d_row[hidden:2 * hidden]
                d_g, d_o = d_row[2 * hidden:3 * hidden], d_row[3 * hidden:]
                c_prev = c_all[t - 1, b] if t > 0 else c0[b]
                c_t, dm_b, dc_b = c_all[t, b], dm_t[b], dc[b]
                # One output stream per loop, so every loop vectorizes (see activations).
                for j in range(hidden):
                    d_o[j] = dm_b[j] * tanh(c_t[j]) * dsigmoid(g_o[j])
                for j in range(hidden):
                    dc_b[j] += dm_b[j] * g_o[j] * dtanh(tanh(c_t[j]))  # dc_b now holds dL/dc_t
                for j in range(hidden):
                    d_i[j] = dc_b[j] * g_g[j] * dsigmoid(g_i[j])
                for j in range(hidden):
                    d_f[j] = dc_b[j] * c_prev[j] * dsigmoid(g_f[j])
                for j in range(hidden):
                    d_g[j] = dc_b[j] * g_i[j] * dtanh(g_g[j])
                for j in range(hidden):
                    dc_b[j] *= g_f[j]
                dh[b] = 0  # refilled by the recurrent product below
            else:
                d_row[:] = 0  # frozen state: dh, dc pass through unchanged
        matmul_add_transposed_out(dgates[t], w_hh, w_hh_t, dh_t, dh)
    dg_2d = dgates.reshape(steps * batch, 4 * hidden)
    input_and_weight_grads(x, h0, y, dg_2d, dg_2d, w_ih, dx, dw_ih, dw_hh, db[0], db[0])
    if projected:
        width = w_hr.shape[0]
        gemm(True, False, 1.0, dh_all.reshape(steps * batch, width), m_all.reshape(steps * batch, hidden),
             0.0, dw_hr)


# --------------------------------------------------------------------------- feature-major inference
# Inference with a batch above SMALL_BATCH and no projection keeps each step's gates
# and the state with the batch innermost: gates (4H, B), state (H, B). The per-step
# products then take the weights as the operand OpenBLAS packs cheaply: measured here
# at S2 (float32, 2 threads) the input and recurrent products of all steps took
# 4.5 ms this way against 5.7 ms as one input GEMM plus h W_hh^T per step (S3: 60 vs
# 70 ms; S4: equal). Training keeps the batch-major layout: the backward's
# end-of-sequence GEMMs need every step's gate gradients as one (T*B, 4H) matrix
# (from per-step (4H, B) planes they took 7.5 ms at S2 against 6.2 as one matrix).
# Keeping the training gates as one (4H, T, B) matrix instead (one GEMM each at the
# end) made the training forward 13-17 ms at S2 against 9 batch-major: rows T*B
# apart cost more than the faster per-step products save.


@kernel
def lstm_inference_fm_kernel(x, w_ih, w_hh, bias, h, c, lengths, y, gates, h_t, c_t, live):
    """Run the LSTM over all T steps, feature-major, keeping nothing for a backward.

    x (T, B, I); w_ih (4H, I); w_hh (4H, H); bias (4H,) = b_ih + b_hh; h, c (B, H):
    initial state on entry, final state on return; lengths (B,) int64 in 1..T;
    y (T, B, H) output (zero past each length); scratch: gates (4H, B), h_t and
    c_t (H, B) (the state, transposed), live (B,) bool.
    """
    steps, batch, _ = x.shape
    hidden = h.shape[1]
    for j in range(hidden):
        for b in range(batch):
            h_t[j, b], c_t[j, b] = h[b, j], c[b, j]
    shortest = lengths.min()
    for t in range(steps):
        for b in range(batch):
            live[b] = t < lengths[b]
        all_live = t < shortest
        gemm(False, True, 1.0, w_ih, x[t], 0.0, gates)
        gemm(False, False, 1.0, w_hh, h_t, 1.0, gates)
        for j in range(hidden):
            i, f = gates[j], gates[hidden + j]
            g, o = gates[2 * hidden + j], gates[3 * hidden + j]
            b_i, b_f, b_g, b_o = bias[j], bias[hidden + j], bias[2 * hidden + j], bias[3 * hidden + j]
            c_j, h_j = c_t[j], h_t[j]
            # One output stream per loop, so every loop vectorizes (see activations);
            # finished sequences keep their state (the selects cost 4% at S2, hence
            # the branch).
            for b in range(batch):
                i[b] = sigmoid(i[b] + b_i)
            for b in range(batch):
                f[b] = sigmoid(f[b] + b_f)
            for b in range(batch):
                g[b] = tanh(g[b] + b_g)
            for b in range(batch):
                o[b] = sigmoid(o[b] + b_o)
            if all_live:
                for b in range(batch):
                    c_j[b] = f[b] * c_j[b] + i[b] * g[b]
                for b in range(batch):
                    h_j[b] = o[b] * tanh(c_j[b])
            else:
                for b in range(batch):
                    c_new = f[b] * c_j[b] + i[b] * g[b]
                    c_j[b] = c_new if live[b] else c_j[b]
                for b in range(batch):
                    h_new = o[b] * tanh(c_j[b])
                    h_j[b] = h_new if live[b] else h_j[b]
        for b in range(batch):
            y_tb = y[t, b]
            if live[b]:
                for j in range(hidden):
                    y_tb[j] = h_t[j, b]
            else:
                y_tb[:] = 0
    for b in range(batch):
        for j in range(hidden):
            h[b, j], c[b, j] = h_t[j, b], c_t[j, b]


def _no_projection(dtype):
    return np.empty((0, 0), dtype)


def lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths, training, w_hr=None):
    """Driver: allocate outputs/workspace and run the fused forward.

    Arguments are validated, C-contiguous, one dtype; bias (4H,) is b_ih + b_hh;
    h0 (B, P), c0 (B, H); lengths (B,) int64; w_hr (P, H) or None. Returns
    (y, h_n, c_n, saved) where saved is what the backward needs (None unless ``training``).
    """
    steps, batch, _ = x.shape
    hidden = c0.shape[1]
    width = h0.shape[1]
    projected = w_hr is not None
    h, c = h0.copy(), c0.copy()
    y = np.empty((steps, batch, width), x.dtype)
    if not training and not projected and batch > SMALL_BATCH:
        lstm_inference_fm_kernel(x, w_ih, w_hh, bias, h, c, lengths, y, np.empty((4 * hidden, batch), x.dtype),
                                 np.empty((hidden, batch), x.dtype), np.empty((hidden, batch), x.dtype),
                                 np.empty(batch, np.bool_))
        return y, h, c, None
    w_hr = w_hr if projected else _no_projection(x.dtype)
    shapes = [(steps, batch, 4 * hidden), (steps if training else 0, batch, hidden),
              ((steps if training else 1) if projected else 0, batch, hidden)]
    if training:  # kept for the backward: one block (see workspace.carve)
        gates, c_all, m_all = carve(x.dtype, shapes, "lstm.saved")
    else:
        gates, c_all, m_all = (reused(f"lstm.forward{k}", shape, x.dtype) for k, shape in enumerate(shapes))
    h_proj = np.empty((batch if projected else 0, width), x.dtype)
    weights = (w_ih, pack_transposed(w_ih, steps * batch), w_hh, pack_transposed(w_hh, batch), w_hr,
               pack_transposed(w_hr, batch) if projected else w_hr)
    lstm_forward_kernel(x, weights, bias, h, c, lengths, y, gates, c_all, m_all, h_proj, training)
    saved = (x, (w_ih, w_hh, w_hr), h0, c0, lengths, y, gates, c_all, m_all) if training else None
    return y, h, c, saved


def lstm_backward(saved, dy, dh_n, dc_n, clip=np.inf, trace=None):
    """Driver: run the fused backward. Returns (dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr or None).

    clip: per-step bound on dL/dh_t (inf: off); trace: None or a C-contiguous
    (T, B, P) array of the dtype that receives the clipped dL/dh_t of every step
    (see :func:`lstm_backward_kernel`).
    """
    x, weights, h0, c0, lengths, y, gates, c_all, m_all = saved
    steps, batch, _ = x.shape
    dh, dc = dh_n.copy(), dc_n.copy()
    dx = np.empty_like(x)
    if trace is None:
        trace = np.empty((0, batch, h0.shape[1]), x.dtype)
    bound = bound_in(x.dtype, clip)
    w_ih, w_hh, w_hr = weights
    projected = w_hr.shape[0] > 0
    dgates = reused("lstm.dgates", gates.shape, x.dtype)
    dh_all = reused("lstm.dh_all", (steps if projected else 0, batch, h0.shape[1]), x.dtype)
    dm = np.empty((batch if projected else 0, c0.shape[1]), x.dtype)
    grads = (np.empty_like(w_ih), np.empty_like(w_hh), np.empty_like(w_hr), np.empty((1, w_ih.shape[0]), x.dtype))
    weights = (w_ih, w_hh, pack_for_rows(w_hh, batch), w_hr)
    dh_t = np.empty((h0.shape[1], batch) if batch > SMALL_BATCH else (0, 0), x.dtype)
    lstm_backward_kernel(x, weights, h0, c0, lengths, y, gates, c_all, m_all, dy, dh, dc, dgates, dh_all, dm, dh_t,
                         dx, grads, bound, trace)
    dw_ih, dw_hh, dw_hr, db = grads
    return dx, dh, dc, dw_ih, dw_hh, db[0], (dw_hr if projected else None)
