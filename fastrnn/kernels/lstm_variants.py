"""Fused LSTM variants over a whole sequence: peephole connections, coupled input and
forget gates (CIFG), cell clipping, layer normalization, recurrent dropout and
zoneout, in any combination (equations: fastrnn/reference/lstm_variants.py).

Per valid step, with G*H gate rows i, f, g, o (CIFG: f, g, o and i = 1 - f):

    hbar   = h_{t-1} * m_h                                  recurrent dropout
    A      = W_ih x_t + W_hh hbar + b                       or, with layer norm,
    A      = LN(W_ih x_t) g_ih + LN(W_hh hbar) g_hh + b     (b = b_ih + b_hh)
    i, f   = sigmoid(A_i + p_i c_{t-1}), sigmoid(A_f + p_f c_{t-1});  g = tanh(A_g)
    ct     = clip(f c_{t-1} + i g)                          cell clip
    o      = sigmoid(A_o + p_o ct)                          peephole
    ht     = o tanh(ct)   or   o tanh(LN(ct) g_c + b_c)     layer norm
    c_t, h_t = zc c_{t-1} + (1 - zc) ct,  zh h_{t-1} + (1 - zh) ht   zoneout

Input dropout and DropConnect on W_hh act on the kernel's inputs (x, W_hh) and are
applied by the caller. An option that is off is passed as a zero-size array (or an
infinite clip), so one compiled specialization per dtype serves every combination;
the branches on them sit outside the pointwise loops. The plain kernels in lstm.py
stay the fast path when no option is on.
"""
import numpy as np

from .._jit import inline_kernel, kernel
from .activations import dsigmoid, dtanh, sigmoid_rows, tanh, tanh_rows
from .blas import (gemm, matmul_add_transposed_out, matmul_transposed, matmul_transposed_add, pack_for_rows,
                   pack_transposed)
from .common import bound_in, clipped, sum_rows, total_hidden_grad
from .layer_norm import affine_norm_backward, normalize_row
from .workspace import carve, reused


@inline_kernel
def _blocks(width, hidden):
    """(start of f, start of g, start of o) in a gate row: CIFG rows are f, g, o."""
    if width == 3 * hidden:
        return 0, hidden, 2 * hidden
    return hidden, 2 * hidden, 3 * hidden


@inline_kernel
def _peephole_backward(d_gate, weight, cell, d_cell, d_weight):
    """Through a peephole term weight * cell inside a gate's pre-activation with
    gradient d_gate: d_cell += d_gate * weight, d_weight += d_gate * cell (all (H,))."""
    for j in range(d_gate.shape[0]):
        d_cell[j] += d_gate[j] * weight[j]
    for j in range(d_gate.shape[0]):
        d_weight[j] += d_gate[j] * cell[j]


