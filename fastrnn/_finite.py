"""Finding the first NaN or Inf in a tensor, for ``check_finite=True``.

The functional API (:mod:`fastrnn.functional`) lets NaN and Inf propagate as IEEE
754 says. With ``check_finite=True`` a forward or backward scans its inputs and
results with :func:`require_finite` and raises :class:`NonFiniteError` naming the
first offending tensor, and for time-major tensors ``(T, B, ...)`` the first time
step and the sequence (batch index) where a NaN or Inf appears.

A scan costs one reduction over the array (a finite sum proves every element
finite); only when that sum is not finite is the array searched element by element
(a sum can overflow while every element is finite, so that case is searched too).
Every element is checked, padded time steps included: a NaN in padded input still
reaches the weight gradients (0 * NaN is NaN).
"""
import numpy as np

__all__ = ["NonFiniteError", "first_nonfinite", "require_finite"]


class NonFiniteError(FloatingPointError):
    """A NaN or Inf found by ``check_finite=True``.

    Attributes: ``tensor`` (the argument or result's name), ``step`` and
    ``sequence`` (time step and batch index, or None for a tensor without a time
    axis), ``index`` (the full index of the first offending element), ``shape`` (the
    tensor's) and ``value``.
    """

    def __init__(self, message, tensor, index, value, step=None, sequence=None, shape=None):
        super().__init__(message)
        self.tensor, self.index, self.value = tensor, index, value
        self.step, self.sequence, self.shape = step, sequence, shape


def _all_finite(array):
    # NaN and Inf survive any sum (Inf + -Inf is NaN), so a finite sum proves every
    # element finite; an overflowing sum of finite values only costs the full search.
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.sum(array)))


def first_nonfinite(array, has_time_axis=True):
    """Where the first NaN/Inf of ``array`` is, or None when every element is finite.

    With ``has_time_axis`` (a time-major ``(T, B, ...)`` array) returns ``(t, b)``:
    the earliest time step holding one, and the first sequence at that step.
    Otherwise returns the index tuple of the first such element in C order.
    """
    array = np.asarray(array)
    if array.size == 0 or not np.issubdtype(array.dtype, np.inexact) or _all_finite(array):
        return None
    bad = ~np.isfinite(array)
    if has_time_axis and array.ndim >= 2:
        per_step = bad.reshape(array.shape[0], array.shape[1], -1).any(axis=2)
        steps = np.flatnonzero(per_step.any(axis=1))
        if steps.size == 0:
            return None
        t = int(steps[0])
        return t, int(np.flatnonzero(per_step[t])[0])
    flat = np.flatnonzero(bad.ravel())
    if flat.size == 0:
        return None
    return tuple(int(i) for i in np.unravel_index(int(flat[0]), array.shape))


def _describe_value(value):
    if np.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def require_finite(name, array, has_time_axis, where=""):
    """Raise :class:`NonFiniteError` naming ``name`` unless every element of ``array`` is finite.

    ``has_time_axis``: ``array`` is time-major ``(T, B, ...)``; the message then names
    the first time step and the sequence. ``where`` (e.g. "in the input of lstm")
    is appended to the tensor's name in the message. None passes.
    """
    if array is None:
        return
    found = first_nonfinite(array, has_time_axis)
    if found is None:
        return
    array = np.asarray(array)
    label = f"{name} {where}".rstrip() if where else name
    if has_time_axis and array.ndim >= 2:
        t, b = found
        row = array[t, b].ravel()
        j = int(np.flatnonzero(~np.isfinite(row))[0])
        index = (t, b) + tuple(int(i) for i in np.unravel_index(j, array.shape[2:]))
        value = row[j]
        message = (f"check_finite: {label} has {_describe_value(value)} at time step {t} "
                   f"(sequence {b}; first non-finite element at index {index} of shape {tuple(array.shape)})")
        raise NonFiniteError(message, name, index, value, step=t, sequence=b, shape=tuple(array.shape))
    value = array[found]
    message = (f"check_finite: {label} has {_describe_value(value)} "
               f"(first non-finite element at index {found} of shape {tuple(array.shape)})")
    raise NonFiniteError(message, name, found, value, shape=tuple(array.shape))
