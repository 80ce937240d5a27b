"""Helpers shared by the reference cells: checks, safe sigmoid, input projection,
parameter gradients."""
import numpy as np

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))



def _sigmoid(x):
    """Logistic sigmoid that never overflows: ``exp`` only sees ``-|x|``.

    For ``x >= 0`` it is ``1 / (1 + e^-x)``, for ``x < 0`` it is
    ``e^x / (1 + e^x)``; both branches use ``e = exp(-|x|)`` in ``(0, 1]``.
    Keeps the dtype of ``x``.
    """
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _check_array(a, name, shape, dtype):
    """Return ``a`` as an ndarray of exactly ``shape`` and ``dtype`` or raise."""
    a = np.asarray(a)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype} (the dtype of x), got {a.dtype}")
    return a


def _prepare(x, w_ih, w_hh, b_ih, b_hh, lengths, n_gates, states):
    """Validate the forward arguments common to all cells.

    Parameters
    ----------
    x, w_ih, w_hh, b_ih, b_hh, lengths : see the ``*_forward`` functions.
    n_gates : int
        G, the number of gate blocks (1 RNN, 3 GRU, 4 LSTM).
    states : dict name -> array or None
        Initial states (``h0``, ``c0``); ``None`` becomes zeros.

    Returns
    -------
    dict with ``x, w_ih, w_hh, b_ih, b_hh`` (checked arrays or None),
    ``T, B, I, H``, ``valid`` (bool ``(T, B)``, True where ``t < lengths[b]``)
    and one entry per name in ``states`` (``(B, H)`` arrays, never None).
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (T, B, I), got {x.shape}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    dtype = x.dtype
    T, B, I = x.shape
    if T < 1 or B < 1:
        raise ValueError(f"x must have T >= 1 and B >= 1, got shape {x.shape}")
    w_hh = np.asarray(w_hh)
    if w_hh.ndim != 2 or w_hh.shape[0] != n_gates * w_hh.shape[1]:
        raise ValueError(f"w_hh must have shape ({n_gates}*H, H), got {w_hh.shape}")
    H = w_hh.shape[1]
    G = n_gates * H
    out = dict(T=T, B=B, I=I, H=H, x=x)
    out["w_ih"] = _check_array(w_ih, "w_ih", (G, I), dtype)
    out["w_hh"] = _check_array(w_hh, "w_hh", (G, H), dtype)
    out["b_ih"] = None if b_ih is None else _check_array(b_ih, "b_ih", (G,), dtype)
    out["b_hh"] = None if b_hh is None else _check_array(b_hh, "b_hh", (G,), dtype)
    for name, s in states.items():
        if s is None:
            out[name] = np.zeros((B, H), dtype=dtype)
        else:
            out[name] = _check_array(s, name, (B, H), dtype)
    if lengths is None:
        out["valid"] = np.ones((T, B), dtype=bool)
    else:
        lengths = np.asarray(lengths)
        if lengths.shape != (B,):
            raise ValueError(f"lengths must have shape ({B},), got {lengths.shape}")
        if not np.issubdtype(lengths.dtype, np.integer):
            raise TypeError(f"lengths must be integers, got {lengths.dtype}")
        if lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"lengths must lie in 1..{T}, got {lengths.tolist()}")
        out["valid"] = np.arange(T)[:, None] < lengths[None, :]
    return out


def _input_projection(x, w_ih, *biases):
    """``x @ w_ih.T + sum(biases)`` for all time steps at once: ``(T, B, G*H)``."""
    xp = x @ w_ih.T
    for b in biases:
        if b is not None:
            xp += b
    return xp


def _check_grad(g, name, shape, dtype):
    """Gradient argument: zeros when None, else checked like an input."""
    if g is None:
        return np.zeros(shape, dtype=dtype)
    return _check_array(g, name, shape, dtype)


def _param_grads(cache, dg_ih, dg_hh, h_in):
    """Input and parameter gradients from the per-step pre-activation gradients.

    dg_ih : (T, B, G*H) gradient w.r.t. the ``x @ w_ih.T + b_ih`` term.
    dg_hh : (T, B, G*H) gradient w.r.t. the ``h_in @ w_hh.T + b_hh`` term.
    h_in  : (T, B, H) what ``w_hh`` multiplied at each step (usually ``h_prev``).
    Each gradient is a single matmul (or sum) over all steps.
    """
    x, w_ih = cache["x"], cache["w_ih"]
    T, B, I = x.shape
    G = w_ih.shape[0]
    H = h_in.shape[2]
    dg_ih2 = dg_ih.reshape(T * B, G)
    dg_hh2 = dg_hh.reshape(T * B, G)
    return {
        "dx": dg_ih @ w_ih,
        "dw_ih": dg_ih2.T @ x.reshape(T * B, I),
        "dw_hh": dg_hh2.T @ h_in.reshape(T * B, H),
        "db_ih": None if cache["b_ih"] is None else dg_ih2.sum(axis=0),
        "db_hh": None if cache["b_hh"] is None else dg_hh2.sum(axis=0),
    }


# vanilla RNN