@kernel
def lstm_variants_forward_kernel(x, weights, bias, options, h, c, lengths, y, gates, cells, norm, scratch,
                                 training):
    """Run the LSTM variant over all T steps.

    x (T, B, I); weights = (w_ih (GH, I), w_ih_t, w_hh (GH, H), w_hh_t) with the
    ``_t`` packed transposes of blas.pack_transposed (T*B rows, B rows); GH = 4H, or
    3H with coupled gates; bias (GH,) = b_ih + b_hh.
    options = (peep (3, H) rows p_i, p_f, p_o (p_i unused with CIFG) or (0, H);
    (g_ih (GH,), g_hh (GH,), g_c (H,), b_c (H,)) layer-norm gains/biases, or all (0,);
    m_h (B, H) recurrent mask or (0, 0); zh, zc (T, B, H) zoneout weights or (0, 0, 0);
    cell_clip scalar of x's dtype, inf when off).
    h, c (B, H): initial state in, final state out. lengths (B,) int64 in 1..T.
    y (T, B, H) output, zero past each length. gates (T, B, GH): on return the
    activated gates. cells = (c_all (T, B, H) cell state after every step, or T = 0
    in inference; ct_all (T, B, H) the unclipped candidate ct of every step, (1, B, H)
    in inference). norm = (xhat_ih (T, B, GH) normalized input projection ((1, B, GH)
    in inference), xhat_hh (T, B, GH) ((1, B, GH) in inference), chat (T, B, H)
    ((1, B, H) in inference), rstd (T, B, 3) the three inverse deviations); all
    zero-size without layer norm. scratch = (hbar (B, H) or (0, H) without recurrent
    dropout, raw_hh (B, GH) or (0, GH) without layer norm, cclip (B, H) or (0, H)
    without clipping). Nothing else aliases.
    """
    w_ih, w_ih_t, w_hh, w_hh_t = weights
    peep, (g_ih, g_hh, g_c, b_c), rec_mask, zone_h, zone_c, cell_clip = options
    c_all, ct_all = cells
    xhat_ih, xhat_hh, chat, rstd = norm
    hbar, raw_hh, cclip = scratch
    steps, batch, n_in = x.shape
    hidden, width = c.shape[1], w_ih.shape[0]
    coupled = width == 3 * hidden
    f_at, g_at, o_at = _blocks(width, hidden)
    layer_norm, peephole, masked = g_ih.shape[0] > 0, peep.shape[0] > 0, rec_mask.shape[0] > 0
    zoned_h, zoned_c, clipping = zone_h.shape[0] > 0, zone_c.shape[0] > 0, cell_clip < np.inf
    one = x.dtype.type(1)
    rows = steps * batch
    gates_2d = gates.reshape(rows, width)
    matmul_transposed(x.reshape(rows, n_in), w_ih, w_ih_t, gates_2d)
    for t in range(steps):
        ti = t if training else 0
        source = h
        if masked:
            for b in range(batch):
                for j in range(hidden):
                    hbar[b, j] = h[b, j] * rec_mask[b, j]
            source = hbar
        if layer_norm:
            matmul_transposed(source, w_hh, w_hh_t, raw_hh)
        else:
            matmul_transposed_add(source, w_hh, w_hh_t, gates[t])
        for b in range(batch):
            c_b, y_tb = c[b], y[t, b]
            if t >= lengths[b]:
                y_tb[:] = 0
                if training:
                    c_all[t, b] = c_b
                    ct_all[t, b] = 0
                continue
            row = gates[t, b]
            if layer_norm:  # both sides per step, while the rows are in cache
                xi, xh = xhat_ih[ti, b], xhat_hh[ti, b]
                rstd[t, b, 0] = normalize_row(row, xi)
                rstd[t, b, 1] = normalize_row(raw_hh[b], xh)
                for j in range(width):
                    row[j] = g_ih[j] * xi[j] + g_hh[j] * xh[j]
            if peephole:  # i and f look at the previous cell
                if not coupled:
                    a_i, p_i = row[0:hidden], peep[0]
                    for j in range(hidden):
                        a_i[j] += p_i[j] * c_b[j]
                a_f, p_f = row[f_at:g_at], peep[1]
                for j in range(hidden):
                    a_f[j] += p_f[j] * c_b[j]
            sigmoid_rows(row[:g_at], bias[:g_at])  # i, f (or f alone)
            tanh_rows(row[g_at:o_at], bias[g_at:o_at])
            f, g, o = row[f_at:g_at], row[g_at:o_at], row[o_at:]
            ct = ct_all[ti, b]
            if coupled:
                for j in range(hidden):
                    ct[j] = f[j] * c_b[j] + (one - f[j]) * g[j]
            else:
                i = row[0:hidden]
                for j in range(hidden):
                    ct[j] = f[j] * c_b[j] + i[j] * g[j]
            cc = ct
            if clipping:
                cc = cclip[b]
                for j in range(hidden):
                    cc[j] = clipped(ct[j], cell_clip)
            if peephole:  # o looks at the new cell
                p_o = peep[2]
                for j in range(hidden):
                    o[j] += p_o[j] * cc[j]
            sigmoid_rows(o, bias[o_at:])
            if layer_norm:
                ch = chat[ti, b]
                rstd[t, b, 2] = normalize_row(cc, ch)
                for j in range(hidden):
                    y_tb[j] = o[j] * tanh(ch[j] * g_c[j] + b_c[j])
            else:
                for j in range(hidden):
                    y_tb[j] = o[j] * tanh(cc[j])
            h_b = h[b]
            if zoned_h:
                zh = zone_h[t, b]
                for j in range(hidden):
                    y_tb[j] = zh[j] * h_b[j] + (one - zh[j]) * y_tb[j]
            h_b[:] = y_tb
            if zoned_c:
                zc = zone_c[t, b]
                for j in range(hidden):
                    c_b[j] = zc[j] * c_b[j] + (one - zc[j]) * cc[j]
            else:
                c_b[:] = cc
            if training:
                c_all[t, b] = c_b


