"""Losses: values and gradients against torch (float64), masks, stability, bad input."""
import warnings

import numpy as np
import pytest

from fastrnn import losses
from fastrnn.data import lengths_to_mask

RTOL = 1e-10


def torch_value_and_grad(fn, x, *args, **kwargs):
    """torch's loss value and d(loss)/dx; for reduction='none' the gradient of the sum."""
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x, requires_grad=True)
    out = fn(tx, *args, **kwargs)
    out.sum().backward()
    return out.detach().numpy(), tx.grad.numpy()


def rng(seed=0):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- regression

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["mse", "mae", "huber", "huber_small_delta"])
def test_regression_losses_match_torch(name, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    pred, target = rng().standard_normal((2, 5, 3, 4))
    target[0, 0, 0] = pred[0, 0, 0]  # a zero difference (sign 0)
    if name == "mse":
        loss, grad = losses.mse(pred, target, reduction=reduction)
        ref, ref_grad = torch_value_and_grad(F.mse_loss, pred, torch.tensor(target), reduction=reduction)
    elif name == "mae":
        loss, grad = losses.mae(pred, target, reduction=reduction)
        ref, ref_grad = torch_value_and_grad(F.l1_loss, pred, torch.tensor(target), reduction=reduction)
    else:
        delta = 1.0 if name == "huber" else 0.3
        loss, grad = losses.huber(pred, target, delta=delta, reduction=reduction)
        ref, ref_grad = torch_value_and_grad(F.huber_loss, pred, torch.tensor(target), reduction=reduction,
                                             delta=delta)
    assert grad.shape == pred.shape and grad.dtype == pred.dtype
    assert np.shape(loss) == np.shape(ref)
    np.testing.assert_allclose(loss, ref, rtol=RTOL, atol=1e-15)
    np.testing.assert_allclose(grad, ref_grad, rtol=RTOL, atol=1e-15)


def test_regression_mask_counts_only_masked_steps():
    pred, target = rng(1).standard_normal((2, 6, 3, 2))
    lengths = np.array([6, 2, 4])
    mask = lengths_to_mask(lengths)  # (T, B) prefix of (T, B, F)
    loss, grad = losses.mse(pred, target, mask=mask)
    sel = mask[..., None].repeat(2, axis=-1)
    expected = np.mean((pred[sel] - target[sel]) ** 2)
    assert loss == pytest.approx(expected, rel=1e-12)
    assert np.all(grad[~sel] == 0)
    np.testing.assert_allclose(grad[sel], 2 * (pred[sel] - target[sel]) / sel.sum(), rtol=1e-12)
    # padding values do not matter
    target2 = target.copy()
    target2[~sel] = 1e9
    assert losses.mse(pred, target2, mask=mask)[0] == loss


def test_float32_stays_float32():
    pred, target = rng(2).standard_normal((2, 4, 3)).astype(np.float32)
    for fn in (losses.mse, losses.mae, losses.huber):
        loss, grad = fn(pred, target)
        assert loss.dtype == np.float32 and grad.dtype == np.float32
    logits = pred
    loss, grad = losses.cross_entropy(logits, np.zeros((4,), np.int64))
    assert loss.dtype == np.float32 and grad.dtype == np.float32
    loss, grad = losses.binary_cross_entropy_with_logits(logits, (target > 0).astype(np.float32))
    assert loss.dtype == np.float32 and grad.dtype == np.float32


# --------------------------------------------------------------------------- cross-entropy

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
@pytest.mark.parametrize("layout", ["NC", "TBC"])
def test_cross_entropy_matches_torch(layout, smoothing, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    r = rng(3)
    shape = (11, 7) if layout == "NC" else (5, 3, 7)
    logits = 3 * r.standard_normal(shape)
    targets = r.integers(0, 7, shape[:-1])
    targets.flat[[1, 4]] = -100  # ignored
    loss, grad = losses.cross_entropy(logits, targets, label_smoothing=smoothing, reduction=reduction)

    def ref_fn(x):  # torch wants classes on axis 1: flatten the leading axes
        return F.cross_entropy(x.reshape(-1, 7), torch.tensor(targets.reshape(-1)), label_smoothing=smoothing,
                               reduction=reduction)
    ref, ref_grad = torch_value_and_grad(ref_fn, logits)
    if reduction == "none":
        ref = ref.reshape(targets.shape)
    assert grad.shape == logits.shape
    np.testing.assert_allclose(loss, ref, rtol=RTOL, atol=1e-15)
    np.testing.assert_allclose(grad, ref_grad, rtol=RTOL, atol=1e-15)


def test_cross_entropy_mask_equals_ignore_index_and_batch_first():
    r = rng(4)
    T, B, C = 6, 4, 5
    logits = r.standard_normal((T, B, C))
    targets = r.integers(0, C, (T, B))
    lengths = np.array([6, 1, 3, 5])
    mask = lengths_to_mask(lengths)
    padded = np.where(mask, targets, 99)  # out-of-range padding is never checked when masked
    loss, grad = losses.cross_entropy(logits, padded, mask=mask)
    ref, ref_grad = losses.cross_entropy(logits, np.where(mask, targets, -100))
    assert loss == ref
    np.testing.assert_array_equal(grad, ref_grad)
    assert np.all(grad[~mask] == 0)
    # "mean" over the counted elements
    per_step, _ = losses.cross_entropy(logits, padded, mask=mask, reduction="none")
    assert loss == pytest.approx(per_step[mask].mean(), rel=1e-12)
    assert np.all(per_step[~mask] == 0)
    # batch-first: same numbers transposed
    bf_mask = lengths_to_mask(lengths, batch_first=True)
    lbf, gbf = losses.cross_entropy(logits.transpose(1, 0, 2), padded.T, mask=bf_mask)
    assert lbf == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(gbf, grad.transpose(1, 0, 2), rtol=1e-12)
    # nothing counted: zero loss and gradient, no NaN
    loss0, grad0 = losses.cross_entropy(logits, np.full((T, B), -100))
    assert loss0 == 0 and not np.any(grad0)


def test_cross_entropy_gradient_finite_differences():
    r = rng(5)
    logits = r.standard_normal((4, 6))
    targets = np.array([0, 5, 2, 2])
    _, grad = losses.cross_entropy(logits, targets, label_smoothing=0.2)
    h = 1e-6
    num = np.zeros_like(logits)
    for idx in np.ndindex(logits.shape):
        e = np.zeros_like(logits)
        e[idx] = h
        num[idx] = (losses.cross_entropy(logits + e, targets, label_smoothing=0.2)[0]
                    - losses.cross_entropy(logits - e, targets, label_smoothing=0.2)[0]) / (2 * h)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_are_stable(dtype):
    big = np.finfo(dtype).max / 4
    logits = np.array([[big, 0.0, -big], [0.0, 1.0, 2.0], [-big, -big, -big]], dtype)
    targets = np.array([0, 2, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, grad = losses.cross_entropy(logits, targets)
        assert np.isfinite(loss) and np.all(np.isfinite(grad))
        expected_middle = np.log(np.exp([0.0, 1.0, 2.0]).sum()) - 2.0
        assert loss == pytest.approx((0.0 + expected_middle + np.log(3)) / 3, rel=1e-5)
        x = np.array([big, -big, 1e4, -1e4, 0.0], dtype)
        y = np.array([1.0, 0.0, 0.0, 1.0, 1.0], dtype)
        bl, bg = losses.binary_cross_entropy_with_logits(x, y, reduction="none")
        assert np.all(np.isfinite(bg)) and bl[0] == 0 and bl[1] == 0
        assert bl[2] == pytest.approx(1e4, rel=1e-6) and bl[3] == pytest.approx(1e4, rel=1e-6)
        np.testing.assert_allclose(bg, [0, 0, 1, -1, -0.5], atol=1e-6)


# --------------------------------------------------------------------------- binary cross-entropy

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("pos_weight", [None, "vector"])
def test_bce_with_logits_matches_torch(pos_weight, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    r = rng(6)
    logits = 4 * r.standard_normal((3, 5, 4))
    targets = r.random((3, 5, 4))
    targets[0] = targets[0] > 0.5  # hard and soft labels
    pw = None if pos_weight is None else r.random(4) * 3
    loss, grad = losses.binary_cross_entropy_with_logits(logits, targets, pos_weight=pw, reduction=reduction)
    ref, ref_grad = torch_value_and_grad(F.binary_cross_entropy_with_logits, logits, torch.tensor(targets),
                                         pos_weight=None if pw is None else torch.tensor(pw), reduction=reduction)
    np.testing.assert_allclose(loss, ref, rtol=RTOL, atol=1e-15)
    np.testing.assert_allclose(grad, ref_grad, rtol=RTOL, atol=1e-15)


def test_bce_mask():
    r = rng(7)
    logits = r.standard_normal((5, 3, 2))
    targets = (r.random((5, 3, 2)) > 0.5).astype(float)
    mask = lengths_to_mask(np.array([5, 2, 3]))
    loss, grad = losses.binary_cross_entropy_with_logits(logits, targets, mask=mask)
    full, _ = losses.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    assert loss == pytest.approx(full[mask].mean(), rel=1e-12)
    assert np.all(grad[~mask] == 0)


# --------------------------------------------------------------------------- bad input

def test_bad_input_errors():
    x = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"shape of pred \(4, 3\)"):
        losses.mse(x, np.zeros((3, 4)))
    with pytest.raises(TypeError, match="dtype float32 but pred has dtype float64"):
        losses.mae(x, np.zeros((4, 3), np.float32))
    with pytest.raises(TypeError, match="pred must have dtype float32 or float64"):
        losses.mse(np.zeros((4, 3), int), np.zeros((4, 3), int))
    with pytest.raises(ValueError, match="reduction"):
        losses.mse(x, x, reduction="avg")
    with pytest.raises(ValueError, match="delta"):
        losses.huber(x, x, delta=0)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, C\) = \[0, 3\)"):
        losses.cross_entropy(x, np.array([0, 1, 3, 2]))
    with pytest.raises(ValueError, match=r"targets must lie"):
        losses.cross_entropy(x, np.array([0, -1, 2, 2]))
    with pytest.raises(TypeError, match="integer class indices"):
        losses.cross_entropy(x, np.array([0.0, 1, 2, 2]))
    with pytest.raises(ValueError, match=r"logits.shape\[:-1\] = \(4,\)"):
        losses.cross_entropy(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.cross_entropy(x, np.array([0, 1, 2, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="mask must have"):
        losses.cross_entropy(x, np.array([0, 1, 2, 2]), mask=np.ones(3, bool))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\]"):
        losses.binary_cross_entropy_with_logits(x, np.full((4, 3), 2.0))
    with pytest.raises(ValueError, match="0/1"):
        losses.mse(x, x, mask=np.full((4, 3), 0.5))
