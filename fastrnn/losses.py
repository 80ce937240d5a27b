"""Loss functions that return the loss **and** its gradient: ``loss, grad = f(input, target)``.

``grad`` is dL/d(input): same shape and dtype as the input (predictions or logits),
ready for ``model.backward(grad)``. Values and gradients match torch's functional
losses with the same reduction:

- regression: :func:`mse` (``F.mse_loss``), :func:`mae` (``F.l1_loss``),
  :func:`huber` (``F.huber_loss``);
- classification from logits: :func:`cross_entropy` (``F.cross_entropy`` with class
  indices, ``ignore_index``, ``label_smoothing``) and
  :func:`binary_cross_entropy_with_logits` (``pos_weight``).

**Reductions.** ``"mean"`` (default) averages over the *counted* elements, ``"sum"``
adds them, and both return a NumPy scalar of the input's dtype; ``"none"`` returns
the per-element losses (zero where not counted) and, as ``grad``, the derivative of
their sum. When no element is counted (everything masked or ignored) the mean is
0 with a zero gradient (torch returns NaN there).

**Masks** (every loss takes ``mask=None``): a boolean (or 0/1) array marking the
elements that count. For :func:`cross_entropy` it has the targets' shape, e.g.
(T, B) for padded sequences of logits (T, B, C) — see
:func:`fastrnn.data.lengths_to_mask`. For the element-wise losses it has the
input's shape or a prefix of it ((T, B) for predictions (T, B, F) masks whole
time steps; the mean then divides by ``mask.sum() * F``). Masked-out targets are
not validated, so padding may hold any value.

Numerics: log-sum-exp with the maximum subtracted, ``softplus(x) = max(x, 0) +
log1p(exp(-|x|))`` and a sigmoid that never overflows, so huge logits neither
overflow nor warn. dtypes are never changed: float32 in, float32 out; targets of the
regression and binary losses must have the input's dtype.
"""
import numpy as np

from . import _validate as check

__all__ = ["mse", "mae", "huber", "cross_entropy", "binary_cross_entropy_with_logits"]

_REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------- checks

def _float_input(name, value):
    return check.floats(name, value)


def _float_target(name, value, like, owner):
    array = _float_input(name, value)
    if array.dtype != like.dtype:
        raise TypeError(f"{name} has dtype {array.dtype} but {owner} has dtype {like.dtype}: "
                        f"convert it with .astype(np.{like.dtype})")
    if array.shape != like.shape:
        raise ValueError(f"{name} must have the shape of {owner} {like.shape}, got shape {array.shape}")
    return array


def _reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _bool_mask(mask, shape, what):
    """``mask`` as a bool array whose shape is ``shape`` or a prefix of it; None stays None."""
    if mask is None:
        return None
    try:
        array = np.asarray(mask)
    except Exception as exc:
        raise TypeError(f"mask must be array-like, got {type(mask).__name__}: {exc}") from None
    if array.dtype != np.bool_:
        if array.dtype.kind not in "iuf":
            raise TypeError(f"mask must be boolean (or 0/1 numbers), got dtype {array.dtype}")
        if not np.all((array == 0) | (array == 1)):
            raise ValueError("mask must hold only 0/1 (or True/False) values")
        array = array != 0
    if array.shape != tuple(shape[:array.ndim]) or array.ndim > len(shape):
        raise ValueError(f"mask must have {what} shape {tuple(shape)} (or a prefix of it), got shape {array.shape}")
    return array


def _expand(mask, ndim):
    """A prefix-shaped mask with trailing unit axes, to broadcast against an ndim-array."""
    return mask.reshape(mask.shape + (1,) * (ndim - mask.ndim))