@kernel
def lstm_variants_backward_kernel(x, weights, options, h0, c0, lengths, y, gates, cells, norm, dy, dh, dc,
                                  work, grads, clip, trace):
    """Backpropagate through :func:`lstm_variants_forward_kernel` (training mode).

    x, weights = (w_ih, w_hh, w_hh_t), options, h0, c0, lengths, y, gates, cells, norm:
    as the training forward used or left them (read only), w_hh_t from
    blas.pack_for_rows; dy (T, B, H).
    dh, dc (B, H): dL/dh_n, dL/dc_n on entry, dL/dh0, dL/dc0 on return.
    work = (dgates (T, B, GH) pre-activation gradients (with layer norm, each row is
    replaced by the gradient of W_ih x_t once used); d_raw_hh (T, B, GH) gradient of
    W_hh hbar with layer norm, else (0, B, GH); dhbar (B, H) with recurrent dropout else (0, H); h_in (T, B, H) with recurrent
    dropout (the masked h_{t-1} of every step), else (0, B, H); vec (4, H) scratch;
    d_hat (GH,) scratch with layer norm, else (0,); dh_t (H, B) scratch of
    blas.matmul_add_transposed_out).
    grads = (dx (T, B, I), dw_ih (GH, I), dw_hh (GH, H), db (1, GH), dpeep (3, H) or
    (0, H), (dg_ih (GH,), dg_hh (GH,), dg_c (H,), db_c (H,)) or all (0,)): overwritten.
    clip: per-step bound on dL/dh_t (inf: off). trace (T, B, H) or (0, B, H): receives
    the clipped total dL/dh_t of every step, zero past each length.
    """
    w_ih, w_hh, w_hh_t = weights
    peep, (g_ih, g_hh, g_c, b_c), rec_mask, zone_h, zone_c, cell_clip = options
    c_all, ct_all = cells
    xhat_ih, xhat_hh, chat, rstd = norm
    dgates, d_raw_hh, dhbar, h_in, vec, d_hat, dh_t = work
    dx, dw_ih, dw_hh, db, dpeep, (dg_ih, dg_hh, dg_c, db_c) = grads
    steps, batch, n_in = x.shape
    hidden, width = c0.shape[1], w_ih.shape[0]
    coupled = width == 3 * hidden
    f_at, g_at, o_at = _blocks(width, hidden)
    layer_norm, peephole, masked = g_ih.shape[0] > 0, peep.shape[0] > 0, rec_mask.shape[0] > 0
    zoned_h, zoned_c, clipping = zone_h.shape[0] > 0, zone_c.shape[0] > 0, cell_clip < np.inf
    tracing = trace.shape[0] > 0
    one, zero = x.dtype.type(1), x.dtype.type(0)
    db_sum = db[0]
    db_sum[:] = 0
    dpeep[:] = 0
    dg_ih[:] = 0
    dg_hh[:] = 0
    dg_c[:] = 0
    db_c[:] = 0
    cc, th, du, dcc = vec[0], vec[1], vec[2], vec[3]
    for t in range(steps - 1, -1, -1):
        for b in range(batch):
            dh_b = dh[b]
            if t < lengths[b]:
                total_hidden_grad(dh_b, dy[t, b], clip, trace, t, b)  # dh now holds dL/dh_t
            elif tracing:
                trace[t, b] = 0
        for b in range(batch):
            d_row = dgates[t, b]
            if t >= lengths[b]:
                d_row[:] = 0  # frozen state: dh, dc pass through unchanged
                if layer_norm:
                    d_raw_hh[t, b] = 0
                continue
            row, ct, dh_b, dc_b = gates[t, b], ct_all[t, b], dh[b], dc[b]
            f, g, o = row[f_at:g_at], row[g_at:o_at], row[o_at:]
            d_f, d_g, d_o = d_row[f_at:g_at], d_row[g_at:o_at], d_row[o_at:]
            c_prev = c_all[t - 1, b] if t > 0 else c0[b]
            # Unused stand-ins where an option is off keep every name defined on every path.
            zh = zone_h[t, b] if zoned_h else c_prev
            zc = zone_c[t, b] if zoned_c else c_prev
            ch = chat[t, b] if layer_norm else c_prev
            if clipping:
                for j in range(hidden):
                    cc[j] = clipped(ct[j], cell_clip)
            else:
                cc[:] = ct
            if layer_norm:
                for j in range(hidden):
                    th[j] = tanh(ch[j] * g_c[j] + b_c[j])
            else:
                for j in range(hidden):
                    th[j] = tanh(cc[j])
            # du: gradient reaching ht = o * th, through zoneout
            if zoned_h:
                for j in range(hidden):
                    du[j] = dh_b[j] * (one - zh[j])
            else:
                du[:] = dh_b
            for j in range(hidden):
                d_o[j] = du[j] * th[j] * dsigmoid(o[j])
            for j in range(hidden):
                du[j] = du[j] * o[j] * dtanh(th[j])  # now the gradient of tanh's argument
            if layer_norm:
                for j in range(hidden):
                    db_c[j] += du[j]
                affine_norm_backward(du, g_c, ch, rstd[t, b, 2], dg_c, dcc)
            else:
                dcc[:] = du
            if peephole:
                _peephole_backward(d_o, peep[2], cc, dcc, dpeep[2])
            if zoned_c:
                for j in range(hidden):
                    dcc[j] += dc_b[j] * (one - zc[j])
            else:
                for j in range(hidden):
                    dcc[j] += dc_b[j]
            if clipping:  # dcc now holds dL/d(clipped ct); the clip passes it inside the bound only
                for j in range(hidden):
                    dcc[j] = dcc[j] if abs(ct[j]) <= cell_clip else zero
            if coupled:
                for j in range(hidden):
                    d_f[j] = dcc[j] * (c_prev[j] - g[j]) * dsigmoid(f[j])
                for j in range(hidden):
                    d_g[j] = dcc[j] * (one - f[j]) * dtanh(g[j])
            else:
                i, d_i = row[0:hidden], d_row[0:hidden]
                for j in range(hidden):
                    d_i[j] = dcc[j] * g[j] * dsigmoid(i[j])
                for j in range(hidden):
                    d_f[j] = dcc[j] * c_prev[j] * dsigmoid(f[j])
                for j in range(hidden):
                    d_g[j] = dcc[j] * i[j] * dtanh(g[j])
            if zoned_c:
                for j in range(hidden):
                    dc_b[j] = dc_b[j] * zc[j] + dcc[j] * f[j]
            else:
                for j in range(hidden):
                    dc_b[j] = dcc[j] * f[j]
            if peephole:
                if not coupled:
                    _peephole_backward(d_row[0:hidden], peep[0], c_prev, dc_b, dpeep[0])
                _peephole_backward(d_f, peep[1], c_prev, dc_b, dpeep[1])
            # dL/dh_{t-1}: zoneout's direct path now, the recurrent product below
            if zoned_h:
                for j in range(hidden):
                    dh_b[j] *= zh[j]
            else:
                dh_b[:] = 0
            if layer_norm:  # both sides per step, while the rows are in cache
                for j in range(width):
                    db_sum[j] += d_row[j]  # here, not in a pass over all of dgates after the loop
                affine_norm_backward(d_row, g_hh, xhat_hh[t, b], rstd[t, b, 1], dg_hh, d_raw_hh[t, b])
                # The input side's gradient replaces the row in dgates, through a scratch
                # row (output aliasing input defeats LLVM's alias check: scalar loops).
                affine_norm_backward(d_row, g_ih, xhat_ih[t, b], rstd[t, b, 0], dg_ih, d_hat)
                d_row[:] = d_hat
        d_rec = d_raw_hh[t] if layer_norm else dgates[t]
        if masked:
            dhbar[:] = 0
            matmul_add_transposed_out(d_rec, w_hh, w_hh_t, dh_t, dhbar)
            for b in range(batch):
                if t < lengths[b]:
                    for j in range(hidden):
                        dh[b, j] += dhbar[b, j] * rec_mask[b, j]
        else:
            matmul_add_transposed_out(d_rec, w_hh, w_hh_t, dh_t, dh)
    _parameter_grads(x, h0, y, dgates, d_raw_hh, h_in, layer_norm, rec_mask, w_ih, dx, dw_ih, dw_hh, db_sum)


