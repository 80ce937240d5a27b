"""Fused GRU variants (reset-after form, gates r, z, n): layer norm, recurrent
(variational) dropout, zoneout, and per-step gradient clipping, in one kernel family.

Per step t of sequence b with t < lengths[b]::

    hbar  = h_{t-1} * m_h                        m_h (B, H) recurrent mask, pre-scaled
    a_ih  = W_ih x_t ;  a_hh = W_hh hbar
    A_ih  = LN(a_ih) * g_ih + b_ih   (layer norm)   or   a_ih + b_ih
    A_hh  = LN(a_hh) * g_hh + b_hh   (layer norm)   or   a_hh + b_hh
    r, z  = sigmoid(A_ih_{r,z} + A_hh_{r,z})
    n     = tanh(A_ih_n + r * A_hh_n)
    ht    = (1 - z) * n + z * h_{t-1}
    h_t   = zeta_t * h_{t-1} + (1 - zeta_t) * ht  (zoneout)   or   ht
    y_t   = h_t

Past lengths[b] the state is frozen and y is zero. LN is kernels.layer_norm
(biased variance over the 3H entries of a row, eps 1e-5). Input dropout and
DropConnect on W_hh are the caller's business (x * mask, W_hh * mask).

Disabled options reach the kernels as zero-size arrays of the compute dtype, so one
compiled specialization per dtype serves every combination; the kernels branch on
``.shape[0] > 0`` outside the pointwise loops. Kernels allocate nothing and check
nothing; the drivers at the bottom allocate.

Cost at S2 (T=100, B=32, I=64, H=128, float32, 2 BLAS threads), forward + backward
against the plain fused GRU: options off ~1.0x, zoneout + recurrent dropout ~1.1x,
layer norm ~1.2x. Layer norm's extra time is about half the normalization work
(serial, per row) and half the first touch of the 2 x T*B*3H normalized rows kept for
the backward; A_hh_n is therefore recomputed from them rather than kept as well.
The layer-norm helpers must be called out of place (scratch rows below): called in
place they fail LLVM's runtime alias check and run scalar, twice as slow.
"""
import numpy as np

from .._jit import kernel
from .activations import dsigmoid, dtanh, one_minus, sigmoid_rows, tanh
from .blas import gemm, matmul_add_transposed_out, matmul_transposed, pack_for_rows, pack_transposed
from .common import bound_in, sum_rows, total_hidden_grad
from .layer_norm import normalize_row, normalize_row_backward


