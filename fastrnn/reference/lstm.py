"""Plain-NumPy reference LSTM (PyTorch gate order i, f, g, o).

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)
    f = sigmoid(W_if x + b_if + W_hf h + b_hf)
    g = tanh   (W_ig x + b_ig + W_hg h + b_hg)
    o = sigmoid(W_io x + b_io + W_ho h + b_ho)
    c' = f * c + i * g
    h' = o * tanh(c')

See :mod:`.rnn` for the shared conventions (layouts, lengths, dtypes).
"""
import numpy as np

from .common import _check_array, _check_grad, _input_projection, _param_grads, _prepare, _sigmoid

__all__ = ["lstm_forward", "lstm_backward"]


def lstm_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None, lengths=None):
    """LSTM over a whole sequence.

    Parameters
    ----------
    x : (T, B, I) float32 or float64, time-major input.
    w_ih : (4H, I), same dtype as x; row blocks i, f, g, o.
    w_hh : (4H, H), same dtype.
    b_ih, b_hh : (4H,) same dtype, or None (no bias).
    h0, c0 : (B, H) same dtype, or None (zeros).
    lengths : (B,) integers in 1..T, or None (every sequence has length T).
        For ``t >= lengths[b]`` the state of ``b`` is frozen and ``y[t, b] = 0``.

    Returns
    -------
    y : (T, B, H) hidden outputs, zero at padded steps.
    h_n, c_n : (B, H) states at each sequence's last valid step.
    cache : dict, everything :func:`lstm_backward` needs.
    """
    p = _prepare(x, w_ih, w_hh, b_ih, b_hh, lengths, 4, {"h0": h0, "c0": c0})
    x, w_hh, valid = p["x"], p["w_hh"], p["valid"]
    T, B, H = p["T"], p["B"], p["H"]
    dtype = x.dtype

    xp = _input_projection(x, p["w_ih"], p["b_ih"], p["b_hh"])   # (T, B, 4H)
    y = np.zeros((T, B, H), dtype=dtype)
    gates = np.empty((T, B, 4 * H), dtype=dtype)   # activated i, f, g, o
    h_prev = np.empty((T, B, H), dtype=dtype)      # states entering step t
    c_prev = np.empty((T, B, H), dtype=dtype)
    tanh_c = np.empty((T, B, H), dtype=dtype)      # tanh of step t's new cell
    h, c = p["h0"], p["c0"]
    for t in range(T):
        h_prev[t], c_prev[t] = h, c
        a = xp[t] + h @ w_hh.T
        i = _sigmoid(a[:, 0 * H:1 * H])
        f = _sigmoid(a[:, 1 * H:2 * H])
        g = np.tanh(a[:, 2 * H:3 * H])
        o = _sigmoid(a[:, 3 * H:4 * H])
        gates[t] = np.concatenate([i, f, g, o], axis=1)
        c_new = f * c + i * g
        tanh_c[t] = np.tanh(c_new)
        h_new = o * tanh_c[t]
        m = valid[t][:, None]
        h = np.where(m, h_new, h)
        c = np.where(m, c_new, c)
        y[t] = np.where(m, h_new, 0)

    cache = dict(x=x, w_ih=p["w_ih"], w_hh=w_hh, b_ih=p["b_ih"], b_hh=p["b_hh"],
                 valid=valid, gates=gates, h_prev=h_prev, c_prev=c_prev, tanh_c=tanh_c)
    return y, h, c, cache


def lstm_backward(cache, dy, dh_n=None, dc_n=None):
    """Backpropagation through time for :func:`lstm_forward`.

    Parameters
    ----------
    cache : the cache returned by :func:`lstm_forward`.
    dy : (T, B, H) gradient of the loss w.r.t. y (ignored at padded steps).
    dh_n, dc_n : (B, H) gradients w.r.t. h_n and c_n, or None (zeros).

    Returns
    -------
    dict with ``dx (T, B, I)``, ``dh0 (B, H)``, ``dc0 (B, H)``, ``dw_ih (4H, I)``,
    ``dw_hh (4H, H)``, ``db_ih (4H,)``, ``db_hh (4H,)`` (the bias gradients are
    None when the forward had no such bias). All in the forward's dtype.
    """
    gates, c_prev, tanh_c = cache["gates"], cache["c_prev"], cache["tanh_c"]
    valid, w_hh = cache["valid"], cache["w_hh"]
    T, B, H = tanh_c.shape
    dtype = tanh_c.dtype
    dy = _check_array(dy, "dy", (T, B, H), dtype)
    dh = _check_grad(dh_n, "dh_n", (B, H), dtype).copy()
    dc = _check_grad(dc_n, "dc_n", (B, H), dtype).copy()

    da = np.zeros((T, B, 4 * H), dtype=dtype)   # gradient w.r.t. pre-activations
    for t in reversed(range(T)):
        m = valid[t][:, None]
        dh_new = np.where(m, dy[t] + dh, 0)
        dc_new = np.where(m, dc, 0)
        i, f, g, o = (gates[t][:, k * H:(k + 1) * H] for k in range(4))
        do = dh_new * tanh_c[t]
        dcell = dc_new + dh_new * o * (1 - tanh_c[t] ** 2)   # total grad w.r.t. c'
        di = dcell * g
        df = dcell * c_prev[t]
        dg = dcell * i
        da[t] = np.concatenate([di * i * (1 - i),
                                df * f * (1 - f),
                                dg * (1 - g ** 2),
                                do * o * (1 - o)], axis=1)
        # a frozen (padded) step passes the gradients straight through
        dh = np.where(m, da[t] @ w_hh, dh)
        dc = np.where(m, dcell * f, dc)

    grads = _param_grads(cache, da, da, cache["h_prev"])
    grads["dh0"] = dh
    grads["dc0"] = dc
    return grads
