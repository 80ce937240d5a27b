"""Plain-NumPy reference for the GRU variants (reset-after form, gates r, z, n):
layer normalization, input dropout, recurrent (variational) dropout, DropConnect on
W_hh and zoneout. The oracle of the whole feature, written for clarity.

Per step t of sequence b with ``t < lengths[b]``::

    x~    = x_t * m_x                            input mask (B, I)
    W~_hh = W_hh * M_hh                          DropConnect mask (3H, H)
    hbar  = h_{t-1} * m_h                        recurrent mask (B, H)
    a_ih  = W_ih x~ ;  a_hh = W~_hh hbar
    A_ih  = LN(a_ih) * g_ih + b_ih   with layer norm, else  a_ih + b_ih
    A_hh  = LN(a_hh) * g_hh + b_hh   with layer norm, else  a_hh + b_hh
    r     = sigmoid(A_ih_r + A_hh_r) ;  z = sigmoid(A_ih_z + A_hh_z)
    n     = tanh(A_ih_n + r * A_hh_n)
    ht    = (1 - z) * n + z * h_{t-1}
    h_t   = zeta_t * h_{t-1} + (1 - zeta_t) * ht     with zoneout, else ht
    y_t   = h_t

LN(v) = (v - mean(v)) / sqrt(var(v) + 1e-5) over the 3H entries of a row (biased
variance, like torch.nn.LayerNorm). Masks are used as given (already scaled, e.g.
0 or 1/(1-p)); zoneout's zeta is a 0/1 mask in training (1 keeps the previous
state) or the constant p in evaluation. For ``t >= lengths[b]`` the state is frozen
and ``y[t, b] = 0``. See :mod:`.gru` for the plain cell.
"""
import numpy as np

from .common import _check_array, _check_grad, _prepare, _sigmoid

__all__ = ["gru_variants_forward", "gru_variants_backward"]

LN_EPS = 1e-5


def _layer_norm(a):
    """Normalize the last axis: returns (a_hat, rstd) with rstd of shape a.shape[:-1] + (1,)."""
    mean = a.mean(axis=-1, keepdims=True)
    var = ((a - mean) ** 2).mean(axis=-1, keepdims=True)
    rstd = 1 / np.sqrt(var + a.dtype.type(LN_EPS))
    return (a - mean) * rstd, rstd


def _layer_norm_backward(d_hat, a_hat, rstd):
    """dL/da from dL/da_hat through a_hat = LN(a) (last axis)."""
    return rstd * (d_hat - d_hat.mean(axis=-1, keepdims=True)
                   - a_hat * (d_hat * a_hat).mean(axis=-1, keepdims=True))