@kernel
def _parameter_grads(x, h0, y, dgates, d_raw_hh, h_in, layer_norm, rec_mask, w_ih, dx, dw_ih, dw_hh, db):
    """Input, weight and bias gradients after the time loop (GEMMs and a sum).

    With layer norm, dgates holds the gradient of the raw input projection W_ih x (the
    loop replaced each row) and db is already summed; d_raw_hh that of W_hh hbar.
    """
    steps, batch, n_in = x.shape
    hidden, width = h0.shape[1], w_ih.shape[0]
    rows = steps * batch
    dg_2d = dgates.reshape(rows, width)
    d_in, d_rec = dg_2d, dg_2d
    if layer_norm:
        d_rec = d_raw_hh.reshape(rows, width)
    else:
        sum_rows(dg_2d, db)
    gemm(False, False, 1.0, d_in, w_ih, 0.0, dx.reshape(rows, n_in))
    gemm(True, False, 1.0, d_in, x.reshape(rows, n_in), 0.0, dw_ih)
    if rec_mask.shape[0] > 0:  # W_hh saw the masked state
        for b in range(batch):
            for j in range(hidden):
                h_in[0, b, j] = h0[b, j] * rec_mask[b, j]
        for t in range(1, steps):
            for b in range(batch):
                for j in range(hidden):
                    h_in[t, b, j] = y[t - 1, b, j] * rec_mask[b, j]
        gemm(True, False, 1.0, d_rec, h_in.reshape(rows, hidden), 0.0, dw_hh)
    else:  # padded rows of y are zero, and so are their gradients
        gemm(True, False, 1.0, d_rec[:batch], h0, 0.0, dw_hh)
        if steps > 1:
            gemm(True, False, 1.0, d_rec[batch:], y.reshape(rows, hidden)[:rows - batch], 1.0, dw_hh)