@kernel
def gru_variants_forward_kernel(x, weights, biases, h, lengths, y, gates, h_proj, training,
                                layer_norm, dropout, zoneout, h_n_all):
    """Reset-after GRU with the optional variants over all T steps.

    x (T, B, I); weights = (w_ih (3H, I), w_ih_t, w_hh (3H, H), w_hh_t), the ``_t``
    entries packed transposes for the small-batch path (blas.pack_transposed);
    biases = (b_ih + b_hh, b_ih, b_hh), each (3H,) (r and z see the sum, n each part
    on its own side of the reset); h (B, H) initial state in, final state out
    (must not alias h0 the caller keeps); lengths (B,) int64 in 1..T; y (T, B, H) out.
    gates (T, B, 3H) workspace, on return r, z, n; h_proj (B, 3H) workspace;
    ``training`` keeps what the backward needs.
    layer_norm = (g_ih (3H,), g_hh (3H,), xhat_ih (T, B, 3H), rstd_ih (T, B),
    xhat_hh (T, B, 3H), rstd_hh (T, B), scratch (3H,)): gains all (0,) when off; the
    normalized rows and their 1/std are written at valid (t, b) when training (else
    zero-size); scratch holds a normalized row in inference (normalizing in place
    would fail the vectorizer's runtime alias check and run scalar).
    dropout = (m_h (B, H), hbar (S, B, H)): m_h (0, 0) when off; hbar workspace for
    h_{t-1} * m_h, S = T when training (kept for dW_hh), else 1.
    zoneout: zeta (T, B, H) or (0, 0, 0).
    h_n_all (T, B, H): A_hh_n of every valid step when training without layer norm
    (else (0, B, H): the backward recomputes it from xhat_hh).
    No output may alias an input.
    """
    w_ih, w_ih_t, w_hh, w_hh_t = weights
    b_sum, b_ih, b_hh = biases
    g_ih, g_hh, xhat_ih, rstd_ih, xhat_hh, rstd_hh, ln_row = layer_norm
    m_h, hbar = dropout
    zeta = zoneout
    steps, batch, n_in = x.shape
    hidden = h.shape[1]
    g3 = 3 * hidden
    use_ln = g_ih.shape[0] > 0
    use_mask = m_h.shape[0] > 0
    use_zoneout = zeta.shape[0] > 0
    keep_hn = training and not use_ln
    b_rz, b_in, b_hn = b_sum[:2 * hidden], b_ih[2 * hidden:], b_hh[2 * hidden:]
    x_2d = x.reshape(steps * batch, n_in)
    gates_2d = gates.reshape(steps * batch, g3)

    # Input side, all steps at once (not recurrent): W_ih x, or LN(W_ih x) * g_ih with
    # layer norm. Biases are added in the step, as in the plain kernel.
    matmul_transposed(x_2d, w_ih, w_ih_t, gates_2d)
    if use_ln:
        for t in range(steps):
            for b in range(batch):
                if t < lengths[b]:
                    row = gates[t, b]
                    xh = xhat_ih[t, b] if training else ln_row  # kept for the backward, or scratch
                    rstd = normalize_row(row, xh)
                    if training:
                        rstd_ih[t, b] = rstd
                    for j in range(g3):
                        row[j] = xh[j] * g_ih[j]

    for t in range(steps):
        # Recurrent product into h_proj: W_hh hbar, or LN(W_hh hbar) * g_hh with layer norm.
        if use_mask:
            hb = hbar[t] if training else hbar[0]
            for b in range(batch):
                hb_b, h_b, m_b = hb[b], h[b], m_h[b]
                for j in range(hidden):
                    hb_b[j] = h_b[j] * m_b[j]
            matmul_transposed(hb, w_hh, w_hh_t, h_proj)
        else:
            matmul_transposed(h, w_hh, w_hh_t, h_proj)
        for b in range(batch):
            h_b, y_tb = h[b], y[t, b]
            if t < lengths[b]:
                row, hp = gates[t, b], h_proj[b]
                if use_ln:
                    xh = xhat_hh[t, b] if training else ln_row
                    rstd = normalize_row(hp, xh)
                    if training:
                        rstd_hh[t, b] = rstd
                    for j in range(g3):
                        hp[j] = xh[j] * g_hh[j]
                rz, hp_rz = row[:2 * hidden], hp[:2 * hidden]
                r, z, n = row[0:hidden], row[hidden:2 * hidden], row[2 * hidden:]
                hn = hp[2 * hidden:]
                # One output stream per loop, so every loop vectorizes (see activations).
                for j in range(2 * hidden):
                    rz[j] += hp_rz[j]
                sigmoid_rows(rz, b_rz)
                for j in range(hidden):
                    hn[j] += b_hn[j]  # A_hh_n (recomputed by the backward under layer norm)
                for j in range(hidden):
                    n[j] = tanh(n[j] + b_in[j] + r[j] * hn[j])
                if use_zoneout:
                    zt = zeta[t, b]
                    # zeta h + (1 - zeta) ht: exactly h at zeta = 1, exactly ht at zeta = 0.
                    for j in range(hidden):
                        y_tb[j] = zt[j] * h_b[j] + one_minus(zt[j]) * (n[j] + z[j] * (h_b[j] - n[j]))
                else:
                    for j in range(hidden):
                        y_tb[j] = n[j] + z[j] * (h_b[j] - n[j])
                h_b[:] = y_tb
                if keep_hn:
                    h_n_all[t, b] = hn
            else:
                y_tb[:] = 0


