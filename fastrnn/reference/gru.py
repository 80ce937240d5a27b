"""Plain-NumPy reference GRU (PyTorch gate order r, z, n).

reset_after=True (PyTorch, cuDNN, Keras default)::

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

reset_after=False (Cho et al. 2014, Keras ``reset_after=False``): r and z as
above, but the reset gate is applied to h before the recurrent product::

    n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)

See :mod:`.rnn` for the shared conventions (layouts, lengths, dtypes).
"""
import numpy as np

from .common import _check_array, _check_grad, _input_projection, _param_grads, _prepare, _sigmoid

__all__ = ["gru_forward", "gru_backward"]


def gru_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, lengths=None,
                reset_after=True):
    """GRU over a whole sequence.

    Parameters
    ----------
    x : (T, B, I) float32 or float64, time-major input.
    w_ih : (3H, I), same dtype as x; row blocks r, z, n.
    w_hh : (3H, H), same dtype.
    b_ih, b_hh : (3H,) same dtype, or None (no bias).
    h0 : (B, H) same dtype, or None (zeros).
    lengths : (B,) integers in 1..T, or None (every sequence has length T).
        For ``t >= lengths[b]`` the state of ``b`` is frozen and ``y[t, b] = 0``.
    reset_after : bool
        True: PyTorch form ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``.
        False: Cho 2014 form ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)``.

    Returns
    -------
    y : (T, B, H) outputs, zero at padded steps.
    h_n : (B, H) state at each sequence's last valid step.
    cache : dict, everything :func:`gru_backward` needs.
    """
    p = _prepare(x, w_ih, w_hh, b_ih, b_hh, lengths, 3, {"h0": h0})
    x, w_hh, b_hh, valid = p["x"], p["w_hh"], p["b_hh"], p["valid"]
    T, B, H = p["T"], p["B"], p["H"]
    dtype = x.dtype
    if b_hh is None:
        b_hh = np.zeros(3 * H, dtype=dtype)

    xp = _input_projection(x, p["w_ih"], p["b_ih"])   # (T, B, 3H), b_hh kept apart
    y = np.zeros((T, B, H), dtype=dtype)
    gates = np.empty((T, B, 3 * H), dtype=dtype)   # activated r, z, n
    hn_term = np.empty((T, B, H), dtype=dtype)     # W_hn h + b_hn (reset_after only)
    h_prev = np.empty((T, B, H), dtype=dtype)      # state entering step t
    h = p["h0"]
    for t in range(T):
        h_prev[t] = h
        if reset_after:
            a_h = h @ w_hh.T + b_hh
            r = _sigmoid(xp[t, :, 0 * H:1 * H] + a_h[:, 0 * H:1 * H])
            z = _sigmoid(xp[t, :, 1 * H:2 * H] + a_h[:, 1 * H:2 * H])
            hn_term[t] = a_h[:, 2 * H:3 * H]
            n = np.tanh(xp[t, :, 2 * H:3 * H] + r * hn_term[t])
        else:
            a_rz = h @ w_hh[:2 * H].T + b_hh[:2 * H]
            r = _sigmoid(xp[t, :, 0 * H:1 * H] + a_rz[:, 0 * H:1 * H])
            z = _sigmoid(xp[t, :, 1 * H:2 * H] + a_rz[:, 1 * H:2 * H])
            n = np.tanh(xp[t, :, 2 * H:3 * H] + (r * h) @ w_hh[2 * H:].T + b_hh[2 * H:])
        gates[t] = np.concatenate([r, z, n], axis=1)
        h_new = (1 - z) * n + z * h
        m = valid[t][:, None]
        h = np.where(m, h_new, h)
        y[t] = np.where(m, h_new, 0)

    cache = dict(x=x, w_ih=p["w_ih"], w_hh=w_hh, b_ih=p["b_ih"], b_hh=p["b_hh"],
                 valid=valid, gates=gates, h_prev=h_prev, reset_after=reset_after)
    if reset_after:
        cache["hn_term"] = hn_term
    return y, h, cache


def gru_backward(cache, dy, dh_n=None):
    """Backpropagation through time for :func:`gru_forward`.

    Parameters
    ----------
    cache : the cache returned by :func:`gru_forward`.
    dy : (T, B, H) gradient of the loss w.r.t. y (ignored at padded steps).
    dh_n : (B, H) gradient w.r.t. h_n, or None (zeros).

    Returns
    -------
    dict with ``dx (T, B, I)``, ``dh0 (B, H)``, ``dw_ih (3H, I)``, ``dw_hh (3H, H)``,
    ``db_ih (3H,)``, ``db_hh (3H,)`` (the bias gradients are None when the forward
    had no such bias). All in the forward's dtype.
    """
    gates, h_prev, valid, w_hh = cache["gates"], cache["h_prev"], cache["valid"], cache["w_hh"]
    reset_after = cache["reset_after"]
    T, B, H = h_prev.shape
    dtype = h_prev.dtype
    dy = _check_array(dy, "dy", (T, B, H), dtype)
    dh = _check_grad(dh_n, "dh_n", (B, H), dtype).copy()

    da_i = np.zeros((T, B, 3 * H), dtype=dtype)   # grad w.r.t. x @ w_ih.T + b_ih
    da_h = np.zeros((T, B, 3 * H), dtype=dtype)   # grad w.r.t. (what w_hh multiplies) @ w_hh.T + b_hh
    rh = np.zeros((T, B, H), dtype=dtype)         # r * h_prev (reset_after=False only)
    for t in reversed(range(T)):
        m = valid[t][:, None]
        dh_new = np.where(m, dy[t] + dh, 0)
        r, z, n = (gates[t][:, k * H:(k + 1) * H] for k in range(3))
        h = h_prev[t]
        dn = dh_new * (1 - z)
        dz = dh_new * (h - n)
        dn_pre = dn * (1 - n ** 2)
        dz_pre = dz * z * (1 - z)
        dh_step = dh_new * z                       # through h' = ... + z * h
        if reset_after:
            dr = dn_pre * cache["hn_term"][t]
            dr_pre = dr * r * (1 - r)
            da_i[t] = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)
            da_h[t] = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)
            dh_step = dh_step + da_h[t] @ w_hh
        else:
            d_rh = dn_pre @ w_hh[2 * H:]           # grad w.r.t. r * h
            dr = d_rh * h
            dr_pre = dr * r * (1 - r)
            da_i[t] = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)
            da_h[t] = da_i[t]
            rh[t] = r * h
            dh_step = dh_step + da_h[t, :, :2 * H] @ w_hh[:2 * H] + d_rh * r
        # a frozen (padded) step passes the gradient straight through
        dh = np.where(m, dh_step, dh)

    grads = _param_grads(cache, da_i, da_h, h_prev)
    if not reset_after:
        # w_hh's r and z blocks multiplied h_prev, but its n block multiplied r * h_prev
        da_n = da_h[:, :, 2 * H:].reshape(T * B, H)
        grads["dw_hh"][2 * H:] = da_n.T @ rh.reshape(T * B, H)
    grads["dh0"] = dh
    return grads
