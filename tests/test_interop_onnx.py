"""fastrnn.onnx: export to standard ONNX nodes, checked by onnx.checker and run by onnxruntime."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import fastrnn.onnx as fonnx  # noqa: E402
from fastrnn import nn  # noqa: E402

TOL = 1e-5
CELLS = [
    (nn.LSTM, {}),
    (nn.GRU, {}),
    (nn.GRU, {"reset_after": False}),
    (nn.RNN, {}),
    (nn.RNN, {"nonlinearity": "relu"}),
]
IDS = ["lstm", "gru", "gru-reset-before", "rnn-tanh", "rnn-relu"]


def _session(model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _fastrnn_outputs(layer, x, lengths=None, hx=None):
    if isinstance(layer, nn.LSTM):
        y, (h, c) = layer(x, hx, lengths=lengths)
        return [y, h, c]
    y, h = layer(x, hx, lengths=lengths)
    return [y, h]


def _assert_close(got, want, tol=TOL):
    for g, w in zip(got, want):
        assert g.shape == w.shape, (g.shape, w.shape)
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


@pytest.mark.parametrize("cls,kw", CELLS, ids=IDS)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bidir"])
def test_two_layers_with_lengths_and_initial_state(cls, kw, bidirectional):
    rng = np.random.default_rng(0)
    layer = cls(3, 5, num_layers=2, bidirectional=bidirectional, seed=2, **kw).eval()
    model = fonnx.export(layer, lengths=True, initial_state=True)
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count({nn.LSTM: "LSTM", nn.GRU: "GRU", nn.RNN: "RNN"}[cls]) == 2
    session = _session(model)
    states = 4 if bidirectional else 2
    for T, B in ((7, 4), (3, 2)):  # dynamic time and batch axes
        x = rng.standard_normal((T, B, 3)).astype(np.float32)
        lengths = np.array([T, 1, T - 1, 2][:B])
        h0 = rng.standard_normal((states, B, 5)).astype(np.float32)
        feeds = {"x": x, "lengths": lengths, "h0": h0}
        hx = h0
        if cls is nn.LSTM:
            feeds["c0"] = rng.standard_normal((states, B, 5)).astype(np.float32)
            hx = (h0, feeds["c0"])
        want = _fastrnn_outputs(layer, x, lengths, hx)
        got = session.run(None, feeds)
        _assert_close(got, want)
        # padded steps are zero in both; h_n is the state at each sequence's last valid step
        assert np.all(got[0][1:, 1] == 0)


@pytest.mark.parametrize("cls,kw", CELLS, ids=IDS)
def test_batch_first_without_lengths(cls, kw):
    rng = np.random.default_rng(1)
    layer = cls(4, 3, num_layers=2, bidirectional=True, batch_first=True, bias=False, seed=3, **kw).eval()
    session = _session(fonnx.export(layer))
    assert [i.name for i in session.get_inputs()] == ["x"]
    x = rng.standard_normal((2, 6, 4)).astype(np.float32)
    _assert_close(session.run(None, {"x": x}), _fastrnn_outputs(layer, x))


def test_output_names_and_symbolic_axes(tmp_path):
    layer = nn.LSTM(3, 4, bidirectional=True, seed=0)
    path = tmp_path / "lstm.onnx"
    returned = fonnx.export(layer, path, lengths=True)
    model = onnx.load(str(path))
    assert model == returned
    assert [o.name for o in model.graph.output] == ["y", "h_n", "c_n"]
    x_dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert x_dims == ["time", "batch", 3]
    y_dims = [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert y_dims == ["time", "batch", 8]


def test_float64_layer_exports_as_double_or_float32():
    layer = nn.GRU(3, 4, dtype=np.float64, bidirectional=True, seed=0).eval()
    model = fonnx.export(layer, lengths=True)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert all(t.data_type == onnx.TensorProto.DOUBLE for t in model.graph.initializer if t.name.endswith("_W"))
    # onnxruntime's CPU recurrent kernels are float32-only: export with dtype=float32 to run there
    x = np.random.default_rng(2).standard_normal((5, 2, 3))
    session = _session(fonnx.export(layer, lengths=True, dtype=np.float32))
    got = session.run(None, {"x": x.astype(np.float32), "lengths": np.array([5, 3])})
    want = _fastrnn_outputs(layer, x, np.array([5, 3]))
    _assert_close(got, [w.astype(np.float32) for w in want])


def test_lstm_projection_is_not_expressible():
    with pytest.raises(NotImplementedError, match="proj_size"):
        fonnx.export(nn.LSTM(3, 4, proj_size=2))


def test_unknown_module_is_refused():
    class Odd(nn.Module):
        def forward(self, x):
            return x
    with pytest.raises(NotImplementedError, match="cannot export"):
        fonnx.export(nn.Sequential(nn.Linear(3, 3), Odd()))


def test_embedding_recurrent_linear_model_with_lengths():
    rng = np.random.default_rng(3)
    embed = nn.Embedding(20, 6, seed=0)
    gru = nn.GRU(6, 5, num_layers=2, bidirectional=True, batch_first=True, seed=1)
    head = nn.Linear(10, 3, seed=2)
    model = nn.Sequential(embed, nn.Dropout(0.3, seed=0), gru, head).eval()
    session = _session(fonnx.export(model, lengths=True))
    assert [i.name for i in session.get_inputs()] == ["indices", "lengths"]
    indices = rng.integers(0, 20, (3, 7))
    lengths = np.array([7, 4, 1])
    y, _ = gru(embed(indices), lengths=lengths)
    want = head(y)
    (got,) = session.run(None, {"indices": indices, "lengths": lengths})
    _assert_close([got], [want])
    ops = {n.op_type for n in fonnx.export(model).graph.node}
    assert {"Gather", "GRU", "MatMul", "Add"} <= ops


def test_linear_sequential_matches_fastrnn():
    model = nn.Sequential(nn.Linear(4, 6, seed=0), nn.Linear(6, 2, bias=False, seed=1)).eval()
    x = np.random.default_rng(4).standard_normal((5, 3, 4)).astype(np.float32)
    (got,) = _session(fonnx.export(model)).run(None, {"x": x})
    _assert_close([got], [model(x)])


def test_torch_modules_export_too():
    torch = pytest.importorskip("torch")
    import fastrnn.torch as ft
    layer = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    fast = ft.convert(torch.nn.LSTM(3, 4), inplace=False)
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        y, (h, c) = layer(x)
        want = [t.numpy() for t in (y, h, c)]
    _assert_close(_session(fonnx.export(layer)).run(None, {"x": x.numpy()}), want)
    with torch.no_grad():
        y, (h, c) = fast(x.transpose(0, 1))
    _assert_close(_session(fonnx.export(fast)).run(None, {"x": x.transpose(0, 1).numpy()}),
                  [t.numpy() for t in (y, h, c)])


@pytest.mark.parametrize("kind", ["tagger", "classifier-last", "classifier-mean"])
@pytest.mark.parametrize("tokens", [True, False], ids=["tokens", "dense"])
def test_ready_models_export(kind, tokens):
    models = pytest.importorskip("fastrnn.models")
    rng = np.random.default_rng(5)
    common = dict(hidden_size=6, cell="gru" if kind == "tagger" else "lstm", num_layers=2, bidirectional=True,
                  seed=1, **({"vocab_size": 13, "embedding_dim": 4} if tokens else {"input_size": 3}))
    if kind == "tagger":
        model = models.SequenceTagger(5, **common)
    else:
        model = models.SequenceClassifier(4, pooling=kind.split("-")[1], **common)
    model.eval()
    x = rng.integers(0, 13, (3, 7)) if tokens else rng.standard_normal((3, 7, 3)).astype(np.float32)
    lengths = np.array([7, 2, 5])
    for with_lengths in (False, True):
        session = _session(fonnx.export(model, lengths=with_lengths))
        feeds = {("indices" if tokens else "x"): x}
        if with_lengths:
            feeds["lengths"] = lengths
        (got,) = session.run(None, feeds)
        want = model(x, lengths if with_lengths else None)
        _assert_close([got], [want])
