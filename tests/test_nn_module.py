"""Module system: Parameter, Module registration, modes, state_dict, save/load."""
import copy
import io
import json
import zipfile

import numpy as np
import pytest

import fastrnn
from fastrnn import nn
from fastrnn.nn import Dropout, Embedding, Linear, Module, Parameter, Sequential
from fastrnn.nn.module import StateDictError


class Encoder(Module):
    """A user model: a submodule, a bare parameter, a non-default config."""

    def __init__(self, vocab, hidden, scale=1.0, dtype=np.float64):
        super().__init__()
        self.embed = Embedding(vocab, hidden, padding_idx=0, dtype=dtype, seed=1)
        self.proj = Sequential(Linear(hidden, hidden, dtype=dtype, seed=2), Dropout(0.25, seed=3))
        self.gain = Parameter(np.full(hidden, scale, dtype))
        self._config = {"vocab": vocab, "hidden": hidden, "scale": scale, "dtype": dtype}

    def forward(self, idx):
        return self.proj(self.embed(idx)) * self.gain.data


def rng():
    return np.random.default_rng(1234)


# --------------------------------------------------------------------------- Parameter

def test_parameter_wraps_and_accumulates():
    data = rng().standard_normal((3, 2)).astype(np.float32)
    p = Parameter(data)
    assert p.data is data and p.shape == (3, 2) and p.dtype == np.float32 and p.grad is None
    assert np.asarray(p) is data
    g = np.ones((3, 2), np.float32)
    p.accumulate_grad(g)
    assert p.grad is not g and np.array_equal(p.grad, g)
    p.accumulate_grad(2 * g)
    assert np.array_equal(p.grad, 3 * g)
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        p.accumulate_grad(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="dtype float64"):
        p.accumulate_grad(np.ones((3, 2)))
    p.zero_grad(set_to_none=False)
    assert np.array_equal(p.grad, np.zeros((3, 2), np.float32))
    p.zero_grad()
    assert p.grad is None
    with pytest.raises(TypeError, match="floating-point"):
        Parameter(np.arange(3))
    assert Parameter(np.ones((2, 3)).T).data.flags.c_contiguous


# --------------------------------------------------------------------------- registration

def test_registration_order_and_dotted_names():
    model = Encoder(7, 4)
    assert [n for n, _ in model.named_parameters()] == [
        "gain", "embed.weight", "proj.0.weight", "proj.0.bias"]
    assert list(model.state_dict()) == ["gain", "embed.weight", "proj.0.weight", "proj.0.bias"]
    assert [n for n, _ in model.named_children()] == ["embed", "proj"]
    assert [n for n, _ in model.named_modules()] == ["", "embed", "proj", "proj.0", "proj.1"]
    assert len(list(model.modules())) == 5 and len(list(model.parameters())) == 4
    seq = Sequential(Linear(3, 4), Linear(4, 2, bias=False))
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "1.weight"]
    assert seq[1].bias is None and len(seq) == 2 and seq[-1] is seq[1]
    assert list(seq) == [seq[0], seq[1]] and isinstance(seq[:1], Sequential) and seq[:1][0] is seq[0]
    with pytest.raises(IndexError):
        seq[2]


def test_setattr_rules():
    m = Linear(2, 3)
    with pytest.raises(TypeError, match="parameter 'weight'"):
        m.weight = np.zeros((3, 2), np.float32)
    m.bias = None  # allowed, like torch
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    del m.weight
    assert list(m.parameters()) == []

    class Early(Module):
        def __init__(self):
            self.w = Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match="super"):
        Early()
    with pytest.raises(TypeError, match="argument 1"):
        Sequential(Linear(1, 1), "not a module")