def _finish(elementwise, derivative, mask, reduction, dtype):
    """Apply mask and reduction to per-element losses and their derivatives."""
    if mask is not None:
        m = _expand(mask, elementwise.ndim)
        elementwise = np.where(m, elementwise, 0).astype(dtype, copy=False)
        derivative = np.where(m, derivative, 0).astype(dtype, copy=False)
        count = int(mask.sum()) * (elementwise.size // max(mask.size, 1))
    else:
        count = elementwise.size
    if reduction == "none":
        return elementwise, derivative
    total = elementwise.sum(dtype=dtype)
    if reduction == "sum":
        return dtype.type(total), derivative
    if count == 0:
        return dtype.type(0), np.zeros_like(derivative)
    derivative = derivative / dtype.type(count)
    return dtype.type(total / dtype.type(count)), derivative.astype(dtype, copy=False)


# --------------------------------------------------------------------------- regression

def mse(pred, target, reduction="mean", mask=None):
    """Mean squared error ``(pred - target)**2`` (``torch.nn.functional.mse_loss``).

    pred, target: same shape and float dtype. Returns ``(loss, dL/dpred)``."""
    pred = _float_input("pred", pred)
    target = _float_target("target", target, pred, "pred")
    reduction = _reduction(reduction)
    mask = _bool_mask(mask, pred.shape, "pred's")
    diff = pred - target
    return _finish(diff * diff, 2 * diff, mask, reduction, pred.dtype)


def mae(pred, target, reduction="mean", mask=None):
    """Mean absolute error ``|pred - target|`` (``torch.nn.functional.l1_loss``).

    The gradient is ``sign(pred - target)`` (0 where they are equal, as torch)."""
    pred = _float_input("pred", pred)
    target = _float_target("target", target, pred, "pred")
    reduction = _reduction(reduction)
    mask = _bool_mask(mask, pred.shape, "pred's")
    diff = pred - target
    return _finish(np.abs(diff), np.sign(diff), mask, reduction, pred.dtype)


def huber(pred, target, delta=1.0, reduction="mean", mask=None):
    """Huber loss (``torch.nn.functional.huber_loss``): with ``d = pred - target``,
    ``0.5 d**2`` where ``|d| <= delta``, else ``delta (|d| - 0.5 delta)``; ``delta > 0``."""
    pred = _float_input("pred", pred)
    target = _float_target("target", target, pred, "pred")
    reduction = _reduction(reduction)
    mask = _bool_mask(mask, pred.shape, "pred's")
    if isinstance(delta, (bool, np.bool_)) or not isinstance(delta, (int, float, np.integer, np.floating)):
        raise TypeError(f"delta must be a positive number, got {type(delta).__name__}")
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta}")
    delta = pred.dtype.type(delta)
    diff = pred - target
    absdiff = np.abs(diff)
    small = absdiff <= delta
    loss = np.where(small, 0.5 * diff * diff, delta * (absdiff - 0.5 * delta)).astype(pred.dtype, copy=False)
    grad = np.where(small, diff, delta * np.sign(diff)).astype(pred.dtype, copy=False)
    return _finish(loss, grad, mask, reduction, pred.dtype)


# --------------------------------------------------------------------------- classification

def _log_softmax(logits):
    """(log_softmax, softmax) over the last axis, stable for any finite logits."""
    with np.errstate(over="ignore", invalid="ignore"):
        shifted = logits - logits.max(axis=-1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=-1, keepdims=True)
        logp = shifted - np.log(total)
        prob = exp / total
    return logp, prob