def _empty(dtype, *shape):
    return np.empty(shape, dtype)


def lstm_variants_forward(x, w_ih, w_hh, bias, h0, c0, lengths, training, peephole=None, layer_norm=None,
                          recurrent_mask=None, zoneout_h=None, zoneout_c=None, cell_clip=None):
    """Driver: allocate outputs/workspace and run the fused variant forward.

    Arguments validated, C-contiguous, one dtype: x (T, B, I); w_ih (GH, I), w_hh
    (GH, H) with GH = 4H (3H: coupled gates); bias (GH,) = b_ih + b_hh; h0, c0 (B, H);
    lengths (B,) int64. Options (None = off): peephole (3, H) rows p_i, p_f, p_o;
    layer_norm = (g_ih (GH,), g_hh (GH,), g_c (H,), b_c (H,)); recurrent_mask (B, H);
    zoneout_h, zoneout_c (T, B, H); cell_clip a positive float.
    Returns (y, h_n, c_n, saved); saved (what the backward needs) is None unless training.
    """
    dt = x.dtype
    steps, batch, _ = x.shape
    hidden, width = c0.shape[1], w_ih.shape[0]
    kept = steps if training else 1
    options = _options(dt, batch, hidden, width, peephole, layer_norm, recurrent_mask, zoneout_h, zoneout_c,
                       cell_clip)
    normed = layer_norm is not None
    h, c = h0.copy(), c0.copy()
    y = np.empty((steps, batch, hidden), dt)
    rows = kept if normed else 0
    gates, c_all, ct_all, *norm = carve(dt, [
        (steps, batch, width), (steps if training else 0, batch, hidden), (kept, batch, hidden),
        (rows, batch, width), (rows, batch, width), (rows, batch, hidden), (steps if normed else 0, batch, 3)],
        "lstm_variants.saved")
    cells, norm = (c_all, ct_all), tuple(norm)
    scratch = (_empty(dt, batch if recurrent_mask is not None else 0, hidden),
               _empty(dt, batch if normed else 0, width),
               _empty(dt, batch if cell_clip is not None else 0, hidden))
    weights = (w_ih, pack_transposed(w_ih, steps * batch), w_hh, pack_transposed(w_hh, batch))
    lstm_variants_forward_kernel(x, weights, bias, options, h, c, lengths, y, gates, cells, norm, scratch, training)
    saved = (x, (w_ih, w_hh), options, h0, c0, lengths, y, gates, cells, norm) if training else None
    return y, h, c, saved


