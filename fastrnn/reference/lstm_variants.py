"""Plain-NumPy reference for the LSTM variants: coupled input-forget gates (CIFG),
peephole connections, cell clipping, layer normalization, variational (input and
recurrent) dropout, DropConnect on ``W_hh`` and zoneout. Every option is
independent of the others; with every option off the result equals
:func:`fastrnn.reference.lstm_forward` / ``lstm_backward`` bit for bit.

Equations, per step ``t`` of sequence ``b`` with ``t < lengths[b]`` (for
``t >= lengths[b]`` the states ``h, c`` of ``b`` are frozen and ``y[t, b] = 0``,
PyTorch packed-sequence semantics as in :mod:`.lstm`)::

    gate blocks (rows of w_ih, w_hh, b_ih, b_hh, each block H rows):
        standard: G = 4 blocks  i, f, g, o
        coupled (CIFG): G = 3 blocks  f, g, o  and  i = 1 - f
            (no input-gate weights: w_ih (3H, I), w_hh (3H, H), biases (3H,))

    xbar_t  = x_t * m_x                 input dropout mask m_x (B, I), the same at
                                        every t, already scaled; ones when off
    hbar    = h_{t-1} * m_h             recurrent dropout mask m_h (B, H), scaled
    Wbar_hh = W_hh * M                  DropConnect mask M (G*H, H), scaled
    a_ih = xbar_t @ W_ih.T ;  a_hh = hbar @ Wbar_hh.T          (B, G*H)

    layer norm on:  A = (LN(a_ih) * g_ih + b_ih) + (LN(a_hh) * g_hh + b_hh)
    layer norm off: A = (a_ih + b_ih + b_hh) + a_hh            (absent bias = 0)
        LN(v) = (v - mean(v)) / sqrt(var(v) + 1e-5), mean and biased variance over
        the G*H entries of each row (all gate blocks together); g_ih, g_hh (G*H,)
        are the gains (``ln_ih``, ``ln_hh``); the LN biases are b_ih, b_hh.

    peephole (diagonal weights w_ci, w_cf, w_co, each (H,); no w_ci with CIFG):
        i = sigmoid(A_i + w_ci * c_{t-1})        (CIFG: i = 1 - f)
        f = sigmoid(A_f + w_cf * c_{t-1})
        g = tanh(A_g)
        (without peephole the w_c* terms are absent)
    ctilde = f * c_{t-1} + i * g
    cell clip (cuDNN style, clip > 0): ctilde = clip(ctilde, -clip, clip);
        its derivative is 1 where -clip <= value <= clip (value before clipping),
        else 0
    o = sigmoid(A_o + w_co * ctilde)    peephole from the new, clipped, un-zoned cell
    layer norm on:  htilde = o * tanh(LN(ctilde) * g_c + b_c)   LN over the H
                    entries of each row, ln_c = (g_c (H,), b_c (H,))
    layer norm off: htilde = o * tanh(ctilde)
    zoneout (Krueger et al. 2016), zh, zc (T, B, H), 1 = keep the previous value
        (0/1 masks in training, the constant p in evaluation):
        c_t = zc_t * c_{t-1} + (1 - zc_t) * ctilde
        h_t = zh_t * h_{t-1} + (1 - zh_t) * htilde
        when off: c_t = ctilde, h_t = htilde
    y_t = h_t

The dropout and zoneout masks are inputs, not drawn here: the caller owns the
random numbers. Zoneout masks at padded steps are ignored.

The backward returns the gradients of
``L = sum(dy * y) + sum(dh_n * h_n) + sum(dc_n * c_n)``; ``dw_hh`` is the gradient
w.r.t. the unmasked ``W_hh`` (it includes the DropConnect factor ``M``) and ``dx``
includes the input-mask factor ``m_x``. It also returns ``dh_total (T, B, H)``, the
total ``dL/dh_t`` at every step (from ``y_t`` plus from step ``t+1``), zero where
``t >= lengths[b]``.

Shared conventions (layouts, lengths, dtypes) as in :mod:`.rnn` and :mod:`.lstm`.
"""
import numbers

