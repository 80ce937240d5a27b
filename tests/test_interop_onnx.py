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


@pytest.mark.parametrize("cell,layers,input_size,output_size",
                         [("gru", 1, 1, 1), ("lstm", 2, 3, 2), ("rnn", 1, 2, None)])
def test_forecaster_exports(cell, layers, input_size, output_size):
    models = pytest.importorskip("fastrnn.models")
    model = models.Forecaster(input_size, hidden_size=6, horizon=4, output_size=output_size, cell=cell,
                              num_layers=layers, dropout=0.2, seed=3).eval()
    session = _session(fonnx.export(model))
    assert [o.name for o in session.get_outputs()] == ["y"]
    rng = np.random.default_rng(6)
    for B, W in ((5, 8), (2, 3)):  # dynamic batch and window
        x = rng.standard_normal((B, W, input_size)).astype(np.float32)
        (got,) = session.run(None, {"x": x})
        _assert_close([got], [model.predict(x)])
    if input_size == 1:  # a univariate (B, W) window is fed as x[..., None]
        x = rng.standard_normal((3, 6)).astype(np.float32)
        (got,) = session.run(None, {"x": x[..., None]})
        _assert_close([got[:, :, 0]], [model.predict(x)])
    with pytest.raises(ValueError, match="lengths"):
        fonnx.export(model, lengths=True)


@pytest.mark.parametrize("cell,layers", [("lstm", 2), ("gru", 1), ("rnn", 2)])
def test_char_lm_exports_logits_and_state(cell, layers):
    models = pytest.importorskip("fastrnn.models")
    model = models.CharLM(11, embedding_dim=4, hidden_size=6, cell=cell, num_layers=layers, seed=4).eval()
    rng = np.random.default_rng(7)
    x = rng.integers(0, 11, (3, 9))
    session = _session(fonnx.export(model))
    names = ["y", "h_n", "c_n"] if cell == "lstm" else ["y", "h_n"]
    assert [o.name for o in session.get_outputs()] == names
    logits, state = model(x)
    state = list(state) if cell == "lstm" else [state]
    _assert_close(session.run(None, {"indices": x}), [logits, *state])
    # stateful: chunks chained through h0 (c0) reproduce the model's chunked run; dynamic batch and time
    stateful = _session(fonnx.export(model, initial_state=True))
    assert [i.name for i in stateful.get_inputs()] == ["indices", "h0", "c0"][:len(names)]
    x2 = rng.integers(0, 11, (3, 4))
    logits2, state2 = model(x2, tuple(state) if cell == "lstm" else state[0])
    feeds = {"indices": x2, **dict(zip(["h0", "c0"], state))}
    state2 = list(state2) if cell == "lstm" else [state2]
    _assert_close(stateful.run(None, feeds), [logits2, *state2])


def _greedy_onnx(encoder, decoder, src, max_len, bos_id, eos_id, src_lengths=None):
    """Seq2Seq.predict's greedy loop, driven over the two exported graphs with onnxruntime."""
    enc_session, dec_session = _session(encoder), _session(decoder)
    feeds = {"src": src} if src_lengths is None else {"src": src, "src_lengths": src_lengths}
    enc = dict(zip([o.name for o in enc_session.get_outputs()], enc_session.run(None, feeds)))
    wanted = {i.name for i in dec_session.get_inputs()}
    fixed = {k: enc[k] for k in ("enc_y", "src_mask") if k in wanted}
    state = {"h0": enc["h_n"], **({"c0": enc["c_n"]} if "c_n" in enc else {})}
    token = np.full(len(src), bos_id, np.int64)
    out = np.full((len(src), max_len), -1, np.int64)
    done = np.zeros(len(src), bool)
    steps = []
    for t in range(max_len):
        logits, *new_state = dec_session.run(None, {"token": token, **state, **fixed})
        steps.append(logits)
        state = dict(zip(state, new_state))
        token = logits.argmax(axis=-1)
        if eos_id is not None:
            token = np.where(done, eos_id, token)
            done |= token == eos_id
        out[:, t] = token
        if eos_id is not None and done.all():
            out[:, t + 1:] = eos_id
            break
    return out, enc, steps


@pytest.mark.parametrize("cell,attention,with_lengths,eos_id", [
    ("gru", True, True, None), ("lstm", True, False, 0), ("lstm", False, True, None), ("rnn", False, False, 8),
    ("gru", True, False, 5)])
def test_seq2seq_two_graphs_reproduce_greedy_decoding(tmp_path, cell, attention, with_lengths, eos_id):
    models = pytest.importorskip("fastrnn.models")
    model = models.Seq2Seq(12, 10, embedding_dim=6, hidden_size=8, cell=cell, attention=attention, bos_id=1,
                           eos_id=eos_id, seed=5).eval()
    rng = np.random.default_rng(0)
    for p in model.parameters():  # larger weights than the initialisation: decodes that are not constant
        p.data[...] = 0.7 * rng.standard_normal(p.data.shape)
    encoder, decoder = fonnx.export_seq2seq(model, tmp_path / "enc.onnx", tmp_path / "dec.onnx",
                                            lengths=with_lengths)
    assert onnx.load(str(tmp_path / "enc.onnx")) == encoder and onnx.load(str(tmp_path / "dec.onnx")) == decoder
    for proto in (encoder, decoder):
        onnx.checker.check_model(proto, full_check=True)
    rng = np.random.default_rng(8)
    for B, Ts in ((4, 6), (2, 3)):
        src = rng.integers(0, 12, (B, Ts))
        src_lengths = np.array([Ts, 1, Ts - 1, 2][:B]) if with_lengths else None
        got, enc, steps = _greedy_onnx(encoder, decoder, src, 7, model.bos_id, eos_id, src_lengths)
        want = model.predict(src, 7, src_lengths)
        np.testing.assert_array_equal(got, want)
        assert B == 2 or len(np.unique(want)) > 2
        # the encoder's outputs, and every step's logits (teacher-forced on the decoded tokens), within 1e-5
        enc_y, state, _ = model._encode(src, src_lengths)
        state = list(state) if cell == "lstm" else [state]
        _assert_close([enc["enc_y"], enc["h_n"], *([enc["c_n"]] if cell == "lstm" else [])], [enc_y, *state])
        tgt_in = np.concatenate([np.full((B, 1), model.bos_id), got[:, :len(steps) - 1]], axis=1)
        _assert_close([np.stack(steps, axis=1)], [model.forward(src, tgt_in, src_lengths)])
    with pytest.raises(TypeError, match="export_seq2seq"):
        fonnx.export(model)