@kernel
def gru_variants_backward_kernel(x, weights, b_hh, h0, lengths, y, gates, h_n_all, layer_norm, dropout, zoneout,
                                 dy, dh, clip, trace, workspace, grads):
    """Backpropagate through :func:`gru_variants_forward_kernel` (training mode).

    Saved forward arrays (x, weights = (w_ih, w_hh, w_hh_t from blas.pack_for_rows),
    b_hh (3H,), h0, lengths, y, gates, h_n_all,
    layer_norm = (g_ih, g_hh, xhat_ih, rstd_ih, xhat_hh, rstd_hh), dropout =
    (m_h, hbar (T, B, H)), zoneout) are read only. dy (T, B, H); dh (B, H): dL/dh_n
    in, dL/dh0 out. clip: scalar of the dtype; where finite, the total dL/dh_t of
    every valid step is clipped elementwise to [-clip, clip] before it is used.
    trace (T, B, H) or (0, 0, 0): receives that (clipped) total, 0 at padded steps.
    workspace = (dg_x (T, B, 3H), dg_h (T, B, 3H), dhbar (B, H), d_hat (3H,), dh_t (H, B)):
    gradients of the input pre-activations W_ih x and of the recurrent ones W_hh hbar
    (after undoing layer norm), of hbar for one step ((0, 0) without dropout), and of
    one normalized row ((0,) without layer norm; out of place so the layer-norm
    backward vectorizes), scratch of blas.matmul_add_transposed_out.
    grads = (dx (T, B, I), dw_ih, dw_hh, db_ih, db_hh, dln_ih, dln_hh), all
    overwritten (dln_* (0,) without layer norm).
    """
    w_ih, w_hh, w_hh_t = weights
    g_ih, g_hh, xhat_ih, rstd_ih, xhat_hh, rstd_hh, _ = layer_norm
    m_h, hbar = dropout
    zeta = zoneout
    dg_x, dg_h, dhbar, d_hat, dh_t = workspace
    dx, dw_ih, dw_hh, db_ih, db_hh, dln_ih, dln_hh = grads
    steps, batch, n_in = x.shape
    hidden = h0.shape[1]
    g3 = 3 * hidden
    use_ln = g_ih.shape[0] > 0
    use_mask = m_h.shape[0] > 0
    use_zoneout = zeta.shape[0] > 0
    use_trace = trace.shape[0] > 0
    g_hn, b_hn = g_hh[2 * hidden:], b_hh[2 * hidden:]
    if use_ln:
        db_hh[:] = 0
        dln_hh[:] = 0
    for t in range(steps - 1, -1, -1):
        for b in range(batch):
            dx_row, dh_row = dg_x[t, b], dg_h[t, b]
            if t < lengths[b]:
                row = gates[t, b]
                g_r, g_z, g_n = row[0:hidden], row[hidden:2 * hidden], row[2 * hidden:]
                dx_r, dx_z, dx_n = dx_row[0:hidden], dx_row[hidden:2 * hidden], dx_row[2 * hidden:]
                dh_r, dh_z, dh_n = dh_row[0:hidden], dh_row[hidden:2 * hidden], dh_row[2 * hidden:]
                h_prev = y[t - 1, b] if t > 0 else h0[b]
                dh_b = dh[b]
                total_hidden_grad(dh_b, dy[t, b], clip, trace, t, b)  # dh_b now holds dL/dh_t
                if use_zoneout:
                    zt = zeta[t, b]
                    for j in range(hidden):
                        dx_n[j] = dh_b[j] * one_minus(zt[j]) * one_minus(g_z[j]) * dtanh(g_n[j])
                    for j in range(hidden):
                        dx_z[j] = dh_b[j] * one_minus(zt[j]) * (h_prev[j] - g_n[j]) * dsigmoid(g_z[j])
                else:
                    for j in range(hidden):
                        dx_n[j] = dh_b[j] * one_minus(g_z[j]) * dtanh(g_n[j])
                    for j in range(hidden):
                        dx_z[j] = dh_b[j] * (h_prev[j] - g_n[j]) * dsigmoid(g_z[j])
                if use_ln:  # A_hh_n = xhat_hh_n * g_hh_n + b_hh_n, as the forward formed it
                    xh_n = xhat_hh[t, b, 2 * hidden:]
                    for j in range(hidden):
                        dx_r[j] = dx_n[j] * (xh_n[j] * g_hn[j] + b_hn[j]) * dsigmoid(g_r[j])
                else:
                    hn = h_n_all[t, b]
                    for j in range(hidden):
                        dx_r[j] = dx_n[j] * hn[j] * dsigmoid(g_r[j])
                for j in range(hidden):
                    dh_n[j] = dx_n[j] * g_r[j]
                dh_r[:] = dx_r
                dh_z[:] = dx_z
                # Direct path to h_{t-1}; the recurrent product is added below.
                if use_zoneout:
                    zt = zeta[t, b]
                    for j in range(hidden):
                        dh_b[j] *= zt[j] + one_minus(zt[j]) * g_z[j]
                else:
                    for j in range(hidden):
                        dh_b[j] *= g_z[j]
                if use_ln:
                    # dh_row holds dL/dA_hh: bias and gain gradients, then undo the norm.
                    xh = xhat_hh[t, b]
                    for j in range(g3):
                        db_hh[j] += dh_row[j]
                    for j in range(g3):
                        dln_hh[j] += dh_row[j] * xh[j]
                    for j in range(g3):
                        d_hat[j] = dh_row[j] * g_hh[j]
                    normalize_row_backward(d_hat, xh, rstd_hh[t, b], dh_row)
            else:
                dx_row[:] = 0
                dh_row[:] = 0
                if use_trace:
                    trace[t, b] = 0
        if use_mask:
            dhbar[:] = 0
            matmul_add_transposed_out(dg_h[t], w_hh, w_hh_t, dh_t, dhbar)
            for b in range(batch):
                if t < lengths[b]:
                    dh_b, dhb_b, m_b = dh[b], dhbar[b], m_h[b]
                    for j in range(hidden):
                        dh_b[j] += dhb_b[j] * m_b[j]
        else:
            matmul_add_transposed_out(dg_h[t], w_hh, w_hh_t, dh_t, dh)

    rows = steps * batch
    dg_x_2d, dg_h_2d = dg_x.reshape(rows, g3), dg_h.reshape(rows, g3)
    # Input side: bias and gain gradients from dL/dA_ih, then undo the norm (all steps).
    if use_ln:
        db_ih[:] = 0
        dln_ih[:] = 0
        for t in range(steps):
            for b in range(batch):
                if t < lengths[b]:
                    row, xh = dg_x[t, b], xhat_ih[t, b]
                    for j in range(g3):
                        db_ih[j] += row[j]
                    for j in range(g3):
                        dln_ih[j] += row[j] * xh[j]
                    for j in range(g3):
                        d_hat[j] = row[j] * g_ih[j]
                    normalize_row_backward(d_hat, xh, rstd_ih[t, b], row)
    else:
        sum_rows(dg_x_2d, db_ih)
        sum_rows(dg_h_2d, db_hh)
    gemm(False, False, 1.0, dg_x_2d, w_ih, 0.0, dx.reshape(rows, n_in))
    gemm(True, False, 1.0, dg_x_2d, x.reshape(rows, n_in), 0.0, dw_ih)
    if use_mask:
        # dW_hh sees what W_hh multiplied: the masked state (padded rows have zero gradient).
        gemm(True, False, 1.0, dg_h_2d, hbar.reshape(rows, hidden), 0.0, dw_hh)
    else:
        # h_{t-1} is h0 at t = 0 and y[t-1] after; padded rows of y are zero, and so are
        # their gradients.
        gemm(True, False, 1.0, dg_h_2d[:batch], h0, 0.0, dw_hh)
        if steps > 1:
            gemm(True, False, 1.0, dg_h_2d[batch:], y.reshape(rows, hidden)[:(steps - 1) * batch], 1.0, dw_hh)


