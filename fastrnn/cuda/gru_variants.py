"""GRU variants on CUDA (reset-after form, gates r, z, n): layer norm, recurrent
(variational) dropout and zoneout, in any combination; mirrors
:mod:`fastrnn.kernels.gru_variants` (same equations, same arguments and results,
device arrays; equations: fastrnn/reference/gru_variants.py).

Forward, once: gates = W_ih x of all steps (one GEMM); with layer norm each row is
replaced by g_ih * LN(row) there (one block per row, :mod:`.layer_norm`). Per step:
[recurrent dropout: hbar = h * m_h] -> one GEMM h_proj = W_hh hbar -> [layer norm:
a row kernel makes h_proj = g_hh * LN(h_proj)] -> one element-wise kernel (a thread
per (b, j)), biases added there as in the plain kernel. Backward per step: one
element-wise kernel -> [layer norm: a row kernel undoes LN(W_hh hbar)] -> one GEMM
(-> [dropout: dh += dhbar * m_h]); after the loop the input side of the layer norm
is undone for all steps at once, and bias, gain, weight and input gradients are
fixed-order sums and single GEMMs.

Options that are off are passed as flags with one-element stand-in arrays (one
compiled specialization per dtype). Device arrays of one float dtype, C-contiguous;
drivers allocate once per call, nothing per step.
"""
import numpy as np

from ._device import cuda
from .activations import dsigmoid, dtanh, one_minus, sigmoid, tanh
from .common import elementwise, empty, rows, sum_rows
from .gemm import gemm
from .layer_norm import layer_norm_rows, layer_norm_rows_backward
from .lstm import Saved
from .lstm_variants import _cpu_only, add_masked_kernel, masked_kernel


@cuda.jit
def gru_variants_step_kernel(t, gates, h_proj, b_ih, b_hh, h, lengths, y, h_n_all, zeta, keep_hn, zoned):
    """Step t, one thread per (b, j) of (B, H).

    gates (T, B, 3H): A_ih without bias (W_ih x_t, or g_ih LN(W_ih x_t)) on entry,
    r, z, n on return (valid rows); h_proj (B, 3H): W_hh hbar, or g_hh LN(W_hh hbar);
    b_ih, b_hh (3H,); h (B, H) state in place; y (T, B, H) (zero past the length);
    h_n_all[t] = A_hh_n when ``keep_hn``; zeta (T, B, H) zoneout weights when ``zoned``.
    """
    idx = cuda.grid(1)
    hidden = h.shape[1]
    if idx >= h.shape[0] * hidden:
        return
    b = idx // hidden
    j = idx - b * hidden
    if t < lengths[b]:
        r = sigmoid((gates[t, b, j] + h_proj[b, j]) + (b_ih[j] + b_hh[j]))
        z = sigmoid((gates[t, b, hidden + j] + h_proj[b, hidden + j]) + (b_ih[hidden + j] + b_hh[hidden + j]))
        hn = h_proj[b, 2 * hidden + j] + b_hh[2 * hidden + j]
        n = tanh(gates[t, b, 2 * hidden + j] + b_ih[2 * hidden + j] + r * hn)
        h_prev = h[b, j]
        if zoned:
            zt = zeta[t, b, j]
            # zeta h + (1 - zeta) ht: exactly h at zeta = 1, exactly ht at zeta = 0.
            h_new = zt * h_prev + one_minus(zt) * (n + z * (h_prev - n))
        else:
            h_new = n + z * (h_prev - n)
        gates[t, b, j] = r
        gates[t, b, hidden + j] = z
        gates[t, b, 2 * hidden + j] = n
        y[t, b, j] = h_new
        h[b, j] = h_new
        if keep_hn:
            h_n_all[t, b, j] = hn
    else:
        y[t, b, j] = 0