def test_shared_parameters_listed_once_but_state_dict_has_both():
    a, b = Linear(2, 2), Linear(2, 2)
    b.weight = a.weight
    seq = Sequential(a, b)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "1.bias"]
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_train_eval_propagate_and_zero_grad():
    model = Encoder(5, 3)
    assert all(m.training for m in model.modules())
    assert model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    with pytest.raises(TypeError, match="mode"):
        model.train("no")
    for p in model.parameters():
        p.accumulate_grad(np.ones(p.shape, p.dtype))
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_repr_is_nested():
    text = repr(Encoder(5, 3))
    assert text == (
        "Encoder(\n"
        "  (embed): Embedding(5, 3, padding_idx=0, dtype=float64)\n"
        "  (proj): Sequential(\n"
        "    (0): Linear(in_features=3, out_features=3, bias=True, dtype=float64)\n"
        "    (1): Dropout(p=0.25)\n"
        "  )\n"
        ")")


def test_deepcopy():
    model = Encoder(5, 3)
    clone = copy.deepcopy(model)
    assert clone.proj[0].weight is not model.proj[0].weight
    for (n1, a), (n2, b) in zip(model.state_dict().items(), clone.state_dict().items()):
        assert n1 == n2 and np.array_equal(a, b)


# --------------------------------------------------------------------------- state_dict

def test_state_dict_round_trip_copies_into_existing_arrays():
    src, dst = Encoder(6, 4, scale=2.0), Encoder(6, 4)
    state = src.state_dict()
    state["gain"][0] = 99.0  # a copy: the module is unchanged
    assert src.gain.data[0] == 2.0
    state = src.state_dict()
    params_before = {n: (p, p.data) for n, p in dst.named_parameters()}
    result = dst.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for name, p in dst.named_parameters():
        assert p is params_before[name][0] and p.data is params_before[name][1]
        assert np.array_equal(p.data, state[name])


def test_load_state_dict_casts_floats_to_parameter_dtype():
    lin = Linear(3, 2, dtype=np.float32)
    state = {"weight": np.arange(6.0).reshape(2, 3), "bias": [0.5, -0.5]}  # float64 values
    lin.load_state_dict(state)
    assert lin.weight.dtype == np.float32 and np.array_equal(lin.weight.data, np.arange(6.0).reshape(2, 3))
    assert np.array_equal(lin.bias.data, np.array([0.5, -0.5], np.float32))


def test_load_state_dict_lists_every_bad_key_in_one_error():
    model = Encoder(6, 4)
    before = model.state_dict()
    state = model.state_dict()
    del state["embed.weight"]
    del state["gain"]
    state["proj.0.weight"] = np.zeros((4, 5))
    state["proj.0.bias"] = np.zeros(4, np.int64)
    state["extra.weight"] = np.zeros(1)
    state["also_extra"] = np.zeros(1)
    with pytest.raises(StateDictError) as info:
        model.load_state_dict(state)
    msg = str(info.value)
    for key in ["embed.weight", "gain", "proj.0.weight", "proj.0.bias", "extra.weight", "also_extra"]:
        assert repr(key) in msg
    assert "missing keys (2)" in msg and "unexpected keys (2)" in msg and "(4, 5)" in msg and "int64" in msg
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert info.value.missing_keys == ["gain", "embed.weight"]
    assert sorted(info.value.unexpected_keys) == ["also_extra", "extra.weight"]
    assert set(info.value.bad_keys) == {"proj.0.weight", "proj.0.bias"}
    for name, value in model.state_dict().items():  # nothing was loaded
        assert np.array_equal(value, before[name])


def test_load_state_dict_non_strict():
    model = Encoder(6, 4)
    state = {"gain": np.full(4, 3.0), "bogus": np.zeros(2)}
    result = model.load_state_dict(state, strict=False)
    assert result.unexpected_keys == ["bogus"] and "embed.weight" in result.missing_keys
    assert np.array_equal(model.gain.data, np.full(4, 3.0))
    with pytest.raises(ValueError, match=r"'gain': shape \(5,\), expected \(4,\)") as info:
        model.load_state_dict({"gain": np.zeros(5), "bogus": np.zeros(2)}, strict=False)
    assert "bogus" not in str(info.value)
    with pytest.raises(TypeError, match="mapping"):
        model.load_state_dict([("gain", np.zeros(4))])