import numpy as np

from .common import _check_array, _check_grad, _input_projection, _param_grads, _prepare, _sigmoid

__all__ = ["lstm_variants_forward", "lstm_variants_backward"]

LN_EPS = 1e-5  # torch.nn.LayerNorm's default; the same as fastrnn.kernels.layer_norm


def _layer_norm(v, eps):
    """LN over the last axis: returns ``(v_hat, rstd)``, rstd with a kept axis."""
    mean = v.mean(axis=-1, keepdims=True)
    d = v - mean
    var = (d * d).mean(axis=-1, keepdims=True)
    rstd = 1 / np.sqrt(var + eps)
    return d * rstd, rstd


def _layer_norm_backward(d_hat, v_hat, rstd):
    """dL/dv from dL/dLN(v): ``rstd * (d_hat - mean(d_hat) - v_hat * mean(d_hat * v_hat))``."""
    m1 = d_hat.mean(axis=-1, keepdims=True)
    m2 = (d_hat * v_hat).mean(axis=-1, keepdims=True)
    return rstd * (d_hat - m1 - v_hat * m2)


def _check_options(coupled, peephole, cell_clip, ln_ih, ln_hh, ln_c, H, dtype):
    """Validate the variant options. Returns (peephole tuple or None, clip or None,
    layer-norm tuple (g_ih, g_hh, g_c, b_c) or None)."""
    G = (3 if coupled else 4) * H
    if peephole is None:
        peep = None
    else:
        if not isinstance(peephole, (tuple, list)) or len(peephole) != 3:
            raise TypeError("peephole must be None or a tuple (w_ci, w_cf, w_co), got "
                            f"{type(peephole).__name__}"
                            + (f" of length {len(peephole)}" if isinstance(peephole, (tuple, list)) else ""))
        w_ci, w_cf, w_co = peephole
        if coupled:
            if w_ci is not None:
                raise ValueError("peephole w_ci must be None when coupled=True "
                                 "(CIFG has no input gate)")
        else:
            if w_ci is None:
                raise ValueError("peephole w_ci is None but coupled=False: give all three "
                                 "of (w_ci, w_cf, w_co)")
            w_ci = _check_array(w_ci, "peephole w_ci", (H,), dtype)
        if w_cf is None or w_co is None:
            raise ValueError("peephole w_cf and w_co must be arrays of shape "
                             f"({H},), got None")
        w_cf = _check_array(w_cf, "peephole w_cf", (H,), dtype)
        w_co = _check_array(w_co, "peephole w_co", (H,), dtype)
        peep = (w_ci, w_cf, w_co)

    if cell_clip is None:
        clip = None
    else:
        if isinstance(cell_clip, (bool, np.bool_)) or not isinstance(cell_clip, numbers.Real):
            raise TypeError(f"cell_clip must be None or a positive float, got "
                            f"{type(cell_clip).__name__}")
        clip = float(cell_clip)
        if not clip > 0:  # also rejects NaN
            raise ValueError(f"cell_clip must be > 0, got {cell_clip}")

    given = [ln_ih is not None, ln_hh is not None, ln_c is not None]
    if any(given) and not all(given):
        names = [n for n, g in zip(("ln_ih", "ln_hh", "ln_c"), given) if not g]
        raise ValueError("layer norm needs all of ln_ih, ln_hh and ln_c (or none); "
                         f"missing {', '.join(names)}")
    if all(given):
        g_ih = _check_array(ln_ih, "ln_ih", (G,), dtype)
        g_hh = _check_array(ln_hh, "ln_hh", (G,), dtype)
        if not isinstance(ln_c, (tuple, list)) or len(ln_c) != 2:
            raise TypeError("ln_c must be a tuple (gain (H,), bias (H,)), got "
                            f"{type(ln_c).__name__}")
        g_c = _check_array(ln_c[0], "ln_c gain", (H,), dtype)
        b_c = _check_array(ln_c[1], "ln_c bias", (H,), dtype)
        ln = (g_ih, g_hh, g_c, b_c)
    else:
        ln = None
    return peep, clip, ln