@cuda.jit
def gru_variants_backward_step_kernel(t, gates, h_n_all, xhat_hh, g_hh, b_hh, h0, y, lengths, dy, dh, dg_x, dg_h,
                                      zeta, normed, zoned):
    """Backward of step t, one thread per (b, j) of (B, H).

    dh (B, H): dL/dh_t before adding dy[t]; on return the direct part of dL/dh_{t-1}
    for valid rows (the caller adds the recurrent product), unchanged past the length.
    Writes dg_x[t] = dL/dA_ih and dg_h[t] = dL/dA_hh (B, 3H), zero past the length.
    A_hh_n is h_n_all[t] without layer norm, else recomputed from xhat_hh[t], g_hh, b_hh.
    """
    idx = cuda.grid(1)
    hidden = h0.shape[1]
    if idx >= h0.shape[0] * hidden:
        return
    b = idx // hidden
    j = idx - b * hidden
    if t < lengths[b]:
        r = gates[t, b, j]
        z = gates[t, b, hidden + j]
        n = gates[t, b, 2 * hidden + j]
        h_prev = y[t - 1, b, j] if t > 0 else h0[b, j]
        dh_t = dh[b, j] + dy[t, b, j]
        if zoned:
            zt = zeta[t, b, j]
            d_n = dh_t * one_minus(zt) * one_minus(z) * dtanh(n)
            d_z = dh_t * one_minus(zt) * (h_prev - n) * dsigmoid(z)
            dh[b, j] = dh_t * (zt + one_minus(zt) * z)
        else:
            d_n = dh_t * one_minus(z) * dtanh(n)
            d_z = dh_t * (h_prev - n) * dsigmoid(z)
            dh[b, j] = dh_t * z
        if normed:  # A_hh_n = xhat_hh_n * g_hh_n + b_hh_n, as the forward formed it
            hn = xhat_hh[t, b, 2 * hidden + j] * g_hh[2 * hidden + j] + b_hh[2 * hidden + j]
        else:
            hn = h_n_all[t, b, j]
        d_r = d_n * hn * dsigmoid(r)
        dg_x[t, b, j] = d_r
        dg_x[t, b, hidden + j] = d_z
        dg_x[t, b, 2 * hidden + j] = d_n
        dg_h[t, b, j] = d_r
        dg_h[t, b, hidden + j] = d_z
        dg_h[t, b, 2 * hidden + j] = d_n * r
    else:
        for k in range(3):
            dg_x[t, b, k * hidden + j] = 0
            dg_h[t, b, k * hidden + j] = 0


def _stand_in(dtype, ndim):
    """A one-element array for an option that is off (never read)."""
    return empty((1,) * ndim, dtype)


def gru_variants_forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, training, ln_ih, ln_hh, recurrent_mask,
                         zoneout_h):
    """Driver: allocate outputs/workspace once and run all T steps.

    Device arrays, C-contiguous, one dtype: x (T, B, I); w_ih (3H, I); w_hh (3H, H);
    b_ih, b_hh (3H,) (zeros without bias); h0 (B, H) (read only); lengths (B,) int64
    in 1..T. ln_ih, ln_hh: (3H,) layer-norm gains, both or neither; recurrent_mask
    (B, H) or None; zoneout_h (T, B, H) or None.
    Returns (y, h_n, saved); saved is None unless ``training``.
    """
    if (ln_ih is None) != (ln_hh is None):
        raise ValueError("ln_ih and ln_hh must be given together (layer norm on both sides) or both be None")
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    dt = x.dtype
    g3 = 3 * hidden
    normed, masked, zoned = ln_ih is not None, recurrent_mask is not None, zoneout_h is not None
    kept = steps if training else 1
    keep_hn = training and not normed  # under layer norm the backward recomputes A_hh_n
    zeta = zoneout_h if zoned else _stand_in(dt, 3)
    h = empty((batch, hidden), dt)
    h.copy_to_device(h0)
    y = empty((steps, batch, hidden), dt)
    gates = empty((steps, batch, g3), dt)
    h_proj = empty((batch, g3), dt)
    h_n_all = empty((steps, batch, hidden), dt) if keep_hn else _stand_in(dt, 3)
    hbar = empty((kept, batch, hidden), dt) if masked else None
    gates_2d = rows(gates)
    gemm(rows(x), w_ih, gates_2d, trans_b=True)
    norm = None
    if normed:
        xhat_ih, xhat_hh = (empty(gates.shape, dt) if training else _stand_in(dt, 3) for _ in range(2))
        rstd_ih, rstd_hh = (empty((steps, batch), dt) if training else _stand_in(dt, 2) for _ in range(2))
        norm = (ln_ih, ln_hh, xhat_ih, rstd_ih, xhat_hh, rstd_hh)
        layer_norm_rows(gates_2d, ln_ih, gates_2d, rows(xhat_ih), rstd_ih.reshape(rstd_ih.size), lengths, 0, False,
                        training)
    apply_mask = elementwise(masked_kernel, batch * hidden) if masked else None
    step = elementwise(gru_variants_step_kernel, batch * hidden)
    for t in range(steps):
        ti = t if training else 0
        source = h
        if masked:
            source = hbar[ti]
            apply_mask(h, recurrent_mask, source)
        gemm(source, w_hh, h_proj, trans_b=True)
        if normed:
            layer_norm_rows(h_proj, ln_hh, h_proj, xhat_hh[ti], rstd_hh[ti], lengths, t, False, training)
        step(t, gates, h_proj, b_ih, b_hh, h, lengths, y, h_n_all, zeta, keep_hn, zoned)
    if not training:
        return y, h, None
    saved = Saved(x, w_ih, w_hh, b_hh, h0, lengths, y, gates, h_n_all, norm, recurrent_mask, hbar, zeta, zoned)
    return y, h, saved


