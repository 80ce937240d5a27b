"""fastrnn.torch: torch.nn drop-ins running the fused kernels through autograd."""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

import fastrnn.torch as ft  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

F64 = torch.float64
CELLS = [
    (nn.LSTM, ft.LSTM, {}),
    (nn.LSTM, ft.LSTM, {"proj_size": 2}),
    (nn.GRU, ft.GRU, {}),
    (nn.RNN, ft.RNN, {}),
    (nn.RNN, ft.RNN, {"nonlinearity": "relu"}),
]
IDS = ["lstm", "lstm-proj", "gru", "rnn-tanh", "rnn-relu"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


def _pair(torch_cls, fast_cls, kw, **options):
    ref = torch_cls(3, 4, dtype=F64, **kw, **options)
    fast = fast_cls(3, 4, dtype=F64, **kw, **options)
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def _states(out):
    """(y, [state tensors]) from either module's output."""
    y, h = out
    return y, list(h) if isinstance(h, tuple) else [h]


def _flat(out):
    y, h = out
    return (y, *h) if isinstance(h, tuple) else (y, h)


def _close(a, b, tol=1e-12):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, rtol=tol, atol=tol), (a - b).abs().max().item()


# ---------------------------------------------------------------------------- gradcheck

@pytest.mark.parametrize("cell,options", [("lstm", {}), ("gru", {"reset_after": True}), ("gru", {"reset_after": False}),
                                          ("rnn", {"nonlinearity": "tanh"}), ("rnn", {"nonlinearity": "relu"})])
@pytest.mark.parametrize("reverse", [False, True])
def test_gradcheck_function(cell, options, reverse):
    T, B, I, H = 4, 3, 2, 3
    g = {"lstm": 4, "gru": 3, "rnn": 1}[cell]

    def rand(*shape):
        return torch.randn(*shape, dtype=F64, requires_grad=True)
    x, h0 = rand(T, B, I), rand(B, H)
    c0 = rand(B, H) if cell == "lstm" else None
    weights = [rand(g * H, I), rand(g * H, H), rand(g * H), rand(g * H)]
    lengths = np.array([4, 2, 3])

    def f(x, h0, c0, *w):
        return ft.recurrent_function(cell, x, h0, c0, *w, lengths=lengths, reverse=reverse, **options)
    inputs = (x, h0, c0, *weights)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7)