def _off(dtype, ndim):
    """Zero-size stand-in for a disabled option (same dtype, so one specialization)."""
    return np.empty((0,) * ndim, dtype)


def gru_variants_forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, training, ln_ih, ln_hh,
                         recurrent_mask, zoneout_h):
    """Driver: allocate outputs/workspace and run the fused forward.

    x (T, B, I); w_ih (3H, I); w_hh (3H, H); b_ih, b_hh (3H,) (zeros without bias);
    h0 (B, H); lengths (B,) int64 in 1..T; all validated, C-contiguous, one dtype.
    ln_ih, ln_hh: (3H,) layer-norm gains, both or neither. recurrent_mask (B, H) or
    None (pre-scaled dropout mask on h_{t-1} before W_hh). zoneout_h (T, B, H) or None
    (1 keeps the previous state; the constant p in eval mode).
    Returns (y, h_n, saved); saved is None unless ``training``.
    """
    if (ln_ih is None) != (ln_hh is None):
        raise ValueError("ln_ih and ln_hh must be given together (layer norm on both sides) or both be None")
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    dtype = x.dtype
    g3 = 3 * hidden
    use_ln = ln_ih is not None
    h = h0.copy()
    y = np.empty((steps, batch, hidden), dtype)
    gates = np.empty((steps, batch, g3), dtype)
    h_proj = np.empty((batch, g3), dtype)
    weights = (w_ih, pack_transposed(w_ih, steps * batch), w_hh, pack_transposed(w_hh, batch))
    if use_ln:
        keep = steps if training else 0
        layer_norm = (ln_ih, ln_hh, np.empty((keep, batch, g3), dtype), np.empty((keep, batch), dtype),
                      np.empty((keep, batch, g3), dtype), np.empty((keep, batch), dtype), np.empty(g3, dtype))
    else:
        layer_norm = (_off(dtype, 1), _off(dtype, 1), _off(dtype, 3), _off(dtype, 2), _off(dtype, 3), _off(dtype, 2),
                      _off(dtype, 1))
    if recurrent_mask is not None:
        dropout = (recurrent_mask, np.empty((steps if training else 1, batch, hidden), dtype))
    else:
        dropout = (_off(dtype, 2), _off(dtype, 3))
    zoneout = zoneout_h if zoneout_h is not None else _off(dtype, 3)
    # Under layer norm A_hh_n is recomputed from xhat_hh by the backward: less fresh memory.
    h_n_all = np.empty((steps if training and not use_ln else 0, batch, hidden), dtype)
    gru_variants_forward_kernel(x, weights, (b_ih + b_hh, b_ih, b_hh), h, lengths, y, gates, h_proj, training,
                                layer_norm, dropout, zoneout, h_n_all)
    if not training:
        return y, h, None
    saved = (x, w_ih, w_hh, b_hh, h0, lengths, y, gates, h_n_all, layer_norm, dropout, zoneout)
    return y, h, saved


