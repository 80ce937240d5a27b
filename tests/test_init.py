"""fastrnn.init: array initializers (statistics, orthogonality, reproducibility, dtype),
gate-aware helpers, whole-layer schemes (forget-gate bias placement checked through the
LSTM kernel, IRNN through the ReLU RNN kernel), errors, and torch.nn.init agreement."""
import math

import numpy as np
import pytest

import fastrnn
from fastrnn import init

DTYPES = [np.float32, np.float64]


# --------------------------------------------------------------------------- array functions

@pytest.mark.parametrize("dtype", DTYPES)
def test_uniform_and_normal_statistics(dtype):
    a = np.empty((400, 500), dtype)
    assert init.uniform_(a, -2.0, 3.0, rng=0) is a
    assert a.dtype == dtype and a.min() >= -2.0 and a.max() <= 3.0
    assert abs(a.mean() - 0.5) < 0.02 and abs(a.std() - 5 / math.sqrt(12)) < 0.02
    assert init.normal_(a, 1.5, 0.5, rng=1) is a
    assert a.dtype == dtype and abs(a.mean() - 1.5) < 0.005 and abs(a.std() / 0.5 - 1) < 0.01


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_default_bound(dtype):
    h = 64
    a = init.torch_default_(np.empty((4 * h, 300), dtype), h, rng=0)
    bound = 1 / math.sqrt(h)
    assert a.dtype == dtype and np.abs(a).max() <= bound and np.abs(a).max() > 0.99 * bound
    assert abs(a.std() / (bound / math.sqrt(3)) - 1) < 0.02


@pytest.mark.parametrize("shape", [(300, 200), (512, 128), (64, 32, 3)])
def test_xavier_statistics(shape):
    fan_in, fan_out = init.calculate_fan_in_and_fan_out(np.empty(shape))
    gain = 1.7
    bound = gain * math.sqrt(6 / (fan_in + fan_out))
    a = init.xavier_uniform_(np.empty(shape, np.float32), gain=gain, rng=0)
    assert np.abs(a).max() <= bound * (1 + 1e-6) and np.abs(a).max() > 0.99 * bound
    assert abs(a.std() / (bound / math.sqrt(3)) - 1) < 0.02
    std = gain * math.sqrt(2 / (fan_in + fan_out))
    a = init.xavier_normal_(np.empty(shape, np.float64), gain=gain, rng=0)
    assert abs(a.mean()) < 0.02 * std and abs(a.std() / std - 1) < 0.02


def test_fan_computation():
    assert init.calculate_fan_in_and_fan_out(np.empty((12, 5))) == (5, 12)
    assert init.calculate_fan_in_and_fan_out(np.empty((12, 5, 3))) == (15, 36)
    with pytest.raises(ValueError, match="at least 2"):
        init.calculate_fan_in_and_fan_out(np.empty(7))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(32, 32), (48, 16), (16, 48), (8, 4, 3)])
def test_orthogonal(dtype, shape):
    gain = 2.0
    a = init.orthogonal_(np.empty(shape, dtype), gain=gain, rng=0)
    assert a.dtype == dtype
    w = a.reshape(shape[0], -1).astype(np.float64) / gain
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(gram, np.eye(len(gram)), atol=tol)


def test_orthogonal_sign_correction_makes_haar():
    # LAPACK's Householder QR makes R's diagonal negative, so without the sign fix Q[0, 0]
    # would always be <= 0; with it Q is Haar-distributed and Q[0, 0] has mean 0.
    rng = np.random.default_rng(0)
    firsts = [init.orthogonal_(np.empty((3, 3)), rng=rng)[0, 0] for _ in range(2000)]
    assert abs(np.mean(firsts)) < 0.05


def test_identity_zeros_constant():
    a = init.identity_(np.full((4, 6), 7.0, np.float32), scale=0.5)
    np.testing.assert_array_equal(a, 0.5 * np.eye(4, 6))
    assert a.dtype == np.float32
    assert init.zeros_(a) is a and not a.any()
    assert init.constant_(a, 3.0) is a and (a == 3.0).all()
    with pytest.raises(ValueError, match="2-D"):
        init.identity_(np.empty((2, 2, 2)))