def _options(dt, batch, hidden, width, peephole, layer_norm, recurrent_mask, zoneout_h, zoneout_c, cell_clip):
    """The kernel's option tuple, zero-size arrays (and an infinite clip) for what is off."""
    return (_empty(dt, 0, hidden) if peephole is None else peephole,
            tuple(_empty(dt, 0) for _ in range(4)) if layer_norm is None else tuple(layer_norm),
            _empty(dt, 0, 0) if recurrent_mask is None else recurrent_mask,
            _empty(dt, 0, 0, 0) if zoneout_h is None else zoneout_h,
            _empty(dt, 0, 0, 0) if zoneout_c is None else zoneout_c,
            bound_in(dt, np.inf if cell_clip is None else cell_clip))


def lstm_variants_backward(saved, dy, dh_n, dc_n, clip=np.inf, trace=None):
    """Driver: run the fused variant backward.

    Returns (dx, dh0, dc0, dw_ih, dw_hh, db, dpeep, dln): db (GH,) is the gradient of
    both b_ih and b_hh; dpeep (3, H) or None; dln = (dg_ih, dg_hh, dg_c, db_c) or None.
    dw_hh is w.r.t. the W_hh the kernel saw. clip: per-step bound on dL/dh_t (inf: off);
    trace: None or a (T, B, H) array to receive every step's dL/dh_t.
    """
    x, weights, options, h0, c0, lengths, y, gates, cells, norm = saved
    dt = x.dtype
    w_ih, w_hh = weights
    steps, batch, _ = x.shape
    hidden, width = c0.shape[1], w_ih.shape[0]
    normed = options[1][0].shape[0] > 0
    masked = options[2].shape[0] > 0
    peephole = options[0].shape[0] > 0
    dh, dc = dh_n.copy(), dc_n.copy()
    norm_rows = steps if normed else 0
    work = (reused("lstm_variants.dgates", gates.shape, dt),
            reused("lstm_variants.d_raw_hh", (norm_rows, batch, width), dt),
            _empty(dt, batch if masked else 0, hidden), _empty(dt, steps if masked else 0, batch, hidden),
            _empty(dt, 4, hidden), _empty(dt, width if normed else 0), _empty(dt, hidden, batch))
    dln = tuple(_empty(dt, n if normed else 0) for n in (width, width, hidden, hidden))
    grads = (np.empty_like(x), np.empty_like(w_ih), np.empty_like(w_hh), _empty(dt, 1, width),
             _empty(dt, 3 if peephole else 0, hidden), dln)
    trace = _empty(dt, 0, batch, hidden) if trace is None else trace
    lstm_variants_backward_kernel(x, (w_ih, w_hh, pack_for_rows(w_hh, batch)), options, h0, c0, lengths, y, gates,
                                  cells, norm, dy, dh, dc, work, grads, bound_in(dt, clip), trace)
    dx, dw_ih, dw_hh, db, dpeep, _ = grads
    return dx, dh, dc, dw_ih, dw_hh, db[0], (dpeep if peephole else None), (dln if normed else None)