def test_gradcheck_lstm_projection():
    T, B, I, H, P = 3, 2, 2, 3, 2

    def rand(*shape):
        return torch.randn(*shape, dtype=F64, requires_grad=True)
    inputs = (rand(T, B, I), rand(B, P), rand(B, H), rand(4 * H, I), rand(4 * H, P), rand(4 * H), rand(4 * H),
              rand(P, H))

    def f(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr):
        return ft.recurrent_function("lstm", x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, lengths=[3, 1])
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("torch_cls,fast_cls,kw", CELLS[:4], ids=IDS[:4])
def test_gradcheck_module_stacked_bidirectional(torch_cls, fast_cls, kw):
    _, fast = _pair(torch_cls, fast_cls, kw, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(2, 3, 3, dtype=F64, requires_grad=True)
    width = kw.get("proj_size") or 4
    h0 = torch.randn(4, 2, width, dtype=F64, requires_grad=True)
    if torch_cls is nn.LSTM:
        c0 = torch.randn(4, 2, 4, dtype=F64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda x, h0, c0: _flat(fast(x, (h0, c0))), (x, h0, c0), eps=1e-6, atol=1e-7)
    else:
        assert torch.autograd.gradcheck(lambda x, h0: fast(x, h0), (x, h0), eps=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------- conformance

@pytest.mark.parametrize("torch_cls,fast_cls,kw", CELLS, ids=IDS)
@pytest.mark.parametrize("layout", [dict(), dict(batch_first=True), dict(num_layers=2, bidirectional=True),
                                    dict(bias=False, num_layers=2)], ids=["plain", "batch_first", "2x-bidir", "nobias"])
@pytest.mark.parametrize("steps", [5, 1])  # T = 1: the reverse direction's flip is a no-op view
def test_forward_and_gradients_match_torch(torch_cls, fast_cls, kw, layout, steps):
    ref, fast = _pair(torch_cls, fast_cls, kw, **layout)
    assert isinstance(fast, torch_cls) and type(fast) is fast_cls
    assert list(fast.state_dict()) == list(ref.state_dict())
    x = torch.randn(steps, 3, 3, dtype=F64, requires_grad=True)
    y_ref, s_ref = _states(ref(x))
    y_fast, s_fast = _states(fast(x))
    _close(y_ref, y_fast)
    for a, b in zip(s_ref, s_fast):
        _close(a, b)

    def loss(y, states):
        return (y * y.detach().sin()).sum() + sum((s ** 2).sum() * (k + 1) for k, s in enumerate(states))
    g_ref = torch.autograd.grad(loss(y_ref, s_ref), [x, *ref.parameters()])
    g_fast = torch.autograd.grad(loss(y_fast, s_fast), [x, *fast.parameters()])
    for a, b in zip(g_ref, g_fast):
        _close(a, b, 1e-10)


@pytest.mark.parametrize("torch_cls,fast_cls,kw", CELLS, ids=IDS)
def test_hx_and_unbatched_input(torch_cls, fast_cls, kw):
    ref, fast = _pair(torch_cls, fast_cls, kw, num_layers=2)
    width = kw.get("proj_size") or 4
    h0 = torch.randn(2, width, dtype=F64)
    hx = (h0, torch.randn(2, 4, dtype=F64)) if torch_cls is nn.LSTM else h0
    x = torch.randn(5, 3, dtype=F64)
    y_ref, s_ref = _states(ref(x, hx))
    y_fast, s_fast = _states(fast(x, hx))
    _close(y_ref, y_fast)
    for a, b in zip(s_ref, s_fast):
        _close(a, b)
    with pytest.raises(RuntimeError, match="2-D"):
        fast(x, tuple(h[:, None] for h in hx) if isinstance(hx, tuple) else hx[:, None])


def test_wrong_shapes_raise_torch_errors():
    fast = ft.GRU(3, 4, num_layers=2)
    with pytest.raises(RuntimeError, match="input_size"):
        fast(torch.randn(5, 2, 7))
    with pytest.raises(RuntimeError, match="Expected hidden size"):
        fast(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="2D or 3D"):
        fast(torch.randn(5))
    with pytest.raises(ValueError, match="dtype"):
        fast(torch.randn(5, 2, 3, dtype=F64))


def test_half_precision_is_refused():
    fast = ft.LSTM(3, 4).half()
    with pytest.raises(TypeError, match="float32 and float64"):
        fast(torch.randn(5, 2, 3).half())


# ---------------------------------------------------------------------------- packed sequences

@pytest.mark.parametrize("torch_cls,fast_cls,kw", CELLS, ids=IDS)
@pytest.mark.parametrize("enforce_sorted", [False, True])
def test_packed_sequence_in_and_out(torch_cls, fast_cls, kw, enforce_sorted):
    ref, fast = _pair(torch_cls, fast_cls, kw, num_layers=2, bidirectional=True)
    lengths = torch.tensor([6, 5, 3, 1]) if enforce_sorted else torch.tensor([3, 6, 1, 5])
    x = torch.randn(6, 4, 3, dtype=F64, requires_grad=True)
    width = kw.get("proj_size") or 4
    h0 = torch.randn(4, 4, width, dtype=F64, requires_grad=True)
    hx = (h0, torch.randn(4, 4, 4, dtype=F64)) if torch_cls is nn.LSTM else h0
    outs = []
    for module in (ref, fast):
        packed = pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
        y, states = _states(module(packed, hx))
        assert type(y) is type(packed)
        outs.append((y, states))
        padded, out_lengths = pad_packed_sequence(y)
        assert torch.equal(out_lengths, lengths)
        loss = (padded ** 2).sum() + sum(s.sum() for s in states)
        outs[-1] += (torch.autograd.grad(loss, [x, h0, *module.parameters()]),)
    (y_ref, s_ref, g_ref), (y_fast, s_fast, g_fast) = outs
    assert torch.equal(y_ref.batch_sizes, y_fast.batch_sizes)
    for name in ("sorted_indices", "unsorted_indices"):
        a, b = getattr(y_ref, name), getattr(y_fast, name)
        assert (a is None and b is None) or torch.equal(a, b)
    _close(y_ref.data, y_fast.data)
    for a, b in zip(s_ref, s_fast):
        _close(a, b)
    for a, b in zip(g_ref, g_fast):
        _close(a, b, 1e-10)


# ---------------------------------------------------------------------------- training with a torch optimizer

class _Tagger(nn.Module):
    def __init__(self, rnn_cls, **kw):
        super().__init__()
        self.embed = nn.Embedding(11, 5, dtype=F64)
        self.rnn = rnn_cls(5, 6, num_layers=2, bidirectional=True, batch_first=True, dtype=F64, **kw)
        self.head = nn.Linear(12, 3, dtype=F64)

    def forward(self, tokens):
        y, _ = self.rnn(self.embed(tokens))
        return self.head(y)


@pytest.mark.parametrize("rnn_cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_training_with_adam_gives_torch_losses(rnn_cls):
    reference = _Tagger(rnn_cls)
    model = ft.convert(copy.deepcopy(reference))
    assert type(model.rnn) is not rnn_cls and isinstance(model.rnn, rnn_cls)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 11, (4, 7), generator=gen)
    targets = torch.randint(0, 3, (4, 7), generator=gen)
    losses = []
    for m in (reference, model):
        opt = torch.optim.Adam(m.parameters(), lr=0.05)
        run = []
        for _ in range(5):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(m(tokens).reshape(-1, 3), targets.reshape(-1))
            loss.backward()
            opt.step()
            run.append(loss.item())
        losses.append(run)
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-9)
    assert losses[0][-1] < losses[0][0]
    for a, b in zip(reference.parameters(), model.parameters()):
        _close(a, b, 1e-9)


# ---------------------------------------------------------------------------- state dicts and convert

@pytest.mark.parametrize("torch_cls,fast_cls,kw", CELLS, ids=IDS)
def test_state_dict_round_trip(torch_cls, fast_cls, kw):
    fast = fast_cls(3, 4, num_layers=2, bidirectional=True, **kw)
    back = torch_cls(3, 4, num_layers=2, bidirectional=True, **kw)
    back.load_state_dict(fast.state_dict())
    again = fast_cls(3, 4, num_layers=2, bidirectional=True, **kw)
    again.load_state_dict(back.state_dict())
    for (k1, v1), (k2, v2) in zip(fast.state_dict().items(), again.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    x = torch.randn(4, 2, 3)
    with torch.no_grad():
        _close(back(x)[0], again(x)[0], 1e-6)
    assert repr(fast) == repr(back)


def test_convert_in_place_keeps_parameters_and_optimizer():
    model = nn.Sequential(nn.Linear(3, 3), nn.ModuleDict({"a": nn.LSTM(3, 4), "b": nn.GRU(3, 4, num_layers=2),
                                                          "c": nn.RNN(3, 4, nonlinearity="relu")}))
    params = list(model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    assert ft.convert(model) is model
    assert [type(model[1][k]) for k in "abc"] == [ft.LSTM, ft.GRU, ft.RNN]
    assert all(a is b for a, b in zip(params, model.parameters()))
    before = model[1]["b"].weight_hh_l1.detach().clone()
    y, _ = model[1]["b"](model[0](torch.randn(5, 2, 3)))
    y.sum().backward()
    opt.step()
    assert not torch.equal(before, model[1]["b"].weight_hh_l1)
    assert ft.revert(model) is model
    assert [type(model[1][k]) for k in "abc"] == [nn.LSTM, nn.GRU, nn.RNN]


def test_convert_copy_and_root_module():
    lstm = nn.LSTM(3, 4)
    converted = ft.convert(lstm, inplace=False)
    assert type(lstm) is nn.LSTM and type(converted) is ft.LSTM
    x = torch.randn(3, 2, 3)
    with torch.no_grad():
        _close(lstm(x)[0], converted(x)[0], 1e-6)

    class Custom(nn.LSTM):
        pass
    custom = Custom(3, 4)
    assert type(ft.convert(custom)) is Custom  # subclasses may override forward: left alone
    with pytest.raises(TypeError, match="torch.nn.Module"):
        ft.convert("not a model")


# ---------------------------------------------------------------------------- devices, no_grad, in-place safety

def test_non_cpu_tensors_raise_clear_error():
    fast = ft.LSTM(3, 4)
    with pytest.raises(RuntimeError, match="CPU tensors.*meta"):
        fast(torch.empty(5, 2, 3, device="meta"))
    meta = ft.GRU(3, 4).to("meta")
    with pytest.raises(RuntimeError, match="CPU tensors"):
        meta(torch.empty(5, 2, 3, device="meta"))


def test_cuda_tensor_error_path(monkeypatch):
    fast = ft.RNN(3, 4)
    x = torch.randn(5, 2, 3)

    class FakeCuda:
        type = "cuda"

        def __str__(self):
            return "cuda:0"
    original = torch.Tensor.device

    def device(self):
        return FakeCuda() if self is x else original.__get__(self)
    monkeypatch.setattr(torch.Tensor, "device", property(device))
    with pytest.raises(RuntimeError, match="cuda:0"):
        fast(x)


def test_no_grad_inference_keeps_nothing():
    ref, fast = _pair(nn.GRU, ft.GRU, {}, num_layers=2)
    x = torch.randn(5, 2, 3, dtype=F64)
    with torch.no_grad():
        y, h = fast(x)
    assert not y.requires_grad and y.grad_fn is None
    _close(y, ref(x)[0].detach())


def test_in_place_change_before_backward_is_caught():
    fast = ft.GRU(3, 4, dtype=F64)
    y, _ = fast(torch.randn(5, 2, 3, dtype=F64))
    y.add_(1.0)
    with pytest.raises(RuntimeError, match="inplace"):
        y.sum().backward()


def test_dropout_between_layers_in_training_only():
    fast = ft.LSTM(3, 4, num_layers=2, dropout=0.5, dtype=F64)
    ref = nn.LSTM(3, 4, num_layers=2, dropout=0.5, dtype=F64)
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(5, 2, 3, dtype=F64, requires_grad=True)
    y_train, _ = fast(x)
    y_train.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    fast.eval()
    ref.eval()
    _close(fast(x)[0], ref(x)[0])
    assert not torch.allclose(fast(x)[0], y_train)