def gru_variants_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, lengths=None, *,
                         ln_ih=None, ln_hh=None, input_mask=None, recurrent_mask=None,
                         weight_hh_mask=None, zoneout_h=None):
    """GRU variants over a whole sequence.

    Parameters
    ----------
    x, w_ih, w_hh, b_ih, b_hh, h0, lengths : as :func:`fastrnn.reference.gru_forward`.
    ln_ih, ln_hh : (3H,) layer-norm gains of the input and recurrent pre-activations,
        both or neither (b_ih / b_hh act as the layer-norm biases).
    input_mask : (B, I) or None, multiplies every x_t.
    recurrent_mask : (B, H) or None, multiplies h_{t-1} before W_hh (variational).
    weight_hh_mask : (3H, H) or None, multiplies W_hh (DropConnect).
    zoneout_h : (T, B, H) or None, zeta_t of the zoneout update.

    Returns
    -------
    y : (T, B, H) outputs, zero at padded steps.
    h_n : (B, H) state at each sequence's last valid step.
    cache : dict, everything :func:`gru_variants_backward` needs.
    """
    p = _prepare(x, w_ih, w_hh, b_ih, b_hh, lengths, 3, {"h0": h0})
    x, w_ih, w_hh, valid = p["x"], p["w_ih"], p["w_hh"], p["valid"]
    T, B, I, H = p["T"], p["B"], p["I"], p["H"]
    dtype = x.dtype
    if (ln_ih is None) != (ln_hh is None):
        raise ValueError("ln_ih and ln_hh must both be given (layer norm) or both be None")
    layer_norm = ln_ih is not None
    if layer_norm:
        ln_ih = _check_array(ln_ih, "ln_ih", (3 * H,), dtype)
        ln_hh = _check_array(ln_hh, "ln_hh", (3 * H,), dtype)
    m_x = np.ones((B, I), dtype) if input_mask is None else _check_array(input_mask, "input_mask", (B, I), dtype)
    m_h = np.ones((B, H), dtype) if recurrent_mask is None else _check_array(
        recurrent_mask, "recurrent_mask", (B, H), dtype)
    m_w = np.ones((3 * H, H), dtype) if weight_hh_mask is None else _check_array(
        weight_hh_mask, "weight_hh_mask", (3 * H, H), dtype)
    zeta = np.zeros((T, B, H), dtype) if zoneout_h is None else _check_array(zoneout_h, "zoneout_h", (T, B, H), dtype)
    b_ih_ = np.zeros(3 * H, dtype) if p["b_ih"] is None else p["b_ih"]
    b_hh_ = np.zeros(3 * H, dtype) if p["b_hh"] is None else p["b_hh"]

    x_masked = x * m_x[None]
    w_eff = w_hh * m_w
    a_ih = x_masked @ w_ih.T                                  # (T, B, 3H)
    if layer_norm:
        ih_hat, ih_rstd = _layer_norm(a_ih)
        A_ih = ih_hat * ln_ih + b_ih_
    else:
        ih_hat = ih_rstd = None
        A_ih = a_ih + b_ih_

    y = np.zeros((T, B, H), dtype)
    gates = np.empty((T, B, 3 * H), dtype)     # activated r, z, n
    hn_term = np.empty((T, B, H), dtype)       # A_hh_n
    h_prev = np.empty((T, B, H), dtype)        # state entering step t
    h_bar = np.empty((T, B, H), dtype)         # what W~_hh multiplies
    hh_hat = np.empty((T, B, 3 * H), dtype)
    hh_rstd = np.empty((T, B, 1), dtype)
    h = p["h0"]
    for t in range(T):
        h_prev[t] = h
        h_bar[t] = h * m_h
        a_hh = h_bar[t] @ w_eff.T
        if layer_norm:
            hh_hat[t], hh_rstd[t] = _layer_norm(a_hh)
            A_hh = hh_hat[t] * ln_hh + b_hh_
        else:
            A_hh = a_hh + b_hh_
        r = _sigmoid(A_ih[t, :, 0 * H:1 * H] + A_hh[:, 0 * H:1 * H])
        z = _sigmoid(A_ih[t, :, 1 * H:2 * H] + A_hh[:, 1 * H:2 * H])
        hn_term[t] = A_hh[:, 2 * H:3 * H]
        n = np.tanh(A_ih[t, :, 2 * H:3 * H] + r * hn_term[t])
        gates[t] = np.concatenate([r, z, n], axis=1)
        h_tilde = (1 - z) * n + z * h
        h_new = zeta[t] * h + (1 - zeta[t]) * h_tilde
        m = valid[t][:, None]
        h = np.where(m, h_new, h)
        y[t] = np.where(m, h_new, 0)

    cache = dict(x=x, x_masked=x_masked, w_ih=w_ih, w_eff=w_eff, has_b_ih=p["b_ih"] is not None,
                 has_b_hh=p["b_hh"] is not None, valid=valid, gates=gates, hn_term=hn_term, h_prev=h_prev,
                 h_bar=h_bar, m_x=m_x, m_h=m_h, m_w=m_w, zeta=zeta, layer_norm=layer_norm,
                 ln_ih=ln_ih, ln_hh=ln_hh, ih_hat=ih_hat, ih_rstd=ih_rstd,
                 hh_hat=hh_hat if layer_norm else None, hh_rstd=hh_rstd if layer_norm else None)
    return y, h, cache