def gru_variants_backward(saved, dy, dh_n, clip=np.inf, trace=None):
    """Driver: run the fused backward of :func:`gru_variants_forward`.

    dy (T, B, H), dh_n (B, H), validated, C-contiguous, the forward's dtype.
    clip: per-step derivative clipping bound (>= 0; np.inf = off). trace: None or a
    C-contiguous (T, B, H) array of the dtype, filled with the (clipped) total
    dL/dh_t of every valid step and 0 at padded steps.
    Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dln_ih, dln_hh); dln_* are None
    without layer norm.
    """
    x, w_ih, w_hh, b_hh, h0, lengths, y, gates, h_n_all, layer_norm, dropout, zoneout = saved
    dtype = x.dtype
    steps, batch, _ = x.shape
    hidden = h0.shape[1]
    g3 = 3 * hidden
    clip = float(clip)
    if not clip >= 0:
        raise ValueError(f"clip must be >= 0 (np.inf turns clipping off), got {clip}")
    if trace is None:
        trace = _off(dtype, 3)
    else:
        if not isinstance(trace, np.ndarray) or trace.shape != (steps, batch, hidden):
            raise ValueError(f"trace must be an array of shape {(steps, batch, hidden)}, "
                             f"got {getattr(trace, 'shape', type(trace).__name__)}")
        if trace.dtype != dtype:
            raise TypeError(f"trace must have dtype {dtype} (the dtype of x), got {trace.dtype}")
        if not trace.flags.c_contiguous or not trace.flags.writeable:
            raise ValueError("trace must be C-contiguous and writeable")
    use_ln = layer_norm[0].shape[0] > 0
    dh = dh_n.copy()
    dx = np.empty_like(x)
    dw_ih, dw_hh = np.empty_like(w_ih), np.empty_like(w_hh)
    db_ih, db_hh = np.empty(g3, dtype), np.empty(g3, dtype)
    dln_ih = np.empty(g3 if use_ln else 0, dtype)
    dln_hh = np.empty(g3 if use_ln else 0, dtype)
    dhbar = np.empty((batch, hidden) if dropout[0].shape[0] > 0 else (0, 0), dtype)
    workspace = (np.empty_like(gates), np.empty_like(gates), dhbar, np.empty(g3 if use_ln else 0, dtype),
                 np.empty((hidden, batch), dtype))
    grads = (dx, dw_ih, dw_hh, db_ih, db_hh, dln_ih, dln_hh)
    gru_variants_backward_kernel(x, (w_ih, w_hh, pack_for_rows(w_hh, batch)), b_hh, h0, lengths, y, gates, h_n_all, layer_norm, dropout, zoneout,
                                 dy, dh, bound_in(dtype, clip), trace, workspace, grads)
    if not use_ln:
        dln_ih = dln_hh = None
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh, dln_ih, dln_hh