def gru_variants_backward(saved, dy, dh_n, clip=np.inf, trace=None):
    """Driver: backpropagate through a training :func:`gru_variants_forward`.

    dy (T, B, H), dh_n (B, H) device arrays (read only). Returns (dx, dh0, dw_ih,
    dw_hh, db_ih, db_hh, dln_ih, dln_hh); dln_* are None without layer norm.
    clip, trace: as the CPU driver's, but only their defaults (off) are implemented.
    """
    _cpu_only(clip, trace)
    x, w_ih, w_hh, b_hh, h0, lengths, y, gates, h_n_all, norm, recurrent_mask, hbar, zeta, zoned = saved.arrays
    dt = x.dtype
    steps, batch, _ = x.shape
    hidden = h0.shape[1]
    g3 = 3 * hidden
    n_rows = steps * batch
    normed, masked = norm is not None, recurrent_mask is not None
    if normed:
        ln_ih, ln_hh, xhat_ih, rstd_ih, xhat_hh, rstd_hh = norm
        d_raw_hh = empty(gates.shape, dt)
        dgain = empty((n_rows, g3), dt)  # per-row gain gradients: ln_hh's, then ln_ih's
    else:
        ln_hh, xhat_hh = _stand_in(dt, 1), _stand_in(dt, 3)
    dh = empty((batch, hidden), dt)
    dh.copy_to_device(dh_n)
    dg_x, dg_h = empty(gates.shape, dt), empty(gates.shape, dt)
    dhbar = empty((batch, hidden), dt) if masked else None
    add_mask = elementwise(add_masked_kernel, batch * hidden) if masked else None
    step = elementwise(gru_variants_backward_step_kernel, batch * hidden)
    d_rec_all = d_raw_hh if normed else dg_h
    for t in range(steps - 1, -1, -1):
        step(t, gates, h_n_all, xhat_hh, ln_hh, b_hh, h0, y, lengths, dy, dh, dg_x, dg_h, zeta, normed, zoned)
        if normed:
            layer_norm_rows_backward(dg_h[t], ln_hh, xhat_hh[t], rstd_hh[t], lengths, t, d_raw_hh[t],
                                     dgain[t * batch:(t + 1) * batch])
        if masked:
            gemm(d_rec_all[t], w_hh, dhbar)
            add_mask(t, lengths, dhbar, recurrent_mask, dh)
        else:
            gemm(d_rec_all[t], w_hh, dh, accumulate=True)
    dg_x_2d, d_rec = rows(dg_x), rows(d_rec_all)
    db_ih, db_hh = empty((g3,), dt), empty((g3,), dt)
    sum_rows(dg_x_2d, db_ih)
    sum_rows(rows(dg_h), db_hh)
    dln_ih = dln_hh = None
    if normed:
        dln_ih, dln_hh = empty((g3,), dt), empty((g3,), dt)
        sum_rows(dgain, dln_hh)
        # The input side of every step at once, in place (db_ih is summed already).
        layer_norm_rows_backward(dg_x_2d, ln_ih, rows(xhat_ih), rstd_ih.reshape(n_rows), lengths, 0, dg_x_2d, dgain)
        sum_rows(dgain, dln_ih)
    dx, dw_ih, dw_hh = empty(x.shape, dt), empty(w_ih.shape, dt), empty(w_hh.shape, dt)
    gemm(dg_x_2d, w_ih, rows(dx))
    gemm(dg_x_2d, rows(x), dw_ih, trans_a=True)
    if masked:  # dW_hh sees what W_hh multiplied: the masked state
        gemm(d_rec, rows(hbar), dw_hh, trans_a=True)
    else:  # h_{t-1} is h0, then y[t-1]: padded rows of y are zero, and so are their gradients
        gemm(d_rec[:batch], h0, dw_hh, trans_a=True)
        if steps > 1:
            gemm(d_rec[batch:], rows(y)[:n_rows - batch], dw_hh, trans_a=True, accumulate=True)
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh, dln_ih, dln_hh
