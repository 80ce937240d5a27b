"""Linear, Embedding, Dropout: forward/backward vs NumPy formulas, finite
differences and (live, when it imports) PyTorch; bad input; dropout statistics."""
import numpy as np
import pytest

from fastrnn.nn import Dropout, Embedding, Linear, Sequential

from cases import finite_difference

DTYPES = [np.float32, np.float64]


def rng(seed=0):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- Linear

def test_linear_init_names_and_seed():
    lin = Linear(16, 5, seed=3)
    assert [(n, p.shape, p.dtype) for n, p in lin.named_parameters()] == [
        ("weight", (5, 16), np.float32), ("bias", (5,), np.float32)]
    bound = 1 / np.sqrt(16)
    assert np.abs(lin.weight.data).max() <= bound and np.abs(lin.bias.data).max() <= bound
    assert np.abs(lin.weight.data).max() > 0.8 * bound  # spread over the whole interval
    assert np.array_equal(Linear(16, 5, seed=3).weight.data, lin.weight.data)
    assert not np.array_equal(Linear(16, 5, seed=4).weight.data, lin.weight.data)
    assert Linear(4, 2, bias=False).bias is None
    assert Linear(4, 2, dtype=np.float64).weight.dtype == np.float64


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lead", [(), (3,), (2, 4)])
def test_linear_forward_backward_formulas(dtype, lead):
    r = rng(1)
    lin = Linear(5, 3, dtype=dtype, seed=0)
    x = r.standard_normal(lead + (5,)).astype(dtype)
    y = lin(x)
    assert y.dtype == dtype and y.shape == lead + (3,)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, x @ lin.weight.data.T + lin.bias.data, rtol=rtol, atol=rtol)
    dy = r.standard_normal(y.shape).astype(dtype)
    dx = lin.backward(dy)
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(dx, dy @ lin.weight.data, rtol=rtol, atol=rtol)
    x2, dy2 = x.reshape(-1, 5), dy.reshape(-1, 3)
    np.testing.assert_allclose(lin.weight.grad, dy2.T @ x2, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(lin.bias.grad, dy2.sum(0), rtol=rtol, atol=rtol)
    lin.backward(dy)  # gradients accumulate
    np.testing.assert_allclose(lin.bias.grad, 2 * dy2.sum(0), rtol=rtol, atol=rtol)


def test_linear_gradients_match_finite_differences():
    r = rng(2)
    lin = Linear(4, 3, dtype=np.float64, seed=1)
    x = r.standard_normal((2, 3, 4))
    weights = r.standard_normal((2, 3, 3))

    def loss():
        return float(np.sum(np.tanh(lin(x)) * weights))

    y = lin(x)
    dx = lin.backward(weights * (1 - np.tanh(y) ** 2))
    np.testing.assert_allclose(dx, finite_difference(loss, x), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(lin.weight.grad, finite_difference(loss, lin.weight.data), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(lin.bias.grad, finite_difference(loss, lin.bias.data), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(bias):
    torch = pytest.importorskip("torch")
    r = rng(3)
    lin = Linear(6, 4, bias=bias, dtype=np.float64, seed=2)
    t = torch.nn.Linear(6, 4, bias=bias).double()
    t.load_state_dict({k: torch.from_numpy(v) for k, v in lin.state_dict().items()})
    x = r.standard_normal((3, 2, 6))
    dy = r.standard_normal((3, 2, 4))
    xt = torch.from_numpy(x).requires_grad_()
    yt = t(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(lin(x), yt.detach().numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(lin.backward(dy), xt.grad.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(lin.weight.grad, t.weight.grad.numpy(), rtol=1e-10, atol=1e-13)
    if bias:
        np.testing.assert_allclose(lin.bias.grad, t.bias.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_linear_bad_input():
    lin = Linear(3, 2)
    with pytest.raises(TypeError, match="x has dtype float64 but Linear has dtype float32"):
        lin(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="x must have dtype float32 or float64, got dtype int64"):
        lin(np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., in_features\) = \(\.\.\., 3\), got shape \(2, 4\)"):
        lin(np.zeros((2, 4), np.float32))
    with pytest.raises(RuntimeError, match="training mode"):
        Linear(3, 2).backward(np.zeros((1, 2), np.float32))
    lin(np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match=r"dy must have the output's shape"):
        lin.backward(np.zeros((5, 3), np.float32))
    with pytest.raises(TypeError, match="dy has dtype float64"):
        lin.backward(np.zeros((5, 2)))
    lin.eval()
    lin(np.zeros((5, 3), np.float32))
    with pytest.raises(RuntimeError, match="training mode"):
        lin.backward(np.zeros((5, 2), np.float32))
    for kwargs, error, match in [
            ({"in_features": 0, "out_features": 2}, ValueError, "in_features"),
            ({"in_features": 2.0, "out_features": 2}, TypeError, "in_features"),
            ({"in_features": True, "out_features": 2}, TypeError, "in_features"),
            ({"in_features": 2, "out_features": -1}, ValueError, "out_features"),
            ({"in_features": 2, "out_features": 2, "dtype": np.int32}, TypeError, "dtype"),
            ({"in_features": 2, "out_features": 2, "bias": 1}, TypeError, "bias"),
            ({"in_features": 2, "out_features": 2, "seed": "x"}, TypeError, "seed")]:
        with pytest.raises(error, match=match):
            Linear(**kwargs)


def test_sequential_chains_forward_and_backward():
    r = rng(4)
    seq = Sequential(Linear(3, 5, dtype=np.float64, seed=0), Linear(5, 2, dtype=np.float64, seed=1))
    x = r.standard_normal((4, 3))
    y = seq(x)
    np.testing.assert_allclose(y, seq[1](seq[0](x)), rtol=1e-14)
    dy = r.standard_normal((4, 2))
    dx = seq.backward(dy)
    np.testing.assert_allclose(dx, dy @ seq[1].weight.data @ seq[0].weight.data, rtol=1e-12)


# --------------------------------------------------------------------------- Embedding

def test_embedding_init_and_padding():
    emb = Embedding(400, 50, padding_idx=-1, seed=0)
    assert emb.padding_idx == 399 and emb.weight.shape == (400, 50) and emb.weight.dtype == np.float32
    w = emb.weight.data
    assert np.all(w[399] == 0)
    assert abs(w[:399].mean()) < 0.02 and abs(w[:399].std() - 1) < 0.02  # N(0, 1)
    assert np.array_equal(Embedding(400, 50, padding_idx=-1, seed=0).weight.data, w)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (7,), (3, 4)])
def test_embedding_forward_backward_formulas(dtype, shape):
    r = rng(5)
    emb = Embedding(6, 3, padding_idx=2, dtype=dtype, seed=1)
    idx = r.integers(0, 6, size=shape)
    if idx.ndim:
        idx.flat[0] = 2  # the padding row is used
        idx.flat[-1] = idx.flat[1 % idx.size]  # repeated rows
    y = emb(idx)
    assert y.dtype == dtype and y.shape == shape + (3,)
    assert np.array_equal(y, emb.weight.data[idx])
    y[...] = 5  # a copy
    assert not np.any(emb.weight.data == 5)
    dy = r.standard_normal(shape + (3,)).astype(dtype)
    assert emb.backward(dy) is None
    expected = np.zeros((6, 3), dtype)
    for i in np.ndindex(shape):
        expected[idx[i]] += dy[i]
    expected[2] = 0
    np.testing.assert_allclose(emb.weight.grad, expected, rtol=1e-6 if dtype == np.float32 else 1e-14)
    assert np.all(emb.weight.grad[2] == 0)


def test_embedding_matches_torch():
    torch = pytest.importorskip("torch")
    r = rng(6)
    emb = Embedding(10, 4, padding_idx=3, dtype=np.float64, seed=2)
    t = torch.nn.Embedding(10, 4, padding_idx=3).double()
    t.load_state_dict({k: torch.from_numpy(v) for k, v in emb.state_dict().items()})
    idx = r.integers(0, 10, size=(5, 6))
    idx[0, :3] = 3
    dy = r.standard_normal((5, 6, 4))
    yt = t(torch.from_numpy(idx))
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(emb(idx), yt.detach().numpy(), rtol=1e-10, atol=0)
    emb.backward(dy)
    np.testing.assert_allclose(emb.weight.grad, t.weight.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_embedding_bad_input():
    emb = Embedding(5, 2)
    with pytest.raises(ValueError, match=r"\[0, 5\).*e\.g\. \[5, -1\]"):
        emb(np.array([0, 5, -1]))
    with pytest.raises(TypeError, match="indices must hold integers, got dtype float64"):
        emb(np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="dtype bool"):
        emb(np.array([True, False]))
    with pytest.raises(RuntimeError, match="training mode"):
        emb.backward(np.zeros((1, 2), np.float32))
    emb(np.array([[1, 2]]))
    with pytest.raises(ValueError, match=r"dy must have the output's shape .* = \(1, 2, 2\)"):
        emb.backward(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="padding_idx"):
        Embedding(5, 2, padding_idx=5)
    with pytest.raises(TypeError, match="padding_idx"):
        Embedding(5, 2, padding_idx=1.0)
    with pytest.raises(ValueError, match="embedding_dim"):
        Embedding(5, 0)
    assert emb(np.zeros((0, 3), np.int64)).shape == (0, 3, 2)


# --------------------------------------------------------------------------- Dropout

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.45, 0.8])
def test_dropout_keep_rate_scale_and_backward(dtype, p):
    n = 200_000
    drop = Dropout(p, seed=7)
    x = rng(7).standard_normal(n).astype(dtype) + 3  # never zero
    y = drop(x)
    assert y.dtype == dtype and y.shape == x.shape
    kept = y != 0
    # kept count ~ Binomial(n, 1-p): within 6 standard deviations
    assert abs(kept.sum() - n * (1 - p)) < 6 * np.sqrt(n * p * (1 - p))
    scale = dtype(1) / dtype(1 - p)
    assert np.array_equal(y[kept], x[kept] * scale)
    dy = rng(8).standard_normal(n).astype(dtype)
    dx = drop.backward(dy)
    assert dx.dtype == dtype
    assert np.array_equal(dx, np.where(kept, dy * scale, 0))


def test_dropout_matches_torch_formula():
    torch = pytest.importorskip("torch")
    for dtype, tdtype in [(np.float32, torch.float32), (np.float64, torch.float64)]:
        for p in [0.3, 0.45, 0.77]:
            drop = Dropout(p, seed=1)
            x = rng(9).standard_normal((40, 50)).astype(dtype) + 3
            y = drop(x)
            keep = torch.from_numpy(y != 0)
            # torch's CPU dropout: noise = bernoulli(1-p).div_(1-p); y = x * noise
            noise = keep.to(tdtype).div_(1 - p)
            xt = torch.from_numpy(x).requires_grad_()
            yt = xt * noise
            dy = rng(10).standard_normal(x.shape).astype(dtype)
            yt.backward(torch.from_numpy(dy))
            np.testing.assert_array_equal(y, yt.detach().numpy())
            np.testing.assert_array_equal(drop.backward(dy), xt.grad.numpy())
            # the formula is torch's own: its dropout output, given its mask, is the same
            yt2 = torch.nn.functional.dropout(torch.from_numpy(x), p, True)
            noise2 = (yt2 != 0).to(tdtype).div_(1 - p)
            assert torch.equal(yt2, torch.from_numpy(x) * noise2)
            assert float(noise2.max()) == float(noise.max()) == float(drop._mask.max())


def test_dropout_seed_reproducible_eval_identity():
    x = rng(11).standard_normal((64, 32)).astype(np.float32)
    a, b, c = Dropout(0.5, seed=42), Dropout(0.5, seed=42), Dropout(0.5, seed=43)
    a1, a2 = a(x), a(x)
    assert np.array_equal(a1, b(x)) and np.array_equal(a2, b(x))
    assert not np.array_equal(a1, a2) and not np.array_equal(a1, c(x))
    a.eval()
    assert a(x) is x
    dy = np.ones_like(x)
    with pytest.raises(RuntimeError, match="training mode"):
        a.backward(dy)
    zero = Dropout(0.0)
    assert zero(x) is x and zero.backward(dy) is dy


def test_dropout_bad_arguments():
    for p, error in [(1.0, ValueError), (-0.1, ValueError), ("0.5", TypeError), (True, TypeError)]:
        with pytest.raises(error, match="p must"):
            Dropout(p)
    drop = Dropout(0.5)
    with pytest.raises(TypeError, match="x must have dtype float32 or float64, got dtype int64"):
        drop(np.arange(4))
    drop(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"dy must have the forward input's shape \(4,\)"):
        drop.backward(np.zeros(5, np.float32))
    with pytest.raises(TypeError, match="dy has dtype float64"):
        drop.backward(np.zeros(4))
