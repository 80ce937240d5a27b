"""LSTM variants on CUDA: peephole connections, coupled input and forget gates
(CIFG), cell clipping, layer normalization, recurrent dropout and zoneout, in any
combination; mirrors :mod:`fastrnn.kernels.lstm_variants` (same equations, same
arguments and results, device arrays; equations: fastrnn/reference/lstm_variants.py).

Forward, once: gates = x W_ih^T (one GEMM for all steps); with layer norm every
row is normalized there too (one block per row, :mod:`.layer_norm`). Per step:
[recurrent dropout: hbar = h * m_h] -> one GEMM (W_hh hbar, added into the gates,
or into a (B, GH) scratch with layer norm) -> [layer norm: one row kernel adds
g_hh * LN(W_hh hbar) into the gates] -> the step kernel: one thread per (b, j)
without layer norm; with it one block per row b, which also normalizes the cell
(a fixed-order shared-memory reduction over H).

Backward per step: the step kernel (again per (b, j), or per row with layer norm)
-> [layer norm: a row kernel undoes LN(W_hh hbar)] -> one GEMM for dL/dh_{t-1}
(-> [recurrent dropout: dh += dhbar * m_h]). Peephole and layer-norm parameter
gradients are written per (t, b) and summed over the rows at the end in a fixed
order (no atomics); the input side of the layer norm is undone for all steps at
once after the loop, then weight and input gradients are single GEMMs.

Options that are off are passed as flags with one-element stand-in arrays, so one
compiled specialization per dtype serves every combination. All arrays are device
arrays of one float dtype, C-contiguous; drivers allocate once per call, nothing per
step. The plain kernels in :mod:`.lstm` stay the fast path when no option is on.
"""
import functools
import math

import numpy as np

from ._device import cuda
from .activations import dsigmoid, dtanh, one_minus, sigmoid, tanh
from .common import elementwise, empty, rows, sum_rows
from .gemm import _numba_type, gemm
from .layer_norm import EPS, block_size, block_sum, layer_norm_rows, layer_norm_rows_backward
from .lstm import Saved