def cross_entropy(logits, targets, ignore_index=-100, mask=None, label_smoothing=0.0, reduction="mean"):
    """Softmax cross-entropy from logits and integer class indices (``F.cross_entropy``).

    logits: (..., C) float — (N, C), time-major (T, B, C) or batch-first (B, T, C);
    **classes on the last axis** (torch puts them on axis 1). targets: integers of
    shape ``logits.shape[:-1]`` in ``[0, C)``. An element counts unless its target
    equals ``ignore_index`` or ``mask`` (same shape as targets) is False there;
    ``"mean"`` divides by the number of counted elements. ``label_smoothing`` ε in
    [0, 1] mixes the one-hot target with the uniform distribution as torch does::

        loss = -(1 - ε) log p[target] - ε/C sum_c log p[c]
        grad = softmax(logits) - (1 - ε) onehot(target) - ε/C         (per counted element)

    Returns ``(loss, dL/dlogits)``; ``"none"`` gives losses of the targets' shape.
    """
    logits = _float_input("logits", logits)
    reduction = _reduction(reduction)
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (..., C) with C >= 1 classes, got shape {logits.shape}")
    classes = logits.shape[-1]
    if targets is None:
        raise TypeError("targets must be an array of class indices, got None")
    targets = np.asarray(targets)
    if targets.dtype == np.bool_ or not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"targets must hold integer class indices, got dtype {targets.dtype}"
                        " (class probabilities are not supported)")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets must have shape logits.shape[:-1] = {logits.shape[:-1]} "
                         f"(logits {logits.shape}, classes on the last axis), got shape {targets.shape}")
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__}")
    if isinstance(label_smoothing, (bool, np.bool_)) or not isinstance(
            label_smoothing, (int, float, np.integer, np.floating)):
        raise TypeError(f"label_smoothing must be a number in [0, 1], got {type(label_smoothing).__name__}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing}")
    mask = _bool_mask(mask, targets.shape, "the targets'")
    if mask is not None and mask.shape != targets.shape:
        raise ValueError(f"mask must have the targets' shape {targets.shape}, got shape {mask.shape}")
    counted = targets != ignore_index
    if mask is not None:
        counted &= mask
    checked = targets[counted]
    if checked.size and (checked.min() < 0 or checked.max() >= classes):
        bad = checked[(checked < 0) | (checked >= classes)]
        raise ValueError(f"targets must lie in [0, C) = [0, {classes}) (or equal ignore_index={ignore_index}), "
                         f"got {bad.size} value(s) outside, e.g. {int(bad[0])}")
    dtype = logits.dtype
    eps = dtype.type(label_smoothing)
    logp, prob = _log_softmax(logits)
    safe = np.where(counted, targets, 0).astype(np.intp)
    picked = np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    loss = -picked
    if label_smoothing:
        loss = (1 - eps) * loss - (eps / dtype.type(classes)) * logp.sum(axis=-1)
    loss = np.where(counted, loss, 0).astype(dtype, copy=False)
    grad = prob
    if label_smoothing:
        grad = grad - eps / dtype.type(classes)
    np.put_along_axis(grad, safe[..., None],
                      np.take_along_axis(grad, safe[..., None], axis=-1) - (1 - eps), axis=-1)
    grad = np.where(counted[..., None], grad, 0).astype(dtype, copy=False)
    if reduction == "none":
        return loss, grad
    total = loss.sum(dtype=dtype)
    if reduction == "sum":
        return dtype.type(total), grad
    count = int(counted.sum())
    if count == 0:
        return dtype.type(0), np.zeros_like(grad)
    grad /= dtype.type(count)
    return dtype.type(total / dtype.type(count)), grad


def _softplus(x):
    """log(1 + exp(x)) without overflow."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x):
    """1 / (1 + exp(-x)) without overflow."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def binary_cross_entropy_with_logits(logits, targets, mask=None, pos_weight=None, reduction="mean"):
    """Sigmoid + binary cross-entropy in one stable step (``F.binary_cross_entropy_with_logits``).

    logits: any shape, float; targets: same shape and dtype, values in [0, 1] (soft
    labels allowed). ``pos_weight`` (broadcastable to logits, usually one value per
    class on the last axis, >= 0) weights the positive term, as torch::

        loss = -[pos_weight * y * log σ(x) + (1 - y) * log(1 - σ(x))]
             = (1 - y) x + (1 + (pos_weight - 1) y) softplus(-x)
        grad = (1 - y) - (1 + (pos_weight - 1) y) σ(-x)

    ``mask``: the logits' shape or a prefix of it. Returns ``(loss, dL/dlogits)``.
    """
    logits = _float_input("logits", logits)
    targets = _float_target("targets", targets, logits, "logits")
    reduction = _reduction(reduction)
    mask = _bool_mask(mask, logits.shape, "the logits'")
    dtype = logits.dtype
    if mask is None:
        check = targets
    else:
        check = targets[np.broadcast_to(_expand(mask, logits.ndim), logits.shape)]
    if check.size and not (np.all(check >= 0) and np.all(check <= 1)):
        raise ValueError(f"targets must lie in [0, 1], got values from {check.min()} to {check.max()}")
    one = dtype.type(1)
    if pos_weight is None:
        log_weight = one
    else:
        pw = _float_input("pos_weight", pos_weight)
        if pw.dtype != dtype:
            raise TypeError(f"pos_weight has dtype {pw.dtype} but logits has dtype {dtype}")
        try:
            np.broadcast_shapes(pw.shape, logits.shape)
        except ValueError:
            raise ValueError(f"pos_weight of shape {pw.shape} does not broadcast to the logits' shape "
                             f"{logits.shape}") from None
        if np.any(pw < 0):
            raise ValueError("pos_weight must be non-negative")
        log_weight = one + (pw - one) * targets
    loss = (one - targets) * logits + log_weight * _softplus(-logits)
    grad = (one - targets) - log_weight * _sigmoid(-logits)
    loss = np.broadcast_to(loss, logits.shape).astype(dtype, copy=True)
    grad = np.broadcast_to(grad, logits.shape).astype(dtype, copy=True)
    return _finish(loss, grad, mask, reduction, dtype)