def _check_zoneout(z, name, shape, dtype):
    if z is None:
        return None
    z = _check_array(z, name, shape, dtype)
    if not np.all((z >= 0) & (z <= 1)):
        bad = z[~((z >= 0) & (z <= 1))]
        raise ValueError(f"{name} must lie in [0, 1] (1 = keep the previous state), "
                         f"got {bad.size} value(s) outside, e.g. {bad.flat[0]}")
    return z


def lstm_variants_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None, lengths=None, *,
                          coupled=False, peephole=None, cell_clip=None,
                          ln_ih=None, ln_hh=None, ln_c=None,
                          input_mask=None, recurrent_mask=None, weight_hh_mask=None,
                          zoneout_h=None, zoneout_c=None):
    """LSTM variants over a whole sequence (equations in the module docstring).

    Parameters
    ----------
    x : (T, B, I) float32 or float64, time-major input.
    w_ih : (G*H, I), same dtype as x; G = 4 (blocks i, f, g, o) or 3 when
        ``coupled`` (blocks f, g, o).
    w_hh : (G*H, H), same dtype.
    b_ih, b_hh : (G*H,) or None. With layer norm they are the LN biases.
    h0, c0 : (B, H) or None (zeros).
    lengths : (B,) integers in 1..T, or None (all T).
    coupled : bool, CIFG (i = 1 - f).
    peephole : None or (w_ci, w_cf, w_co), each (H,); w_ci must be None when coupled.
    cell_clip : None or a positive float.
    ln_ih, ln_hh : (G*H,) LN gains of the two projections; ln_c : (gain (H,),
        bias (H,)) of the LN on the cell. All three or none.
    input_mask : (B, I), recurrent_mask : (B, H), weight_hh_mask : (G*H, H), or
        None; already scaled (inverted dropout).
    zoneout_h, zoneout_c : (T, B, H) in [0, 1], or None.

    Returns
    -------
    y : (T, B, H), zero at padded steps.
    h_n, c_n : (B, H) states at each sequence's last valid step.
    cache : dict, everything :func:`lstm_variants_backward` needs. Among others
        ``gates (T, B, 4H)``: activated i, f, g, o at every step (with CIFG
        ``i = 1 - f`` is stored too), ``c_pre`` (the cell before clipping),
        ``c_tilde`` (after clipping), ``h_prev``/``c_prev`` (states entering t).
    """
    if not isinstance(coupled, (bool, np.bool_)):
        raise TypeError(f"coupled must be a bool, got {type(coupled).__name__}")
    coupled = bool(coupled)
    n_gates = 3 if coupled else 4
    p = _prepare(x, w_ih, w_hh, b_ih, b_hh, lengths, n_gates, {"h0": h0, "c0": c0})
    x, w_hh, valid = p["x"], p["w_hh"], p["valid"]
    T, B, I, H = p["T"], p["B"], p["I"], p["H"]
    G = n_gates * H
    dtype = x.dtype
    peep, clip, ln = _check_options(coupled, peephole, cell_clip, ln_ih, ln_hh, ln_c, H, dtype)
    m_x = None if input_mask is None else _check_array(input_mask, "input_mask", (B, I), dtype)
    m_h = None if recurrent_mask is None else _check_array(recurrent_mask, "recurrent_mask",
                                                           (B, H), dtype)
    m_w = None if weight_hh_mask is None else _check_array(weight_hh_mask, "weight_hh_mask",
                                                           (G, H), dtype)
    zh = _check_zoneout(zoneout_h, "zoneout_h", (T, B, H), dtype)
    zc = _check_zoneout(zoneout_c, "zoneout_c", (T, B, H), dtype)
    eps = dtype.type(LN_EPS)

    # column slices of the gate blocks in w_ih / w_hh / A
    if coupled:
        sl_i, sl_f, sl_g, sl_o = None, slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H)
    else:
        sl_i, sl_f, sl_g, sl_o = (slice(k * H, (k + 1) * H) for k in range(4))

    xbar = x if m_x is None else x * m_x[None]
    w_bar = w_hh if m_w is None else w_hh * m_w
    if ln is None:
        xp = _input_projection(xbar, p["w_ih"], p["b_ih"], p["b_hh"])   # (T, B, G)
        n_ih = rstd_ih = n_hh = rstd_hh = None
    else:
        g_ih, g_hh, g_c, b_c = ln
        n_ih, rstd_ih = _layer_norm(xbar @ p["w_ih"].T, eps)           # (T, B, G), (T, B, 1)
        xp = n_ih * g_ih
        if p["b_ih"] is not None:
            xp += p["b_ih"]
        n_hh = np.empty((T, B, G), dtype=dtype)
        rstd_hh = np.empty((T, B, 1), dtype=dtype)
        n_c = np.empty((T, B, H), dtype=dtype)
        rstd_c = np.empty((T, B, 1), dtype=dtype)

    y = np.zeros((T, B, H), dtype=dtype)
    gates = np.empty((T, B, 4 * H), dtype=dtype)   # activated i, f, g, o
    h_prev = np.empty((T, B, H), dtype=dtype)      # states entering step t
    c_prev = np.empty((T, B, H), dtype=dtype)
    h_bar = np.empty((T, B, H), dtype=dtype)       # what Wbar_hh multiplied at step t
    c_pre = np.empty((T, B, H), dtype=dtype)       # new cell before clipping
    c_til = np.empty((T, B, H), dtype=dtype)       # new cell after clipping (ctilde)
    tanh_u = np.empty((T, B, H), dtype=dtype)      # tanh of the (normalized) new cell
    h, c = p["h0"], p["c0"]
    for t in range(T):
        h_prev[t], c_prev[t] = h, c
        h_bar[t] = h if m_h is None else h * m_h
        a_hh = h_bar[t] @ w_bar.T
        if ln is None:
            a = xp[t] + a_hh
        else:
            n_hh[t], rstd_hh[t] = _layer_norm(a_hh, eps)
            r = n_hh[t] * g_hh
            if p["b_hh"] is not None:
                r += p["b_hh"]
            a = xp[t] + r
        a_f = a[:, sl_f] if peep is None else a[:, sl_f] + peep[1] * c
        f = _sigmoid(a_f)
        if coupled:
            i = 1 - f
        else:
            a_i = a[:, sl_i] if peep is None else a[:, sl_i] + peep[0] * c
            i = _sigmoid(a_i)
        g = np.tanh(a[:, sl_g])
        c_pre[t] = f * c + i * g
        c_til[t] = c_pre[t] if clip is None else np.clip(c_pre[t], -clip, clip)
        a_o = a[:, sl_o] if peep is None else a[:, sl_o] + peep[2] * c_til[t]
        o = _sigmoid(a_o)
        gates[t] = np.concatenate([i, f, g, o], axis=1)
        if ln is None:
            tanh_u[t] = np.tanh(c_til[t])
        else:
            n_c[t], rstd_c[t] = _layer_norm(c_til[t], eps)
            tanh_u[t] = np.tanh(n_c[t] * g_c + b_c)
        h_new = o * tanh_u[t]
        c_new = c_til[t]
        if zc is not None:
            c_new = zc[t] * c + (1 - zc[t]) * c_new
        if zh is not None:
            h_new = zh[t] * h + (1 - zh[t]) * h_new
        m = valid[t][:, None]
        h = np.where(m, h_new, h)
        c = np.where(m, c_new, c)
        y[t] = np.where(m, h_new, 0)

    cache = dict(x=x, xbar=xbar, w_ih=p["w_ih"], w_hh=w_hh, w_bar=w_bar,
                 b_ih=p["b_ih"], b_hh=p["b_hh"], valid=valid, coupled=coupled,
                 peephole=peep, cell_clip=clip, ln=ln,
                 input_mask=m_x, recurrent_mask=m_h, weight_hh_mask=m_w,
                 zoneout_h=zh, zoneout_c=zc,
                 gates=gates, h_prev=h_prev, c_prev=c_prev, h_bar=h_bar,
                 c_pre=c_pre, c_tilde=c_til, tanh_u=tanh_u,
                 n_ih=n_ih, rstd_ih=rstd_ih, n_hh=n_hh, rstd_hh=rstd_hh)
    if ln is not None:
        cache.update(n_c=n_c, rstd_c=rstd_c)
    return y, h, c, cache