@pytest.mark.parametrize("fn, args", [
    (init.uniform_, (-1.0, 1.0)), (init.normal_, (0.0, 1.0)), (init.torch_default_, (8,)),
    (init.xavier_uniform_, ()), (init.xavier_normal_, ()), (init.orthogonal_, ()),
])
def test_reproducible_with_seed(fn, args):
    a = fn(np.empty((24, 8)), *args, rng=123)
    b = fn(np.empty((24, 8)), *args, rng=np.random.default_rng(123))
    c = fn(np.empty((24, 8)), *args, rng=124)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_array_errors():
    with pytest.raises(TypeError, match="floating-point"):
        init.uniform_(np.zeros((3, 3), np.int64))
    with pytest.raises(TypeError, match="ndarray"):
        init.zeros_([[0.0, 1.0]])
    ro = np.zeros((3, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        init.normal_(ro)
    with pytest.raises(ValueError, match="at least 2"):
        init.orthogonal_(np.zeros(5))
    with pytest.raises(ValueError, match=">= 0"):
        init.normal_(np.zeros(3), std=-1.0)
    with pytest.raises(TypeError, match="rng"):
        init.uniform_(np.zeros(3), rng="seed")
    with pytest.raises(ValueError, match="hidden_size"):
        init.torch_default_(np.zeros(3), 0)


# --------------------------------------------------------------------------- gate-aware helpers

def test_orthogonal_per_gate_blocks():
    h = 16
    a = init.orthogonal_per_gate_(np.empty((4 * h, h), np.float32), h, rng=0)
    blocks = [a[g * h:(g + 1) * h].astype(np.float64) for g in range(4)]
    for blk in blocks:
        np.testing.assert_allclose(blk.T @ blk, np.eye(h), atol=1e-5)
    assert not np.allclose(blocks[0], blocks[1])  # distinct draws per block
    # The whole stacked matrix is NOT orthogonal as one (4H, H) matrix: W^T W = 4 I.
    np.testing.assert_allclose(a.T.astype(np.float64) @ a, 4 * np.eye(h), atol=1e-4)
    b = init.orthogonal_per_gate_(np.empty((4 * h, h), np.float32), h, rng=0)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="multiple"):
        init.orthogonal_per_gate_(np.empty((10, 4)), 4)


def test_identity_per_gate_and_gate_slice():
    a = init.identity_per_gate_(np.empty((9, 3)), 3, scale=2.0)
    np.testing.assert_array_equal(a, np.vstack([2 * np.eye(3)] * 3))
    assert init.gate_slice("lstm", "f", 5) == slice(5, 10)
    assert init.gate_slice("gru", "n", 5) == slice(10, 15)
    with pytest.raises(ValueError, match="gates"):
        init.gate_slice("gru", "f", 5)


# --------------------------------------------------------------------------- layer schemes

def _params(layer):
    return {name: p.data for name, p in layer.named_parameters()}


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_schemes_on_layers(cls, dtype):
    h, i = 8, 5
    layer = getattr(fastrnn, cls)(i, h, num_layers=2, bidirectional=True, dtype=dtype, seed=0)
    gates = layer._gates
    for scheme in ("xavier", "orthogonal"):
        assert init.initialize(layer, scheme, seed=1) is layer
        params = _params(layer)
        assert len(params) == 16
        for name, a in params.items():
            assert a.dtype == dtype
            if name.startswith("bias"):
                assert not a.any()
            elif name.startswith("weight_hh"):
                for g in range(gates):
                    blk = a[g * h:(g + 1) * h].astype(np.float64)
                    np.testing.assert_allclose(blk.T @ blk, np.eye(h), atol=1e-5)
            elif scheme == "xavier":  # weight_ih: Xavier-uniform, fan_in = in, fan_out = G*H
                bound = math.sqrt(6 / (a.shape[1] + a.shape[0]))
                assert np.abs(a).max() <= bound * (1 + 1e-6) and a.std() > 0.2 * bound
            else:  # weight_ih: Xavier-normal, not bounded
                assert 0.3 < a.std() / math.sqrt(2 / (a.shape[1] + a.shape[0])) < 2
    init.initialize(layer, "torch", seed=2)
    for a in _params(layer).values():
        assert np.abs(a).max() <= 1 / math.sqrt(h) and a.std() > 0.1 / math.sqrt(h)
    x = np.random.default_rng(0).standard_normal((4, 2, i)).astype(dtype)
    y = layer(x)[0]
    assert y.shape == (4, 2, 2 * h) and np.isfinite(y).all()


def test_initialize_reproducible_and_seed_sensitive():
    a = init.initialize(fastrnn.LSTM(4, 6, num_layers=2, seed=0), "orthogonal", seed=7)
    b = init.initialize(fastrnn.LSTM(4, 6, num_layers=2, seed=99), "orthogonal", seed=7)
    c = init.initialize(fastrnn.LSTM(4, 6, num_layers=2, seed=0), "orthogonal", seed=8)
    pa, pb, pc = _params(a), _params(b), _params(c)
    for name in pa:
        np.testing.assert_array_equal(pa[name], pb[name])
    assert not np.array_equal(pa["weight_hh_l1"], pc["weight_hh_l1"])


def test_lstm_projection_weights():
    lstm = fastrnn.LSTM(4, 8, proj_size=3, seed=0)
    init.initialize(lstm, "xavier", seed=0)
    p = _params(lstm)
    assert p["weight_hh_l0"].shape == (32, 3)
    for g in range(4):  # (H, P) blocks with orthonormal columns
        blk = p["weight_hh_l0"][g * 8:(g + 1) * 8].astype(np.float64)
        np.testing.assert_allclose(blk.T @ blk, np.eye(3), atol=1e-5)
    w = p["weight_hr_l0"].astype(np.float64)  # (P, H): orthonormal rows
    np.testing.assert_allclose(w @ w.T, np.eye(3), atol=1e-5)


@pytest.mark.parametrize("scheme", ["torch", "xavier"])
def test_forget_bias_placement_and_kernel(scheme):
    h, T = 5, 3
    lstm = fastrnn.LSTM(3, h, num_layers=2, dtype=np.float64, seed=0)
    before = _params(lstm)
    before = {k: v.copy() for k, v in before.items()}
    init.initialize(lstm, scheme, forget_bias=1.0, seed=0)
    p = _params(lstm)
    f = slice(h, 2 * h)
    for k in range(2):
        bih, bhh = p[f"bias_ih_l{k}"], p[f"bias_hh_l{k}"]
        np.testing.assert_array_equal(bih[f], 1.0)
        np.testing.assert_array_equal(bhh[f], 0.0)
        total = bih + bhh
        np.testing.assert_array_equal(total[f], 1.0)
        other = np.r_[0:h, 2 * h:4 * h]
        if scheme == "xavier":
            assert not total[other].any()
        else:
            assert np.abs(total[other]).max() <= 2 / math.sqrt(h) and total[other].std() > 0
    # Through the kernel: with all weights zero, i = 0.5, g = tanh(0) = 0, f = sigmoid(1),
    # so c_T = sigmoid(1)^T c0 in every layer iff the forget-gate block is the one set.
    # (the "torch" scheme leaves random i/g/o biases: zero them, keeping the f block as set)
    for name, a in p.items():
        if name.startswith("weight"):
            a[...] = 0
        else:
            a[np.r_[0:h, 2 * h:4 * h]] = 0
    c0 = np.random.default_rng(0).uniform(0.5, 1.0, (2, 2, h))
    x = np.random.default_rng(1).standard_normal((T, 2, 3))
    _, (_, c_n) = lstm(x, (np.zeros((2, 2, h)), c0))
    sig = 1 / (1 + math.exp(-1.0))
    np.testing.assert_allclose(c_n, sig ** T * c0, rtol=1e-12)


def test_irnn_on_relu_rnn():
    h, i, T = 6, 3, 4
    rnn = fastrnn.RNN(i, h, nonlinearity="relu", dtype=np.float64, seed=0)
    init.initialize(rnn, "irnn", seed=0)
    p = _params(rnn)
    np.testing.assert_array_equal(p["weight_hh_l0"], np.eye(h))
    assert not p["bias_ih_l0"].any() and not p["bias_hh_l0"].any()
    w = p["weight_ih_l0"]
    assert 0 < np.abs(w).max() < 10 * init.IRNN_INPUT_STD
    x = np.random.default_rng(0).standard_normal((T, 2, i))
    h0 = np.random.default_rng(1).uniform(0, 1, (1, 2, h))
    _, h_n = rnn(x, h0)
    ref = h0[0]
    for t in range(T):  # h_t = relu(W_ih x_t + I h_{t-1})
        ref = np.maximum(x[t] @ w.T + ref, 0)
    np.testing.assert_allclose(h_n[0], ref, rtol=1e-12)
    cell = fastrnn.RNNCell(i, h, nonlinearity="relu", seed=0)
    init.initialize(cell, "irnn")
    np.testing.assert_array_equal(cell.weight_hh.data, np.eye(h))


def test_cells_supported():
    cell = fastrnn.LSTMCell(4, 6, seed=0)
    init.initialize(cell, "orthogonal", forget_bias=1.0, seed=0)
    np.testing.assert_array_equal(cell.bias_ih.data[6:12], 1.0)
    w = cell.weight_hh.data.astype(np.float64)
    np.testing.assert_allclose(w[:6].T @ w[:6], np.eye(6), atol=1e-5)


def test_layer_errors():
    lstm = fastrnn.LSTM(3, 4)
    with pytest.raises(ValueError, match="unknown init scheme"):
        init.initialize(lstm, "he")
    with pytest.raises(ValueError, match="only to LSTM"):
        init.initialize(fastrnn.GRU(3, 4), forget_bias=1.0)
    with pytest.raises(ValueError, match="bias=True"):
        init.initialize(fastrnn.LSTM(3, 4, bias=False), forget_bias=1.0)
    with pytest.raises(ValueError, match="irnn"):
        init.initialize(fastrnn.RNN(3, 4), "irnn")  # tanh
    with pytest.raises(ValueError, match="irnn"):
        init.initialize(lstm, "irnn")
    with pytest.raises(TypeError, match="layer"):
        init.initialize(np.zeros((4, 4)), "torch")
    with pytest.raises(TypeError, match="forget_bias"):
        init.initialize(lstm, forget_bias="1")
    lstm.weight_hh_l0._data = np.zeros((16, 4), np.int32)  # simulate a corrupted parameter
    with pytest.raises(TypeError, match="weight_hh_l0.*floating"):
        init.initialize(lstm, "xavier")


# --------------------------------------------------------------------------- torch.nn.init agreement

def test_against_torch_nn_init():
    torch = pytest.importorskip("torch")
    for shape in [(12, 5), (400, 64), (6, 4, 3)]:
        assert init.calculate_fan_in_and_fan_out(np.empty(shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    shape, gain = (512, 256), 1.3
    bound = gain * math.sqrt(6 / sum(shape))
    t = torch.nn.init.xavier_uniform_(torch.empty(shape, dtype=torch.float64), gain=gain).numpy()
    ours = init.xavier_uniform_(np.empty(shape), gain=gain, rng=0)
    # Same fan computation -> same bound: both samples fill [-bound, bound] and nothing beyond.
    for a in (t, ours):
        assert np.abs(a).max() <= bound and np.abs(a).max() > 0.999 * bound
    t = torch.nn.init.xavier_normal_(torch.empty(shape, dtype=torch.float64), gain=gain).numpy()
    ours = init.xavier_normal_(np.empty(shape), gain=gain, rng=0)
    assert abs(ours.std() / t.std() - 1) < 0.02
    for rect in [(48, 16), (16, 48), (8, 4, 3)]:
        t = torch.nn.init.orthogonal_(torch.empty(rect, dtype=torch.float64), gain=gain).numpy()
        ours = init.orthogonal_(np.empty(rect), gain=gain, rng=0)
        for a in (t, ours):  # same (rows, cols) flattening and orientation
            w = a.reshape(rect[0], -1)
            gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
            np.testing.assert_allclose(gram, gain ** 2 * np.eye(len(gram)), atol=1e-10)
        np.testing.assert_allclose(np.linalg.svd(ours.reshape(rect[0], -1), compute_uv=False),
                                   np.linalg.svd(t.reshape(rect[0], -1), compute_uv=False), atol=1e-10)
    # torch's default recurrent init and ours share the bound 1/sqrt(H).
    h = 128
    tl = torch.nn.LSTM(64, h)
    ours = init.torch_default_(np.empty((4 * h, 64)), h, rng=0)
    tw = tl.weight_ih_l0.detach().numpy()
    assert np.abs(tw).max() <= 1 / math.sqrt(h) + 1e-7 and np.abs(ours).max() <= 1 / math.sqrt(h)
    assert abs(ours.std() / tw.std() - 1) < 0.03


def test_layer_init_option_and_save_load(tmp_path):
    import fastrnn
    layer = fastrnn.LSTM(3, 4, num_layers=2, init="orthogonal", seed=5)
    w = layer.weight_hh_l1.data[:4].astype(np.float64)
    np.testing.assert_allclose(w.T @ w, np.eye(4), atol=1e-5)
    assert np.all(layer.bias_ih_l0.data == 0)
    again = fastrnn.LSTM(3, 4, num_layers=2, init="orthogonal", seed=5)
    np.testing.assert_array_equal(again.weight_ih_l0.data, layer.weight_ih_l0.data)
    path = tmp_path / "lstm.npz"
    fastrnn.nn.save(layer, path)
    loaded = fastrnn.nn.load(path)
    assert loaded.init == "orthogonal"
    np.testing.assert_array_equal(loaded.weight_hh_l1.data, layer.weight_hh_l1.data)
    irnn = fastrnn.RNN(3, 4, nonlinearity="relu", init="irnn")
    np.testing.assert_array_equal(irnn.weight_hh_l0.data, np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError):
        fastrnn.GRU(3, 4, init="irnn")
