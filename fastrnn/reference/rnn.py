"""Plain-NumPy reference for the vanilla (Elman) RNN, plus helpers shared by the
LSTM and GRU references.

Written for clarity, not speed: the oracle the tests compare the fused kernels
with, and the NumPy baseline of the benchmarks. Every computation runs in the
dtype of ``x`` (float32 or float64); nothing is upcast.

Conventions (shared by :mod:`.lstm` and :mod:`.gru`):

* ``x`` is time-major, shape ``(T, B, I)``.
* Weights use PyTorch's layout: ``w_ih (G*H, I)``, ``w_hh (G*H, H)``,
  ``b_ih (G*H,)``, ``b_hh (G*H,)``; a ``None`` bias means "no bias".
* Initial states ``h0``/``c0`` are ``(B, H)``; ``None`` means zeros.
* ``lengths`` is ``(B,)`` integers in ``1..T`` or ``None`` (all ``T``). Packed
  sequence semantics: for ``t >= lengths[b]`` the state of ``b`` is frozen and
  ``y[t, b] = 0``; ``h_n[b]`` is the state after step ``lengths[b] - 1``.
* Backward functions return the gradients of
  ``L = sum(dy * y) + sum(dh_n * h_n) (+ sum(dc_n * c_n))``.
"""
import numpy as np

from .common import _check_array, _check_grad, _input_projection, _param_grads, _prepare

__all__ = ["rnn_forward", "rnn_backward"]

_NONLINEARITIES = ("tanh", "relu")


def rnn_forward(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, lengths=None,
                nonlinearity="tanh"):
    """Vanilla RNN over a whole sequence: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``.

    Parameters
    ----------
    x : (T, B, I) float32 or float64, time-major input.
    w_ih : (H, I), same dtype as x.
    w_hh : (H, H), same dtype.
    b_ih, b_hh : (H,) same dtype, or None (no bias).
    h0 : (B, H) same dtype, or None (zeros).
    lengths : (B,) integers in 1..T, or None (every sequence has length T).
        For ``t >= lengths[b]`` the state of ``b`` is frozen and ``y[t, b] = 0``.
    nonlinearity : "tanh" or "relu".

    Returns
    -------
    y : (T, B, H) outputs, zero at padded steps.
    h_n : (B, H) state at each sequence's last valid step.
    cache : dict, everything :func:`rnn_backward` needs.
    """
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    p = _prepare(x, w_ih, w_hh, b_ih, b_hh, lengths, 1, {"h0": h0})
    x, w_hh, valid = p["x"], p["w_hh"], p["valid"]
    T, B, H = p["T"], p["B"], p["H"]

    xp = _input_projection(x, p["w_ih"], p["b_ih"], p["b_hh"])
    y = np.zeros((T, B, H), dtype=x.dtype)
    h_prev = np.empty((T, B, H), dtype=x.dtype)   # state entering step t
    h_new = np.empty((T, B, H), dtype=x.dtype)    # candidate state of step t
    h = p["h0"]
    for t in range(T):
        h_prev[t] = h
        a = xp[t] + h @ w_hh.T
        h_new[t] = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
        m = valid[t][:, None]
        h = np.where(m, h_new[t], h)
        y[t] = np.where(m, h_new[t], 0)

    cache = dict(x=x, w_ih=p["w_ih"], w_hh=w_hh, b_ih=p["b_ih"], b_hh=p["b_hh"],
                 valid=valid, h_prev=h_prev, h_new=h_new, nonlinearity=nonlinearity)
    return y, h, cache


def rnn_backward(cache, dy, dh_n=None):
    """Backpropagation through time for :func:`rnn_forward`.

    Parameters
    ----------
    cache : the cache returned by :func:`rnn_forward`.
    dy : (T, B, H) gradient of the loss w.r.t. y (ignored at padded steps).
    dh_n : (B, H) gradient w.r.t. h_n, or None (zeros).

    Returns
    -------
    dict with ``dx (T, B, I)``, ``dh0 (B, H)``, ``dw_ih (H, I)``, ``dw_hh (H, H)``,
    ``db_ih (H,)``, ``db_hh (H,)`` (the bias gradients are None when the forward
    had no such bias). All in the forward's dtype.
    """
    h_prev, h_new, valid, w_hh = cache["h_prev"], cache["h_new"], cache["valid"], cache["w_hh"]
    T, B, H = h_new.shape
    dtype = h_new.dtype
    dy = _check_array(dy, "dy", (T, B, H), dtype)
    dh = _check_grad(dh_n, "dh_n", (B, H), dtype).copy()

    da = np.zeros((T, B, H), dtype=dtype)   # gradient w.r.t. the pre-activation
    for t in reversed(range(T)):
        m = valid[t][:, None]
        dhn = np.where(m, dy[t] + dh, 0)     # gradient reaching this step's output
        if cache["nonlinearity"] == "tanh":
            da[t] = dhn * (1 - h_new[t] ** 2)
        else:
            da[t] = dhn * (h_new[t] > 0)
        # a frozen (padded) step passes the gradient straight through
        dh = np.where(m, da[t] @ w_hh, dh)

    grads = _param_grads(cache, da, da, h_prev)
    grads["dh0"] = dh
    return grads