def lstm_variants_backward(cache, dy, dh_n=None, dc_n=None):
    """Backpropagation through time for :func:`lstm_variants_forward`.

    Parameters
    ----------
    cache : the cache returned by :func:`lstm_variants_forward`.
    dy : (T, B, H) gradient of the loss w.r.t. y (ignored at padded steps).
    dh_n, dc_n : (B, H) gradients w.r.t. h_n and c_n, or None (zeros).

    Returns
    -------
    dict with ``dx (T, B, I)``, ``dh0``, ``dc0 (B, H)``, ``dw_ih (G*H, I)``,
    ``dw_hh (G*H, H)`` (w.r.t. the unmasked W_hh), ``db_ih``, ``db_hh (G*H,)``,
    ``dw_ci``, ``dw_cf``, ``dw_co (H,)``, ``dln_ih``, ``dln_hh (G*H,)``,
    ``dln_c_gain``, ``dln_c_bias (H,)`` and ``dh_total (T, B, H)`` (total
    ``dL/dh_t``, zero at padded steps). Gradients of absent parameters are None.
    All arrays in the forward's dtype.
    """
    gates, c_prev, c_pre, c_til, tanh_u = (cache[k] for k in
                                           ("gates", "c_prev", "c_pre", "c_tilde", "tanh_u"))
    valid, w_bar = cache["valid"], cache["w_bar"]
    coupled, peep, clip, ln = cache["coupled"], cache["peephole"], cache["cell_clip"], cache["ln"]
    m_h, zh, zc = cache["recurrent_mask"], cache["zoneout_h"], cache["zoneout_c"]
    T, B, H = c_til.shape
    n_gates = 3 if coupled else 4
    G = n_gates * H
    dtype = c_til.dtype
    dy = _check_array(dy, "dy", (T, B, H), dtype)
    dh = _check_grad(dh_n, "dh_n", (B, H), dtype).copy()
    dc = _check_grad(dc_n, "dc_n", (B, H), dtype).copy()

    dA = np.zeros((T, B, G), dtype=dtype)         # gradient w.r.t. the gate pre-activations A
    da_hh = np.zeros((T, B, G), dtype=dtype)      # ... w.r.t. a_hh = hbar @ Wbar_hh.T
    dh_total = np.zeros((T, B, H), dtype=dtype)
    dw_ci = None if peep is None or peep[0] is None else np.zeros(H, dtype=dtype)
    dw_cf = None if peep is None else np.zeros(H, dtype=dtype)
    dw_co = None if peep is None else np.zeros(H, dtype=dtype)
    if ln is not None:
        g_ih, g_hh, g_c, _ = ln
        dg_c = np.zeros(H, dtype=dtype)
        db_c = np.zeros(H, dtype=dtype)
        dln_hh = np.zeros(G, dtype=dtype)
    for t in reversed(range(T)):
        m = valid[t][:, None]
        dh_new = np.where(m, dy[t] + dh, 0)   # total dL/dh_t
        dc_new = np.where(m, dc, 0)           # total dL/dc_t
        dh_total[t] = dh_new
        i, f, g, o = (gates[t][:, k * H:(k + 1) * H] for k in range(4))
        # zoneout: split between the previous state and the new candidate
        if zh is not None:
            dh_til = (1 - zh[t]) * dh_new
        else:
            dh_til = dh_new
        if zc is not None:
            dc_til = (1 - zc[t]) * dc_new
        else:
            dc_til = dc_new
        # htilde = o * tanh(u), u = LN(ctilde) * g_c + b_c or u = ctilde
        do = dh_til * tanh_u[t]
        du = dh_til * o * (1 - tanh_u[t] ** 2)
        if ln is not None:
            dg_c += (du * cache["n_c"][t]).sum(axis=0)
            db_c += du.sum(axis=0)
            du = _layer_norm_backward(du * g_c, cache["n_c"][t], cache["rstd_c"][t])
        dcell = dc_til + du                    # total grad w.r.t. ctilde (clipped)
        da_o = do * o * (1 - o)
        if peep is not None:
            dw_co += (da_o * c_til[t]).sum(axis=0)
            dcell = dcell + da_o * peep[2]
        if clip is not None:
            dcell = np.where(np.abs(c_pre[t]) <= clip, dcell, 0)   # grad w.r.t. c_pre
        di = dcell * g
        df = dcell * c_prev[t]
        dg = dcell * i
        dc_prev = dcell * f
        if coupled:
            df = df - di                       # i = 1 - f
        da_f = df * f * (1 - f)
        da_g = dg * (1 - g ** 2)
        if coupled:
            blocks = [da_f, da_g, da_o]
        else:
            da_i = di * i * (1 - i)
            blocks = [da_i, da_f, da_g, da_o]
        if peep is not None:
            dw_cf += (da_f * c_prev[t]).sum(axis=0)
            dc_prev = dc_prev + da_f * peep[1]
            if not coupled:
                dw_ci += (da_i * c_prev[t]).sum(axis=0)
                dc_prev = dc_prev + da_i * peep[0]
        dA[t] = np.where(m, np.concatenate(blocks, axis=1), 0)
        if ln is not None:
            dln_hh += (dA[t] * cache["n_hh"][t]).sum(axis=0)
            da_hh[t] = _layer_norm_backward(dA[t] * g_hh, cache["n_hh"][t], cache["rstd_hh"][t])
        else:
            da_hh[t] = dA[t]
        dh_prev = da_hh[t] @ w_bar
        if m_h is not None:
            dh_prev = dh_prev * m_h
        if zh is not None:
            dh_prev = dh_prev + zh[t] * dh_new
        if zc is not None:
            dc_prev = dc_prev + zc[t] * dc_new
        # a frozen (padded) step passes the gradients straight through
        dh = np.where(m, dh_prev, dh)
        dc = np.where(m, dc_prev, dc)

    if ln is None:
        da_ih = dA
    else:
        n_ih = cache["n_ih"]
        dln_ih = (dA * n_ih).sum(axis=(0, 1))
        da_ih = _layer_norm_backward(dA * g_ih, n_ih, cache["rstd_ih"])
    proj = dict(x=cache["xbar"], w_ih=cache["w_ih"], b_ih=cache["b_ih"], b_hh=cache["b_hh"])
    grads = _param_grads(proj, da_ih, da_hh, cache["h_bar"])
    if ln is not None:   # the biases enter A directly, after the normalization
        dA2 = dA.reshape(T * B, G)
        grads["db_ih"] = None if cache["b_ih"] is None else dA2.sum(axis=0)
        grads["db_hh"] = None if cache["b_hh"] is None else dA2.sum(axis=0)
    if cache["input_mask"] is not None:
        grads["dx"] = grads["dx"] * cache["input_mask"][None]
    if cache["weight_hh_mask"] is not None:
        grads["dw_hh"] = grads["dw_hh"] * cache["weight_hh_mask"]
    grads.update(dh0=dh, dc0=dc, dw_ci=dw_ci, dw_cf=dw_cf, dw_co=dw_co,
                 dln_ih=None if ln is None else dln_ih,
                 dln_hh=None if ln is None else dln_hh,
                 dln_c_gain=None if ln is None else dg_c,
                 dln_c_bias=None if ln is None else db_c,
                 dh_total=dh_total)
    return grads