def gru_variants_backward(cache, dy, dh_n=None, *, clip=np.inf):
    """Backpropagation through time for :func:`gru_variants_forward`.

    Parameters
    ----------
    cache : the cache returned by :func:`gru_variants_forward`.
    dy : (T, B, H) gradient of the loss w.r.t. y (ignored at padded steps).
    dh_n : (B, H) gradient w.r.t. h_n, or None (zeros).
    clip : per-step derivative clipping (Graves): at every valid step the total
        dL/dh_t (dy_t plus what flows back from step t+1) is clipped elementwise to
        [-clip, clip] before it is propagated. np.inf (default) = exact gradients.

    Returns
    -------
    dict with ``dx``, ``dh0``, ``dw_ih``, ``dw_hh``, ``db_ih``, ``db_hh``, ``dln_ih``,
    ``dln_hh`` (None where the forward had no such parameter) and ``dh_total
    (T, B, H)``, the (clipped) total dL/dh_t of every valid step (from y_t plus
    from step t+1; zero where t >= lengths[b]), as reference.lstm_variants. ``dw_hh`` is the
    gradient w.r.t. the unmasked W_hh and ``dx`` w.r.t. the unmasked x (both
    through their masks).
    """
    gates, h_prev, valid = cache["gates"], cache["h_prev"], cache["valid"]
    T, B, H = h_prev.shape
    dtype = h_prev.dtype
    dy = _check_array(dy, "dy", (T, B, H), dtype)
    dh = _check_grad(dh_n, "dh_n", (B, H), dtype).copy()
    if not clip >= 0:
        raise ValueError(f"clip must be >= 0, got {clip}")
    layer_norm, zeta, m_h, w_eff = cache["layer_norm"], cache["zeta"], cache["m_h"], cache["w_eff"]

    dA_ih = np.zeros((T, B, 3 * H), dtype)   # grad w.r.t. A_ih (after layer norm, gain and bias)
    dA_hh = np.zeros((T, B, 3 * H), dtype)   # grad w.r.t. A_hh
    da_hh = np.zeros((T, B, 3 * H), dtype)   # grad w.r.t. a_hh = W~_hh hbar
    dh_total = np.zeros((T, B, H), dtype)
    for t in reversed(range(T)):
        m = valid[t][:, None]
        d_h = np.where(m, dy[t] + dh, 0)
        if np.isfinite(clip):
            d_h = np.clip(d_h, -clip, clip)
        dh_total[t] = d_h
        r, z, n = (gates[t][:, k * H:(k + 1) * H] for k in range(3))
        h = h_prev[t]
        d_tilde = d_h * (1 - zeta[t])             # through h_t = zeta h + (1 - zeta) ht
        d_direct = d_h * zeta[t] + d_tilde * z    # through the h_{t-1} terms of both
        dn = d_tilde * (1 - z)
        dz = d_tilde * (h - n)
        dn_pre = dn * (1 - n ** 2)
        dz_pre = dz * z * (1 - z)
        dr_pre = dn_pre * cache["hn_term"][t] * r * (1 - r)
        dA_ih[t] = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)
        dA_hh[t] = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)
        if layer_norm:
            da_hh[t] = _layer_norm_backward(dA_hh[t] * cache["ln_hh"], cache["hh_hat"][t], cache["hh_rstd"][t])
        else:
            da_hh[t] = dA_hh[t]
        d_hbar = da_hh[t] @ w_eff
        # a frozen (padded) step passes the gradient straight through
        dh = np.where(m, d_direct + d_hbar * m_h, dh)

    if layer_norm:
        da_ih = _layer_norm_backward(dA_ih * cache["ln_ih"], cache["ih_hat"], cache["ih_rstd"])
    else:
        da_ih = dA_ih
    x_masked, w_ih = cache["x_masked"], cache["w_ih"]
    I = x_masked.shape[2]
    da_ih2, dA_ih2, dA_hh2 = da_ih.reshape(T * B, 3 * H), dA_ih.reshape(T * B, 3 * H), dA_hh.reshape(T * B, 3 * H)
    grads = {
        "dx": (da_ih @ w_ih) * cache["m_x"][None],
        "dh0": dh,
        "dw_ih": da_ih2.T @ x_masked.reshape(T * B, I),
        "dw_hh": (da_hh.reshape(T * B, 3 * H).T @ cache["h_bar"].reshape(T * B, H)) * cache["m_w"],
        "db_ih": dA_ih2.sum(axis=0) if cache["has_b_ih"] else None,
        "db_hh": dA_hh2.sum(axis=0) if cache["has_b_hh"] else None,
        "dln_ih": (dA_ih * cache["ih_hat"]).reshape(T * B, 3 * H).sum(axis=0) if layer_norm else None,
        "dln_hh": (dA_hh * cache["hh_hat"]).reshape(T * B, 3 * H).sum(axis=0) if layer_norm else None,
        "dh_total": dh_total,
    }
    return grads
