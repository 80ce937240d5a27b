"""Argument checks for the public entry points.

Every check runs before any kernel, so bad input gets a ``TypeError``/``ValueError``
naming the argument, what it got and what was expected, never a Numba typing error.
"""
import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _describe(a):
    return f"shape {tuple(a.shape)} and dtype {a.dtype}"


def floats(name, value, dtype=None, owner="x"):
    """``value`` as a float32/float64 ndarray of any rank (no copy when it already is one).

    ``dtype``, when given, is the dtype the caller needs: that of ``owner``, named in
    the error. Never casts: other dtypes raise ``TypeError``.
    """
    if value is None:
        raise TypeError(f"{name} must be an array, got None")
    try:
        array = np.asarray(value)
    except Exception as exc:  # e.g. a ragged list
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}: {exc}") from None
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got dtype {array.dtype}"
                        " (fastrnn never casts silently: convert it with .astype(...))")
    if dtype is not None and array.dtype != dtype:
        raise TypeError(f"{name} has dtype {array.dtype} but {owner} has dtype {dtype}; "
                        "all floating-point arguments must share one dtype")
    return array


def float_array(name, value, ndim, dtype=None, owner="x"):
    """``value`` as a C-contiguous float32/float64 array of rank ``ndim``.

    ``dtype``, when given, is the dtype every array of the call must share (that of
    ``owner``, named in the error). Copies only when the input is not already a
    C-contiguous array of that dtype.
    """
    array = floats(name, value, dtype, owner)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got {_describe(array)}")
    return np.ascontiguousarray(array)


def expect_shape(name, array, shape, meaning):
    """Raise unless ``array.shape == shape``; ``meaning`` spells the symbols, e.g. '(B, H)'."""
    if tuple(array.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {meaning} = {tuple(shape)}, got shape {tuple(array.shape)}")


def lengths_array(lengths, batch, steps):
    """``lengths`` as int64 (B,) with every value in 1..T; None means all T."""
    if lengths is None:
        return np.full(batch, steps, np.int64)
    array = np.asarray(lengths)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"lengths must hold integers, got dtype {array.dtype}")
    if array.ndim != 1 or array.shape[0] != batch:
        raise ValueError(f"lengths must have shape (B,) = ({batch},), got shape {tuple(array.shape)}")
    low, high = int(array.min()), int(array.max())
    if low < 1 or high > steps:
        raise ValueError(f"lengths must lie in 1..T = 1..{steps}, got values from {low} to {high}")
    return np.ascontiguousarray(array, dtype=np.int64)


def sequence_input(x):
    """Validate the time-major input x (T, B, I); returns it contiguous."""
    x = float_array("x", x, 3)
    steps, batch, n_in = x.shape
    if steps == 0:
        raise ValueError(f"x must have at least one time step, got {_describe(x)} with T = 0")
    if batch == 0:
        raise ValueError(f"x must have a batch of at least one sequence, got {_describe(x)} with B = 0")
    if n_in == 0:
        raise ValueError(f"x must have at least one feature, got {_describe(x)} with I = 0")
    return x


def weights(w_ih, w_hh, b_ih, b_hh, gates, n_in, dtype, w_hr=None):
    """Validate PyTorch-layout weights for a cell with ``gates`` gates.

    With a projection ``w_hr`` (P, H) (LSTM ``proj_size``) the recurrent weights are
    (G*H, P); otherwise (G*H, H). Returns (w_ih, w_hh, b_ih, b_hh, w_hr, hidden);
    missing biases and projection come back as None.
    """
    if w_hr is not None:
        w_hr = float_array("w_hr", w_hr, 2, dtype)
        if w_hr.shape[0] == 0 or w_hr.shape[1] == 0:
            raise ValueError(f"w_hr must have shape (P, H) with P, H >= 1, got shape {tuple(w_hr.shape)}")
    w_hh = float_array("w_hh", w_hh, 2, dtype)
    if w_hr is None:
        hidden = w_hh.shape[1]
        if hidden == 0 or w_hh.shape[0] != gates * hidden:
            raise ValueError(f"w_hh must have shape (G*H, H) with G = {gates} gates and H >= 1, "
                             f"got shape {tuple(w_hh.shape)}")
    else:
        hidden = w_hr.shape[1]
        expect_shape("w_hh", w_hh, (gates * hidden, w_hr.shape[0]), "(G*H, P) with w_hr (P, H)")
    w_ih = float_array("w_ih", w_ih, 2, dtype)
    expect_shape("w_ih", w_ih, (gates * hidden, n_in), "(G*H, I)")
    biases = []
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None:
            b = float_array(name, b, 1, dtype)
            expect_shape(name, b, (gates * hidden,), "(G*H,)")
        biases.append(b)
    return w_ih, w_hh, biases[0], biases[1], w_hr, hidden


def state(name, value, batch, hidden, dtype, meaning="(B, H)"):
    """An initial state or state gradient (B, width); None means zeros."""
    if value is None:
        return np.zeros((batch, hidden), dtype)
    value = float_array(name, value, 2, dtype)
    expect_shape(name, value, (batch, hidden), meaning)
    return value


def positive_int(name, value, minimum=1):
    """An int (numpy ints accepted, bools refused) of at least ``minimum``, as int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def float_dtype(dtype, name="dtype"):
    """``dtype`` resolved by np.dtype, which must be float32 or float64."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be np.float32 or np.float64, got {dtype!r}") from None
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be np.float32 or np.float64, got {resolved}")
    return resolved


def seed(value, generator_ok=True):
    """A random seed: None, a non-negative int (returned as int) or, when
    ``generator_ok``, a np.random.Generator (returned as is)."""
    if value is None or (generator_ok and isinstance(value, np.random.Generator)):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        expected = "None, a non-negative int or a np.random.Generator" if generator_ok else "None or a non-negative int"
        raise TypeError(f"seed must be {expected}, got {value!r}")
    return int(value)


def probability(name, value):
    """A dropout or zoneout probability in [0, 1) as a float; bools and non-numbers refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [0, 1), got {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def flag(name, value):
    """A boolean option (numpy bools accepted)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def choice(name, value, options):
    """One of a few string options."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value


def positive_bound(name, value):
    """None, or a positive finite number as a float (a clipping bound); bools refused."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be None or a positive finite number, got {value!r}")
    return float(value)