# --- small element-wise helpers (also used by gru_variants and dispatch) ----------
@cuda.jit
def masked_kernel(a, mask, out):
    """out[r, n] = a[r, n] * mask[r % M, n] for a (R, N), mask (M, N); out may be a.
    (x rows (T*B, I) with an input mask (B, I); W_hh with a DropConnect mask; h with
    a recurrent mask.) One thread per element."""
    idx = cuda.grid(1)
    width = a.shape[1]
    if idx >= a.shape[0] * width:
        return
    r = idx // width
    n = idx - r * width
    m = r - (r // mask.shape[0]) * mask.shape[0]
    out[r, n] = a[r, n] * mask[m, n]


def masked(a, mask, out):
    """Launch :func:`masked_kernel` on 2-D arrays."""
    elementwise(masked_kernel, a.shape[0] * a.shape[1])(a, mask, out)


@cuda.jit
def add_kernel(a, b, out):
    """out = a + b for vectors of one length (the summed bias)."""
    j = cuda.grid(1)
    if j < out.shape[0]:
        out[j] = a[j] + b[j]


def add(a, b, out):
    elementwise(add_kernel, out.shape[0])(a, b, out)


@cuda.jit
def add_masked_kernel(t, lengths, src, mask, dst):
    """dst[b, j] += src[b, j] * mask[b, j] for rows with t < lengths[b] (dL/dh_{t-1}
    through a recurrent dropout mask). One thread per (b, j)."""
    idx = cuda.grid(1)
    width = dst.shape[1]
    if idx >= dst.shape[0] * width:
        return
    b = idx // width
    j = idx - b * width
    if t < lengths[b]:
        dst[b, j] += src[b, j] * mask[b, j]


# --- the cell, shared by the per-(b, j) and the per-row (layer norm) kernels ---------
@cuda.jit(device=True)
def _clip(v, bound):
    # Comparisons written so that NaN falls through unchanged.
    return bound if v > bound else (-bound if v < -bound else v)


@cuda.jit(device=True)
def _cell_forward(t, ti, b, j, gates, bias, peep, c_prev, ct_all, clip, coupled, peephole, clipping):
    """Gates of (t, b, j) activated in place; ct_all[ti, b, j] = the candidate cell ct.
    Returns (cc, o): the (clipped) new cell and the output gate."""
    hidden = ct_all.shape[2]
    f_at = 0 if coupled else hidden
    g_at = f_at + hidden
    o_at = g_at + hidden
    a_f = gates[t, b, f_at + j]
    if peephole:
        a_f += peep[1, j] * c_prev
    f = sigmoid(a_f + bias[f_at + j])
    g = tanh(gates[t, b, g_at + j] + bias[g_at + j])
    if coupled:
        ct = f * c_prev + one_minus(f) * g
    else:
        a_i = gates[t, b, j]
        if peephole:
            a_i += peep[0, j] * c_prev
        i = sigmoid(a_i + bias[j])
        gates[t, b, j] = i
        ct = f * c_prev + i * g
    cc = ct
    if clipping:
        cc = _clip(ct, clip)
    a_o = gates[t, b, o_at + j]
    if peephole:
        a_o += peep[2, j] * cc
    o = sigmoid(a_o + bias[o_at + j])
    gates[t, b, f_at + j] = f
    gates[t, b, g_at + j] = g
    gates[t, b, o_at + j] = o
    ct_all[ti, b, j] = ct
    return cc, o


@cuda.jit(device=True)
def _commit(t, b, j, o, th, cc, h, c, y, c_all, zone_h, zone_c, training, zoned_h, zoned_c):
    """h_t = o * th (through zoneout) into y and h; c_t (through zoneout) into c."""
    v = o * th
    if zoned_h:
        zh = zone_h[t, b, j]
        v = zh * h[b, j] + one_minus(zh) * v
    y[t, b, j] = v
    h[b, j] = v
    if zoned_c:
        zc = zone_c[t, b, j]
        c_new = zc * c[b, j] + one_minus(zc) * cc
    else:
        c_new = cc
    c[b, j] = c_new
    if training:
        c_all[t, b, j] = c_new


@cuda.jit(device=True)
def _frozen(t, b, j, c, y, c_all, ct_all, training):
    """Past the length: y zero, state unchanged."""
    y[t, b, j] = 0
    if training:
        c_all[t, b, j] = c[b, j]
        ct_all[t, b, j] = 0


@cuda.jit
def lstm_variants_step_kernel(t, ti, gates, bias, peep, h, c, lengths, y, c_all, ct_all, zone_h, zone_c, clip,
                              training, coupled, peephole, clipping, zoned_h, zoned_c):
    """Element-wise part of step t without layer norm, one thread per (b, j) of (B, H).

    gates (T, B, GH): A = W_ih x_t + W_hh hbar of step t on entry (raw), activated on
    return; bias (GH,) = b_ih + b_hh; peep (3, H) (stand-in unless ``peephole``);
    h, c (B, H) state in place; y (T, B, H); c_all (T, B, H) when ``training``;
    ct_all[ti] the unclipped candidate; zone_h, zone_c (T, B, H) zoneout weights
    (stand-ins when off); clip: the cell-clip bound (read when ``clipping``).
    """
    idx = cuda.grid(1)
    hidden = c.shape[1]
    if idx >= c.shape[0] * hidden:
        return
    b = idx // hidden
    j = idx - b * hidden
    if t < lengths[b]:
        cc, o = _cell_forward(t, ti, b, j, gates, bias, peep, c[b, j], ct_all, clip, coupled, peephole, clipping)
        _commit(t, b, j, o, tanh(cc), cc, h, c, y, c_all, zone_h, zone_c, training, zoned_h, zoned_c)
    else:
        _frozen(t, b, j, c, y, c_all, ct_all, training)


@functools.lru_cache(maxsize=None)
def _norm_step_kernel(block, dtype):
    nb_type = _numba_type(dtype)
    cast = np.dtype(dtype).type
    zero, one, eps = cast(0), cast(1), cast(EPS)

    @cuda.jit
    def lstm_variants_norm_step_kernel(t, ti, gates, bias, peep, h, c, lengths, y, c_all, ct_all, zone_h, zone_c,
                                       clip, cc_buf, chat, rstd_c, g_c, b_c, training, coupled, peephole, clipping,
                                       zoned_h, zoned_c):
        """Step t with layer norm, one block per row b: the gates (whose pre-activations
        the caller assembled: g_ih LN(W_ih x) + g_hh LN(W_hh hbar)), the cell, its norm
        chat[ti, b] = LN(cc) (rstd_c[t, b] when training) and h = o tanh(chat g_c + b_c).
        cc_buf (B, H) scratch; other arguments as lstm_variants_step_kernel."""
        sh = cuda.shared.array((1, block), nb_type)
        b = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        hidden = c.shape[1]
        if t >= lengths[b]:  # the whole block
            for j in range(tid, hidden, block):
                _frozen(t, b, j, c, y, c_all, ct_all, training)
            return
        inv_n = one / cast(hidden)
        s = zero
        for j in range(tid, hidden, block):
            cc, o = _cell_forward(t, ti, b, j, gates, bias, peep, c[b, j], ct_all, clip, coupled, peephole,
                                  clipping)
            cc_buf[b, j] = cc
            s += cc
        sh[0, tid] = s
        block_sum(sh, tid, block)
        mean = sh[0, 0] * inv_n
        cuda.syncthreads()
        s = zero
        for j in range(tid, hidden, block):
            d = cc_buf[b, j] - mean
            s += d * d
        sh[0, tid] = s
        block_sum(sh, tid, block)
        rs = one / math.sqrt(sh[0, 0] * inv_n + eps)
        if training and tid == 0:
            rstd_c[t, b] = rs
        o_at = gates.shape[2] - hidden
        for j in range(tid, hidden, block):  # the same j as above: this thread's own cc, o
            cc = cc_buf[b, j]
            ch = (cc - mean) * rs
            chat[ti, b, j] = ch
            th = tanh(ch * g_c[j] + b_c[j])
            _commit(t, b, j, gates[t, b, o_at + j], th, cc, h, c, y, c_all, zone_h, zone_c, training, zoned_h,
                    zoned_c)

    return lstm_variants_norm_step_kernel


# --- backward ---------------------------------------------------------------------
@cuda.jit(device=True)
def _dcell_top(t, b, j, o, dh_v, th, zone_h, zoned_h):
    """From dL/dh_t = dh_v: (d_o, du), d_o the output gate's pre-activation gradient
    and du the gradient of tanh's argument (cc, or chat g_c + b_c with layer norm)."""
    du = dh_v
    if zoned_h:
        du = dh_v * one_minus(zone_h[t, b, j])
    d_o = du * th * dsigmoid(o)
    du = du * o * dtanh(th)
    return d_o, du


@cuda.jit(device=True)
def _dcell_bottom(t, b, j, dcc, d_o, ct, cc, c_prev, dh_v, gates, dgates, dpeep_rows, peep, dh, dc, zone_h, zone_c,
                  clip, coupled, peephole, clipping, zoned_h, zoned_c):
    """From dcc = dL/d(clipped ct) through h (and d_o): the gate gradients of (t, b, j)
    into dgates, the peephole products into dpeep_rows, dL/dc_{t-1} into dc and the
    direct (zoneout) part of dL/dh_{t-1} into dh."""
    hidden = dc.shape[1]
    f_at = 0 if coupled else hidden
    g_at = f_at + hidden
    o_at = g_at + hidden
    if peephole:
        dcc += d_o * peep[2, j]
        dpeep_rows[t, b, 2 * hidden + j] = d_o * cc
    dc_v = dc[b, j]
    zc = dc_v  # stand-in, read only with zoneout
    if zoned_c:
        zc = zone_c[t, b, j]
        dcc += dc_v * one_minus(zc)
    else:
        dcc += dc_v
    if clipping and not abs(ct) <= clip:  # the clip passes the gradient inside the bound only
        dcc = clip - clip  # zero of the dtype (clip is finite here)
    f = gates[t, b, f_at + j]
    g = gates[t, b, g_at + j]
    d_i = d_o  # stand-in, written and read only with an input gate
    if coupled:
        d_f = dcc * (c_prev - g) * dsigmoid(f)
        d_g = dcc * one_minus(f) * dtanh(g)
    else:
        i = gates[t, b, j]
        d_i = dcc * g * dsigmoid(i)
        d_f = dcc * c_prev * dsigmoid(f)
        d_g = dcc * i * dtanh(g)
        dgates[t, b, j] = d_i
    dgates[t, b, f_at + j] = d_f
    dgates[t, b, g_at + j] = d_g
    dgates[t, b, o_at + j] = d_o
    if zoned_c:
        dc_v = dc_v * zc + dcc * f
    else:
        dc_v = dcc * f
    if peephole:
        if coupled:
            dpeep_rows[t, b, j] = 0
        else:
            dc_v += d_i * peep[0, j]
            dpeep_rows[t, b, j] = d_i * c_prev
        dc_v += d_f * peep[1, j]
        dpeep_rows[t, b, hidden + j] = d_f * c_prev
    dc[b, j] = dc_v
    if zoned_h:
        dh[b, j] = dh_v * zone_h[t, b, j]
    else:
        dh[b, j] = 0


@cuda.jit(device=True)
def _dcell_frozen(t, b, j, hidden, dgates, dpeep_rows, peephole):
    """Past the length: zero gradients (dh and dc pass through unchanged)."""
    for k in range(dgates.shape[2] // hidden):
        dgates[t, b, k * hidden + j] = 0
    if peephole:
        for k in range(3):
            dpeep_rows[t, b, k * hidden + j] = 0


@cuda.jit
def lstm_variants_backward_step_kernel(t, gates, c_all, ct_all, c0, lengths, dy, dh, dc, dgates, dpeep_rows, peep,
                                       zone_h, zone_c, clip, coupled, peephole, clipping, zoned_h, zoned_c):
    """Backward of step t without layer norm, one thread per (b, j) of (B, H).

    gates, c_all, ct_all: as the training forward left them; c0 (B, H); dy (T, B, H).
    dh, dc (B, H): dL/dh_t (before adding dy[t]) and dL/dc_t on entry; on return dc
    holds dL/dc_{t-1} and dh the direct (zoneout) part of dL/dh_{t-1} for valid rows
    (the caller adds the recurrent product). Writes dgates[t] (B, GH) and, with
    peepholes, dpeep_rows[t] (B, 3H) = the per-row products d_i c_{t-1}, d_f c_{t-1},
    d_o cc (zero past the length and for p_i with coupled gates).
    """
    idx = cuda.grid(1)
    hidden = c0.shape[1]
    if idx >= c0.shape[0] * hidden:
        return
    b = idx // hidden
    j = idx - b * hidden
    if t < lengths[b]:
        dh_v = dh[b, j] + dy[t, b, j]
        c_prev = c_all[t - 1, b, j] if t > 0 else c0[b, j]
        ct = ct_all[t, b, j]
        cc = ct
        if clipping:
            cc = _clip(ct, clip)
        o = gates[t, b, gates.shape[2] - hidden + j]
        d_o, du = _dcell_top(t, b, j, o, dh_v, tanh(cc), zone_h, zoned_h)
        _dcell_bottom(t, b, j, du, d_o, ct, cc, c_prev, dh_v, gates, dgates, dpeep_rows, peep, dh, dc, zone_h, zone_c,
                      clip, coupled, peephole, clipping, zoned_h, zoned_c)
    else:
        _dcell_frozen(t, b, j, hidden, dgates, dpeep_rows, peephole)


@functools.lru_cache(maxsize=None)
def _norm_backward_step_kernel(block, dtype):
    nb_type = _numba_type(dtype)
    cast = np.dtype(dtype).type
    zero, one = cast(0), cast(1)

    @cuda.jit
    def lstm_variants_norm_backward_step_kernel(t, gates, c_all, ct_all, c0, lengths, dy, dh, dc, dgates, dpeep_rows,
                                                peep, zone_h, zone_c, clip, chat, rstd_c, g_c, b_c, dchat, dln_c_rows,
                                                coupled, peephole, clipping, zoned_h, zoned_c):
        """Backward of step t with layer norm, one block per row b: as
        lstm_variants_backward_step_kernel, through the cell's norm (a fixed-order
        reduction over H). dchat (B, H) scratch; dln_c_rows[t] (B, 2H) receives the
        per-row gradients of g_c (du * chat) and b_c (du), zero past the length."""
        sh = cuda.shared.array((2, block), nb_type)
        b = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        hidden = c0.shape[1]
        o_at = gates.shape[2] - hidden
        if t >= lengths[b]:
            for j in range(tid, hidden, block):
                _dcell_frozen(t, b, j, hidden, dgates, dpeep_rows, peephole)
                dln_c_rows[t, b, j] = 0
                dln_c_rows[t, b, hidden + j] = 0
            return
        inv_n = one / cast(hidden)
        s1 = zero
        s2 = zero
        for j in range(tid, hidden, block):
            dh_v = dh[b, j] + dy[t, b, j]
            dh[b, j] = dh_v  # dL/dh_t, read back below by this same thread
            ch = chat[t, b, j]
            th = tanh(ch * g_c[j] + b_c[j])
            d_o, du = _dcell_top(t, b, j, gates[t, b, o_at + j], dh_v, th, zone_h, zoned_h)
            dgates[t, b, o_at + j] = d_o
            dln_c_rows[t, b, j] = du * ch
            dln_c_rows[t, b, hidden + j] = du
            d_hat = du * g_c[j]
            dchat[b, j] = d_hat
            s1 += d_hat
            s2 += d_hat * ch
        sh[0, tid] = s1
        sh[1, tid] = s2
        block_sum(sh, tid, block)
        m1 = sh[0, 0] * inv_n
        m2 = sh[1, 0] * inv_n
        rs = rstd_c[t, b]
        for j in range(tid, hidden, block):
            dcc = rs * (dchat[b, j] - m1 - chat[t, b, j] * m2)
            c_prev = c_all[t - 1, b, j] if t > 0 else c0[b, j]
            ct = ct_all[t, b, j]
            cc = ct
            if clipping:
                cc = _clip(ct, clip)
            _dcell_bottom(t, b, j, dcc, dgates[t, b, o_at + j], ct, cc, c_prev, dh[b, j], gates, dgates, dpeep_rows,
                          peep, dh, dc, zone_h, zone_c, clip, coupled, peephole, clipping, zoned_h, zoned_c)

    return lstm_variants_norm_backward_step_kernel


def _cpu_only(clip, trace):
    """The CPU drivers' per-step gradient clipping and dL/dh_t trace are not implemented here."""
    if clip != np.inf or trace is not None:
        raise NotImplementedError("per-step gradient clipping (clip) and the dL/dh_t trace (trace) are not "
                                  "implemented by the CUDA variant kernels; run the backward on the CPU")


def _stand_in(dtype, ndim):
    """A one-element array for an option that is off (never read)."""
    return empty((1,) * ndim, dtype)


def _row_kernel(factory, dtype, count):
    """A per-row kernel for ``count`` rows (blocks of config.TILE**2 threads)."""
    block = block_size()
    return factory(block, np.dtype(dtype))[count, block]


def lstm_variants_forward(x, w_ih, w_hh, bias, h0, c0, lengths, training, peephole=None, layer_norm=None,
                          recurrent_mask=None, zoneout_h=None, zoneout_c=None, cell_clip=None):
    """Driver: allocate outputs/workspace once and run all T steps.

    Device arrays, C-contiguous, one dtype: x (T, B, I); w_ih (GH, I), w_hh (GH, H)
    with GH = 4H (3H: coupled gates, blocks f, g, o); bias (GH,) = b_ih + b_hh;
    h0, c0 (B, H) (read only); lengths (B,) int64 in 1..T. Options (None = off), as
    fastrnn.kernels.lstm_variants: peephole (3, H); layer_norm = (g_ih (GH,),
    g_hh (GH,), g_c (H,), b_c (H,)); recurrent_mask (B, H); zoneout_h, zoneout_c
    (T, B, H); cell_clip a positive float.
    Returns (y, h_n, c_n, saved); saved (what the backward needs) is None unless training.
    """
    dt = x.dtype
    steps, batch, _ = x.shape
    hidden, width = c0.shape[1], w_ih.shape[0]
    kept = steps if training else 1
    coupled = width == 3 * hidden
    normed, masked = layer_norm is not None, recurrent_mask is not None
    flags = (coupled, peephole is not None, cell_clip is not None, zoneout_h is not None, zoneout_c is not None)
    peep = peephole if flags[1] else _stand_in(dt, 2)
    zone_h = zoneout_h if flags[3] else _stand_in(dt, 3)
    zone_c = zoneout_c if flags[4] else _stand_in(dt, 3)
    clip = dt.type(cell_clip if flags[2] else 0)
    h, c = empty((batch, hidden), dt), empty((batch, hidden), dt)
    h.copy_to_device(h0)
    c.copy_to_device(c0)
    y = empty((steps, batch, hidden), dt)
    gates = empty((steps, batch, width), dt)
    c_all = empty((steps, batch, hidden), dt) if training else _stand_in(dt, 3)
    ct_all = empty((kept, batch, hidden), dt)
    hbar = empty((kept, batch, hidden), dt) if masked else None
    gates_2d = rows(gates)
    gemm(rows(x), w_ih, gates_2d, trans_b=True)  # input projection of all steps
    if normed:
        g_ih, g_hh, g_c, b_c = layer_norm
        xhat_ih = empty(gates.shape, dt) if training else _stand_in(dt, 3)
        xhat_hh = empty(gates.shape, dt) if training else _stand_in(dt, 3)
        chat = empty((kept, batch, hidden), dt)
        rstd_ih, rstd_hh, rstd_c = (empty((steps, batch), dt) if training else _stand_in(dt, 2) for _ in range(3))
        raw_hh = empty((batch, width), dt)
        cc_buf = empty((batch, hidden), dt)
        # The input side of every step at once: gates = g_ih * LN(W_ih x).
        layer_norm_rows(gates_2d, g_ih, gates_2d, rows(xhat_ih), rstd_ih.reshape(rstd_ih.size), lengths, 0, False,
                        training)
        step = _row_kernel(_norm_step_kernel, dt, batch)
    else:
        step = elementwise(lstm_variants_step_kernel, batch * hidden)
    apply_mask = elementwise(masked_kernel, batch * hidden) if masked else None
    for t in range(steps):
        ti = t if training else 0
        source = h
        if masked:
            source = hbar[ti]
            apply_mask(h, recurrent_mask, source)
        if normed:
            gemm(source, w_hh, raw_hh, trans_b=True)
            layer_norm_rows(raw_hh, g_hh, gates[t], xhat_hh[ti], rstd_hh[ti], lengths, t, True, training)
            step(t, ti, gates, bias, peep, h, c, lengths, y, c_all, ct_all, zone_h, zone_c, clip, cc_buf, chat,
                 rstd_c, g_c, b_c, training, *flags)
        else:
            gemm(source, w_hh, gates[t], trans_b=True, accumulate=True)
            step(t, ti, gates, bias, peep, h, c, lengths, y, c_all, ct_all, zone_h, zone_c, clip, training, *flags)
    if not training:
        return y, h, c, None
    norm = (xhat_ih, xhat_hh, chat, rstd_ih, rstd_hh, rstd_c) if normed else None
    saved = Saved(x, w_ih, w_hh, h0, c0, lengths, y, gates, c_all, ct_all, hbar, layer_norm, norm, recurrent_mask,
                  (peep, zone_h, zone_c, clip, flags))
    return y, h, c, saved


def lstm_variants_backward(saved, dy, dh_n, dc_n, clip=np.inf, trace=None):
    """Driver: backpropagate through a training :func:`lstm_variants_forward`.

    dy (T, B, H), dh_n, dc_n (B, H) device arrays (read only). Returns (dx, dh0, dc0,
    dw_ih, dw_hh, db, dpeep, dln) as fastrnn.kernels.lstm_variants: db (GH,) is the
    gradient of both b_ih and b_hh; dpeep (3, H) or None; dln = (dg_ih (GH,),
    dg_hh (GH,), dg_c (H,), db_c (H,)) or None; dw_hh is w.r.t. the W_hh the kernel saw.
    clip, trace: as the CPU driver's, but only their defaults (off) are implemented.
    """
    _cpu_only(clip, trace)
    (x, w_ih, w_hh, h0, c0, lengths, y, gates, c_all, ct_all, hbar, layer_norm, norm, recurrent_mask,
     (peep, zone_h, zone_c, cell_clip, flags)) = saved.arrays
    dt = x.dtype
    steps, batch, n_in = x.shape
    hidden, width = c0.shape[1], w_ih.shape[0]
    coupled, peephole, clipping, zoned_h, zoned_c = flags
    normed, masked = layer_norm is not None, recurrent_mask is not None
    n_rows = steps * batch
    dh, dc = empty((batch, hidden), dt), empty((batch, hidden), dt)
    dh.copy_to_device(dh_n)
    dc.copy_to_device(dc_n)
    dgates = empty(gates.shape, dt)
    dpeep_rows = empty((steps, batch, 3 * hidden), dt) if peephole else _stand_in(dt, 3)
    dhbar = empty((batch, hidden), dt) if masked else None
    add_mask = elementwise(add_masked_kernel, batch * hidden) if masked else None
    if normed:
        g_ih, g_hh, g_c, b_c = layer_norm
        xhat_ih, xhat_hh, chat, rstd_ih, rstd_hh, rstd_c = norm
        d_raw_hh = empty(gates.shape, dt)
        dgain = empty((n_rows, width), dt)  # per-row gain gradients: g_hh's, then g_ih's
        dln_c_rows = empty((steps, batch, 2 * hidden), dt)
        dchat = empty((batch, hidden), dt)
        step = _row_kernel(_norm_backward_step_kernel, dt, batch)
    else:
        step = elementwise(lstm_variants_backward_step_kernel, batch * hidden)
    d_rec_all = d_raw_hh if normed else dgates
    for t in range(steps - 1, -1, -1):
        if normed:
            step(t, gates, c_all, ct_all, c0, lengths, dy, dh, dc, dgates, dpeep_rows, peep, zone_h, zone_c, cell_clip,
                 chat, rstd_c, g_c, b_c, dchat, dln_c_rows, *flags)
            layer_norm_rows_backward(dgates[t], g_hh, xhat_hh[t], rstd_hh[t], lengths, t, d_raw_hh[t],
                                     dgain[t * batch:(t + 1) * batch])
        else:
            step(t, gates, c_all, ct_all, c0, lengths, dy, dh, dc, dgates, dpeep_rows, peep, zone_h, zone_c, cell_clip,
                 *flags)
        if masked:
            gemm(d_rec_all[t], w_hh, dhbar)
            add_mask(t, lengths, dhbar, recurrent_mask, dh)
        else:
            gemm(d_rec_all[t], w_hh, dh, accumulate=True)
    db = empty((width,), dt)
    dg = rows(dgates)
    sum_rows(dg, db)
    dpeep = None
    if peephole:
        dpeep = empty((3, hidden), dt)
        sum_rows(rows(dpeep_rows), dpeep.reshape(3 * hidden))
    dln = None
    d_in = d_rec = dg
    if normed:
        dg_ih, dg_hh, dln_c = empty((width,), dt), empty((width,), dt), empty((2 * hidden,), dt)
        sum_rows(dgain, dg_hh)
        sum_rows(rows(dln_c_rows), dln_c)
        # The input side of every step at once, in place (dgates is no longer needed).
        layer_norm_rows_backward(dg, g_ih, rows(xhat_ih), rstd_ih.reshape(n_rows), lengths, 0, dg, dgain)
        sum_rows(dgain, dg_ih)
        dln = (dg_ih, dg_hh, dln_c[:hidden], dln_c[hidden:])
        d_rec = rows(d_raw_hh)
    dx, dw_ih, dw_hh = empty(x.shape, dt), empty(w_ih.shape, dt), empty(w_hh.shape, dt)
    gemm(d_in, w_ih, rows(dx))                  # dx = d_in W_ih
    gemm(d_in, rows(x), dw_ih, trans_a=True)    # dW_ih = d_in^T x
    if masked:  # W_hh saw the masked state
        gemm(d_rec, rows(hbar), dw_hh, trans_a=True)
    else:  # h_{t-1} is h0, then y[t-1]: padded rows of y are zero, and so are their gradients
        gemm(d_rec[:batch], h0, dw_hh, trans_a=True)
        if steps > 1:
            gemm(d_rec[batch:], rows(y)[:n_rows - batch], dw_hh, trans_a=True, accumulate=True)
    return dx, dh, dc, dw_ih, dw_hh, db, dpeep, dln