def test_load_torch_state_dict():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    t = torch.nn.Sequential(torch.nn.Embedding(9, 5, padding_idx=1), torch.nn.Linear(5, 3)).double()
    ours = Sequential(Embedding(9, 5, padding_idx=1, dtype=np.float64), Linear(5, 3, dtype=np.float64))
    ours.load_state_dict(t.state_dict())
    ours.eval()
    idx = np.array([[1, 2, 3], [8, 0, 1]])
    expected = t(torch.from_numpy(idx)).detach().numpy()
    np.testing.assert_allclose(ours(idx), expected, rtol=1e-12, atol=0)
    # and back: our state_dict loads into torch unchanged
    t2 = torch.nn.Sequential(torch.nn.Embedding(9, 5), torch.nn.Linear(5, 3)).double()
    t2.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    assert torch.equal(t2[1].weight, t[1].weight)
    # a tensor that requires grad (detach is needed) and a wrong shape are both handled
    bad = dict(t.state_dict())
    bad["1.weight"] = torch.zeros(2, 2, requires_grad=True)
    with pytest.raises(ValueError, match=r"'1.weight': shape \(2, 2\)"):
        ours.load_state_dict(bad)


# --------------------------------------------------------------------------- save / load

def test_save_load_round_trip(tmp_path):
    model = Encoder(8, 4, scale=0.5)
    for p in model.parameters():  # weights that differ from a fresh build
        p.data[...] = rng().standard_normal(p.shape)
    model.proj.eval()
    path = tmp_path / "enc.npz"
    nn.save(model, path)
    loaded = nn.load(path)
    assert type(loaded) is Encoder and loaded.proj[0].dtype == np.float64
    assert loaded.training and not loaded.proj.training and not loaded.proj[1].training
    for (n1, a), (n2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and a.dtype == b.dtype and np.array_equal(a, b)
    model.eval(), loaded.eval()
    idx = np.array([[1, 2, 7], [0, 3, 3]])
    assert np.array_equal(model(idx), loaded(idx))
    # the file is a plain npz: no pickle needed to read it
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {"__fastrnn_config__", *model.state_dict()}
        header = json.loads(str(npz["__fastrnn_config__"]))
        assert header["class"] == Encoder.__qualname__


def test_save_load_builtin_layers_and_conveniences(tmp_path):
    seq = Sequential(Embedding(10, 6, seed=0), Dropout(0.1, seed=5), Linear(6, 2, bias=False, seed=0))
    path = tmp_path / "seq.fastrnn"  # the path is used as given
    seq.save(path)
    assert path.exists() and not (tmp_path / "seq.fastrnn.npz").exists()
    loaded = Sequential.load(path)
    assert repr(loaded) == repr(seq) and loaded[1]._seed == 5 and loaded[2].bias is None
    idx = np.arange(10).reshape(2, 5)
    assert np.array_equal(loaded(idx), seq(idx))  # same seed: same dropout mask too
    with pytest.raises(ValueError, match="holds a Sequential, not a Linear"):
        Linear.load(path)
    buffer = io.BytesIO()
    nn.save(Linear(3, 3, dtype=np.float64), buffer)
    buffer.seek(0)
    assert nn.load(buffer).weight.dtype == np.float64


def test_save_needs_a_config(tmp_path):
    class NoConfig(Module):
        def __init__(self, n):
            super().__init__()
            self.w = Parameter(np.zeros(n))

    with pytest.raises(NotImplementedError, match="config"):
        nn.save(NoConfig(3), tmp_path / "x.npz")
    assert list(tmp_path.iterdir()) == []  # nothing left behind

    class NoArgs(Module):
        def __init__(self):
            super().__init__()
            self.w = Parameter(np.arange(3.0))

    m = NoArgs()
    m.w.data[...] = 7
    nn.save(m, tmp_path / "y.npz")
    assert np.array_equal(nn.load(tmp_path / "y.npz").w.data, np.full(3, 7.0))


def _rewrite(path, change):
    """Rewrite a saved file's entries through ``change(dict) -> dict``."""
    with np.load(path, allow_pickle=False) as npz:
        entries = {k: npz[k] for k in npz.files}
    entries = change(entries)
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in entries.items():
            with zf.open(name + ".npy", "w") as fh:
                np.lib.format.write_array(fh, array)


def _with_header(**updates):
    def change(entries):
        header = json.loads(str(entries["__fastrnn_config__"]))
        header.update(updates)
        entries["__fastrnn_config__"] = np.array(json.dumps(header))
        return entries
    return change


def test_load_errors_name_the_file_and_the_problem(tmp_path):
    path = tmp_path / "m.npz"
    nn.save(Sequential(Linear(4, 3, seed=0), Dropout(0.5)), path)
    data = path.read_bytes()
    name = str(path)

    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(ValueError, match="corrupt.npz.*not a readable fastrnn module file"):
        nn.load(corrupt)

    truncated = tmp_path / "truncated.npz"
    for cut in (len(data) // 2, len(data) - 10, 30):
        truncated.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated.npz.*not a readable fastrnn module file"):
            nn.load(truncated)

    bitflip = tmp_path / "bitflip.npz"
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    bitflip.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="bitflip.npz"):
        nn.load(bitflip)

    plain = tmp_path / "plain.npz"
    np.savez(plain, weight=np.zeros(3))
    with pytest.raises(ValueError, match="plain.npz.*no '__fastrnn_config__' entry"):
        nn.load(plain)

    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match="single.npy.*single array"):
        nn.load(single)

    path.write_bytes(data)
    _rewrite(path, _with_header(**{"class": "NoSuchLayer"}))
    with pytest.raises(ValueError, match=r"unknown module class 'NoSuchLayer'") as info:
        nn.load(path)
    assert name in str(info.value) and "Linear" in str(info.value)  # lists known classes

    path.write_bytes(data)
    _rewrite(path, _with_header(config={"modules": {"0": {"__module__": {
        "class": "Linear", "module": "fastrnn.nn.layers", "config": {"in_features": -1}}}}}))
    with pytest.raises(ValueError, match="cannot rebuild Linear.*in_features"):
        nn.load(path)

    path.write_bytes(data)
    _rewrite(path, _with_header(config={"modules": {"0": {"__module__": {
        "class": "Linear", "module": "fastrnn.nn.layers", "config": {"dtype": {"__dtype__": "nope"}}}}}}))
    with pytest.raises(ValueError, match="cannot decode the config of Linear"):
        nn.load(path)

    path.write_bytes(data)
    _rewrite(path, lambda e: {**e, "__fastrnn_config__": np.array("{not json")})
    with pytest.raises(ValueError, match="not valid JSON"):
        nn.load(path)

    path.write_bytes(data)
    _rewrite(path, _with_header(format="something/9"))
    with pytest.raises(ValueError, match="unsupported format"):
        nn.load(path)

    path.write_bytes(data)
    _rewrite(path, lambda e: {**e, "0.weight": np.zeros((3, 5), np.float32), "0.extra": np.zeros(1)})
    with pytest.raises(ValueError, match="do not match") as info:
        nn.load(path)
    assert name in str(info.value) and "'0.weight': shape (3, 5)" in str(info.value)
    assert "'0.extra'" in str(info.value)

    with pytest.raises(FileNotFoundError):
        nn.load(tmp_path / "missing.npz")


def test_top_level_exports():
    for name in ["Linear", "Embedding", "Dropout", "Sequential"]:
        assert getattr(fastrnn, name) is getattr(nn, name)
    for name in ["Parameter", "Module", "Sequential", "Linear", "Embedding", "Dropout", "save", "load"]:
        assert name in nn.__all__ and hasattr(nn, name)
