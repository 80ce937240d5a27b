"""ONNX export of fastrnn layers as standard ONNX operators (optional extra ``onnx``).

:func:`export` writes a recurrent layer (``fastrnn.nn.LSTM``/``GRU``/``RNN``, or
``torch.nn``'s and ``fastrnn.torch``'s, read through the same parameter names) or
a small model (``Sequential`` of ``Embedding``, ``Linear``, ``Dropout`` and
recurrent layers) as an ONNX graph that any ONNX runtime executes:

- each (stacked) layer is one standard ``LSTM``/``GRU``/``RNN`` node holding both
  directions (``direction="bidirectional"``); the weights are reordered from
  PyTorch's gate order to ONNX's (LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h with
  ``linear_before_reset=1`` for the reset-after form and 0 for ``reset_after=False``;
  RNN ``activations`` Tanh or Relu);
- between layers ONNX's ``Y`` (T, num_directions, B, H) becomes the next layer's
  (T, B, num_directions*H) input through ``Transpose`` + ``Reshape`` (``Squeeze``
  when unidirectional); ``batch_first`` adds a ``Transpose`` at each end;
- ``lengths=True`` adds an int64 input ``lengths`` (B,), cast to the int32
  ``sequence_lens`` every node takes: outputs past a sequence's length are zero and
  h_n is the state at its last valid step (fastrnn's and torch's packed semantics);
- batch and time axes are dynamic (named ``batch`` and ``time``);
- heads use plain operators: ``Linear`` is ``MatMul`` (+ ``Add``), ``Embedding``
  is ``Gather``, ``Dropout`` is the identity (inference).

The ready models of ``fastrnn.models`` export too:

- ``SequenceTagger`` and ``SequenceClassifier`` (``pooling="last"`` or ``"mean"``):
  input ``indices`` (B, T) int64 or ``x`` (B, T, F), optional ``lengths``, output
  ``y`` (logits);
- ``Forecaster``: input ``x`` (B, W, input_size) (feed a univariate (B, W) window as
  ``x[..., None]``), output ``y`` (B, horizon, output_size), the direct forecast;
- ``CharLM``: input ``indices`` (B, T) int64, with ``initial_state=True`` also ``h0``
  (and ``c0``) (num_layers, B, H); outputs ``y`` (B, T, vocab_size) logits and the
  final state ``h_n`` (and ``c_n``) to feed back as the next chunk's ``h0`` (``c0``);
- ``Seq2Seq``: greedy decoding is a loop, not one graph, so :func:`export_seq2seq`
  writes two graphs, an encoder and a one-step decoder, that a caller's loop runs
  (see there).

LSTM projections (``proj_size > 0``) have no standard ONNX form and raise
``NotImplementedError``. Other module types can be taught with
:func:`register_exporter`.

Graph inputs and outputs of a single recurrent layer: ``x`` (T, B, I) or (B, T, I)
with ``batch_first``; optional ``lengths`` (B,) int64; optional ``h0`` (and ``c0``
for the LSTM) (num_layers * num_directions, B, H) with ``initial_state=True``;
outputs ``y``, ``h_n`` (and ``c_n``) shaped as the layer returns them.
A ``Sequential`` has one output ``y`` (a recurrent child passes its sequence
output on); its input is ``x`` (float) or, when it starts with an ``Embedding``,
``indices`` (int64, rank 2: (T, B), or (B, T) when the first recurrent layer is
``batch_first``).
"""
import sys

import numpy as np

try:
    import onnx
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("fastrnn.onnx needs the onnx package: pip install 'fastrnn[onnx]'") from exc
from onnx import TensorProto, helper, numpy_helper

__all__ = ["export", "export_seq2seq", "to_model", "register_exporter", "Graph", "DEFAULT_OPSET"]

DEFAULT_OPSET = 17

_ELEM_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}
# Rows of PyTorch's gate blocks in ONNX's order.
_GATE_ORDER = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "rnn": (0,)}
_OPS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


class Graph:
    """A small ONNX graph builder: nodes, initializers, inputs and outputs with unique names."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        if self.dtype not in _ELEM_TYPES:
            raise TypeError(f"ONNX export supports float32 and float64 layers, got {self.dtype}")
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self._names = set()

    @property
    def elem_type(self):
        return _ELEM_TYPES[self.dtype]

    def name(self, hint):
        """A fresh tensor name starting with ``hint``."""
        candidate, k = hint, 0
        while candidate in self._names:
            k += 1
            candidate = f"{hint}_{k}"
        self._names.add(candidate)
        return candidate

    def const(self, hint, array):
        """Add ``array`` as an initializer (floating-point values in the graph's dtype); returns its name."""
        name = self.name(hint)
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(self.dtype, copy=False)
        array = np.ascontiguousarray(array).reshape(array.shape)  # (keeps a scalar 0-d)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def ints(self, hint, values):
        return self.const(hint, np.asarray(values, np.int64))

    def node(self, op, inputs, hint, outputs=1, **attributes):
        """Add an ``op`` node; returns its output name (or a list when ``outputs`` > 1)."""
        names = [self.name(f"{hint}_{k}" if outputs > 1 else hint) for k in range(outputs)]
        self.nodes.append(helper.make_node(op, list(inputs), names, name=self.name(f"{hint}_node"), **attributes))
        return names if outputs > 1 else names[0]

    def add_input(self, name, elem_type, shape):
        self._names.add(name)
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def add_output(self, name, tensor, elem_type, shape):
        """Expose ``tensor`` as graph output ``name`` (through an Identity node)."""
        self._names.add(name)
        self.nodes.append(helper.make_node("Identity", [tensor], [name], name=self.name(f"{name}_node")))
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def model(self, opset, graph_name="fastrnn"):
        graph = helper.make_graph(self.nodes, graph_name, self.inputs, self.outputs, self.initializers)
        opset_ids = [helper.make_opsetid("", opset)]
        model = helper.make_model(graph, opset_imports=opset_ids, producer_name="fastrnn",
                                  ir_version=helper.find_min_ir_version_for(opset_ids))
        return model


# --------------------------------------------------------------------------- reading modules

def _torch_nn():
    """torch.nn if torch is already imported (never imports it)."""
    torch = sys.modules.get("torch")
    return getattr(torch, "nn", None) if torch is not None else None


def _array(value):
    """A parameter's values as a NumPy array (fastrnn Parameter, torch Parameter/Tensor)."""
    if value is None:
        return None
    data = getattr(value, "data", value)
    if hasattr(data, "detach"):  # a torch tensor
        data = data.detach().cpu().numpy()
    return np.asarray(data)


def _recurrent_kind(module):
    from .. import nn as fnn
    for cell, cls in (("lstm", fnn.LSTM), ("gru", fnn.GRU), ("rnn", fnn.RNN)):
        if isinstance(module, cls):
            return cell, "fastrnn"
    tnn = _torch_nn()
    if tnn is not None:
        for cell, cls in (("lstm", tnn.LSTM), ("gru", tnn.GRU), ("rnn", tnn.RNN)):
            if isinstance(module, cls):
                return cell, "torch"
    return None, None


class _RecurrentSpec:
    """What the exporter needs of a recurrent layer, from fastrnn.nn or torch.nn."""

    def __init__(self, module, cell, origin):
        self.module, self.cell = module, cell
        self.input_size, self.hidden_size = module.input_size, module.hidden_size
        self.num_layers = module.num_layers
        self.bias, self.batch_first = bool(module.bias), bool(module.batch_first)
        self.num_directions = 2 if module.bidirectional else 1
        if origin == "fastrnn":
            if module.variants:
                raise NotImplementedError(
                    f"{type(module).__name__} uses the variant options {sorted(module.variants)}, which ONNX's "
                    "standard recurrent operators do not express; export a layer without them")
            options = module.cell_options
            self.proj_size = int(options.get("proj_size", 0))
            self.reset_after = bool(options.get("reset_after", True))
            self.nonlinearity = options.get("nonlinearity", "tanh")
        else:
            self.proj_size = int(getattr(module, "proj_size", 0))
            self.reset_after = True
            self.nonlinearity = getattr(module, "nonlinearity", "tanh")
        if self.proj_size:
            raise NotImplementedError(
                f"{type(module).__name__} has proj_size={self.proj_size}: ONNX's standard LSTM operator has no "
                "projection (h = W_hr (o * tanh(c))), so this layer cannot be exported as standard ONNX nodes")
        self.dtype = _array(module.weight_ih_l0).dtype

    def weights(self, layer, direction):
        suffix = "_reverse" if direction else ""

        def get(name):
            return _array(getattr(self.module, f"{name}_l{layer}{suffix}", None))
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")


def _reorder(w, cell, hidden):
    """Gate blocks (along axis 0) from PyTorch's order to ONNX's."""
    return np.concatenate([w[k * hidden:(k + 1) * hidden] for k in _GATE_ORDER[cell]], axis=0)


# --------------------------------------------------------------------------- emitting

def _emit_recurrent_core(g, spec, x, lengths=None, h0=None, c0=None, prefix="rnn"):
    """Emit the stack on time-major x (T, B, I). Returns (y (T, B, D*H), h_n, c_n or None)."""
    cell, hidden, dirs = spec.cell, spec.hidden_size, spec.num_directions
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    seq_lens = "" if lengths is None else g.node("Cast", [lengths], f"{prefix}_sequence_lens", to=TensorProto.INT32)
    layer_input, finals_h, finals_c = x, [], []
    for layer in range(spec.num_layers):
        ws, rs, bs = [], [], []
        for direction in range(dirs):
            w_ih, w_hh, b_ih, b_hh = spec.weights(layer, direction)
            ws.append(_reorder(w_ih, cell, hidden))
            rs.append(_reorder(w_hh, cell, hidden))
            zeros = np.zeros(gates * hidden, g.dtype)
            b_ih = zeros if b_ih is None else _reorder(b_ih, cell, hidden)
            b_hh = zeros if b_hh is None else _reorder(b_hh, cell, hidden)
            bs.append(np.concatenate([b_ih, b_hh]))
        name = f"{prefix}_l{layer}"
        inputs = [layer_input, g.const(f"{name}_W", np.stack(ws)), g.const(f"{name}_R", np.stack(rs)),
                  g.const(f"{name}_B", np.stack(bs)), seq_lens]
        for state_name, state in (("h0", h0), ("c0", c0))[:2 if cell == "lstm" else 1]:
            if state is None:
                inputs.append("")
            elif spec.num_layers == 1:
                inputs.append(state)
            else:
                bounds = [g.ints(f"{name}_start", [layer * dirs]), g.ints(f"{name}_end", [(layer + 1) * dirs]),
                          g.ints(f"{name}_axis", [0])]
                inputs.append(g.node("Slice", [state, *bounds], f"{name}_{state_name}"))
        while inputs and inputs[-1] == "":
            inputs.pop()
        attributes = {"hidden_size": hidden, "direction": "bidirectional" if dirs == 2 else "forward"}
        if cell == "gru":
            attributes["linear_before_reset"] = 1 if spec.reset_after else 0
        elif cell == "rnn":
            attributes["activations"] = ["Relu" if spec.nonlinearity == "relu" else "Tanh"] * dirs
        n_out = 3 if cell == "lstm" else 2
        outs = g.node(_OPS[cell], inputs, name, outputs=n_out, **attributes)
        y4 = outs[0]  # (T, D, B, H)
        finals_h.append(outs[1])
        if cell == "lstm":
            finals_c.append(outs[2])
        if dirs == 1:
            layer_input = g.node("Squeeze", [y4, g.ints(f"{name}_axes", [1])], f"{name}_y")
        else:
            tbdh = g.node("Transpose", [y4], f"{name}_y_tbdh", perm=[0, 2, 1, 3])
            layer_input = g.node("Reshape", [tbdh, g.ints(f"{name}_shape", [0, 0, -1])], f"{name}_y")

    def stack(parts, hint):
        return parts[0] if len(parts) == 1 else g.node("Concat", parts, hint, axis=0)
    h_n = stack(finals_h, f"{prefix}_h_n")
    c_n = stack(finals_c, f"{prefix}_c_n") if cell == "lstm" else None
    return layer_input, h_n, c_n


def _emit_recurrent(g, module, x, context):
    """Exporter for recurrent layers inside a model: x in the layer's layout -> y in the same layout."""
    cell, origin = _recurrent_kind(module)
    spec = _RecurrentSpec(module, cell, origin)
    prefix = g.name(cell)
    if spec.batch_first:
        x = g.node("Transpose", [x], f"{prefix}_x_tm", perm=[1, 0, 2])
    y, _, _ = _emit_recurrent_core(g, spec, x, context.get("lengths"), prefix=prefix)
    if spec.batch_first:
        y = g.node("Transpose", [y], f"{prefix}_y_bf", perm=[1, 0, 2])
    return y


def _emit_linear(g, module, x, context):
    weight = _array(module.weight)
    prefix = g.name("linear")
    y = g.node("MatMul", [x, g.const(f"{prefix}_weight_t", np.ascontiguousarray(weight.T))], f"{prefix}_matmul")
    bias = getattr(module, "bias", None)
    if bias is not None:
        y = g.node("Add", [y, g.const(f"{prefix}_bias", _array(bias))], f"{prefix}_y")
    return y


def _emit_embedding(g, module, indices, context):
    prefix = g.name("embedding")
    return g.node("Gather", [g.const(f"{prefix}_weight", _array(module.weight)), indices], f"{prefix}_y", axis=0)


def _emit_identity(g, module, x, context):
    return x


def _emit_sequential(g, module, x, context):
    for child in module:
        x = _emit(g, child, x, context)
    return x


_EXPORTERS = []  # (type or predicate, function), searched in order


def register_exporter(module_type, function):
    """Teach :func:`export` a module type.

    ``function(graph, module, x, context) -> y``: given the :class:`Graph`, the
    module and the name of its input tensor, add nodes and return the name of its
    output tensor. ``context`` is a dict (``context["lengths"]``: name of the int64
    lengths input or None; ``context["initial_state"]``: whether the caller asked for
    state inputs; ``context["outputs"]``: a dict where an exporter may leave further
    tensors by output name, e.g. ``"h_n"``). Later registrations win over earlier ones.
    """
    _EXPORTERS.insert(0, (module_type, function))


def _emit(g, module, x, context):
    if _recurrent_kind(module)[0] is not None:
        return _emit_recurrent(g, module, x, context)
    for module_type, function in _EXPORTERS:
        if isinstance(module, module_type):
            return function(g, module, x, context)
    raise NotImplementedError(f"fastrnn.onnx cannot export {type(module).__module__}.{type(module).__name__}; "
                              "supported: RNN/LSTM/GRU, Linear, Embedding, Dropout, Sequential "
                              "(see fastrnn.onnx.register_exporter)")


def _register_builtin():
    from .. import nn as fnn
    register_exporter(fnn.Dropout, _emit_identity)
    register_exporter(fnn.Linear, _emit_linear)
    register_exporter(fnn.Embedding, _emit_embedding)
    register_exporter(fnn.Sequential, _emit_sequential)


_register_builtin()


def _register_torch():
    tnn = _torch_nn()
    if tnn is None:
        return
    for cls, function in ((tnn.Dropout, _emit_identity), (tnn.Identity, _emit_identity), (tnn.Linear, _emit_linear),
                          (tnn.Embedding, _emit_embedding), (tnn.Sequential, _emit_sequential)):
        if not any(t is cls for t, _ in _EXPORTERS):
            _EXPORTERS.append((cls, function))


# --------------------------------------------------------------------------- ready models

def _ready_model(module):
    """(input name, input elem type, input shape, outputs [(name, shape)], the export options it takes)
    for the ready models of fastrnn.models; None for anything else."""
    models = sys.modules.get("fastrnn.models")
    if models is None:
        return None
    if isinstance(module, (models.SequenceTagger, models.SequenceClassifier)):
        rnn = module.rnn
        if module.embedding is not None:
            spec_in = ("indices", TensorProto.INT64, ["batch", "time"])
        else:
            spec_in = ("x", None, ["batch", "time", rnn.input_size])
        tagger = isinstance(module, models.SequenceTagger)
        out_shape = ["batch", "time", module.head.out_features] if tagger else ["batch", module.head.out_features]
        return (*spec_in, [("y", out_shape)], {"lengths"})
    if isinstance(module, models.Forecaster):
        return ("x", None, ["batch", "time", module.input_size],
                [("y", ["batch", module.horizon, module.output_size])], set())
    if isinstance(module, models.CharLM):
        state = [module.rnn.num_layers, "batch", module.rnn.hidden_size]
        outputs = [("y", ["batch", "time", module.vocab_size]), ("h_n", state)]
        return ("indices", TensorProto.INT64, ["batch", "time"],
                outputs + ([("c_n", state)] if module.cell == "lstm" else []), {"initial_state"})
    return None


def _register_models():
    models = sys.modules.get("fastrnn.models")
    if models is None:
        return
    for cls, function in ((models.SequenceTagger, _emit_tagger), (models.SequenceClassifier, _emit_classifier),
                          (models.Forecaster, _emit_forecaster), (models.CharLM, _emit_char_lm)):
        if not any(t is cls for t, _ in _EXPORTERS):
            register_exporter(cls, function)


def _embed(g, module, x, context):
    return x if module.embedding is None else _emit_embedding(g, module.embedding, x, context)


def _emit_tagger(g, module, x, context):
    y = _emit_recurrent(g, module.rnn, _embed(g, module, x, context), context)
    return _emit_linear(g, module.head, y, context)


def _emit_classifier(g, module, x, context):
    cell, origin = _recurrent_kind(module.rnn)
    spec = _RecurrentSpec(module.rnn, cell, origin)
    e = _embed(g, module, x, context)
    x_tm = g.node("Transpose", [e], "classifier_x_tm", perm=[1, 0, 2]) if spec.batch_first else e
    lengths = context.get("lengths")
    y, h_n, _ = _emit_recurrent_core(g, spec, x_tm, lengths, prefix=cell)
    dirs, rows = spec.num_directions, spec.num_layers * spec.num_directions
    if module.pooling == "last":  # the top layer's final states, directions side by side
        top = g.node("Slice", [h_n, g.ints("pool_start", [rows - dirs]), g.ints("pool_end", [rows]),
                               g.ints("pool_axis", [0])], "pool_top")
        bdh = g.node("Transpose", [top], "pool_bdh", perm=[1, 0, 2])
        feat = g.node("Reshape", [bdh, g.ints("pool_shape", [0, -1])], "pool_last")
    else:  # outputs past each length are zero: sum over time, divide by the lengths (or T)
        total = g.node("ReduceSum", [y, g.ints("pool_axes", [0])], "pool_sum", keepdims=0)
        if lengths is None:
            steps = g.node("Gather", [g.node("Shape", [y], "pool_shape_y"), g.ints("pool_time", [0])], "pool_steps")
            count = g.node("Cast", [steps], "pool_count", to=g.elem_type)
        else:
            count = g.node("Cast", [lengths], "pool_count", to=g.elem_type)
            count = g.node("Unsqueeze", [count, g.ints("pool_unsqueeze", [1])], "pool_count_b1")
        feat = g.node("Div", [total, count], "pool_mean")
    return _emit_linear(g, module.head, feat, context)


def _spec(module):
    return _RecurrentSpec(module, *_recurrent_kind(module))


def _emit_forecaster(g, module, x, context):
    spec = _spec(module.rnn)
    x_tm = g.node("Transpose", [x], "forecaster_x_tm", perm=[1, 0, 2])
    _, h_n, _ = _emit_recurrent_core(g, spec, x_tm, prefix=spec.cell)
    top = g.node("Gather", [h_n, g.const("forecaster_top", np.array(spec.num_layers - 1, np.int64))],
                 "forecaster_h", axis=0)  # the top layer's final h (B, H); Dropout is the identity
    y = _emit_linear(g, module.head, top, context)
    return g.node("Reshape", [y, g.ints("forecaster_shape", [0, module.horizon, module.output_size])], "forecast")


def _emit_char_lm(g, module, x, context):
    spec = _spec(module.rnn)
    h0 = c0 = None
    if context.get("initial_state"):
        shape = [spec.num_layers, "batch", spec.hidden_size]
        h0 = g.add_input("h0", g.elem_type, shape)
        c0 = g.add_input("c0", g.elem_type, shape) if spec.cell == "lstm" else None
    ids_tm = g.node("Transpose", [x], "char_lm_ids_tm", perm=[1, 0])
    e = _emit_embedding(g, module.embedding, ids_tm, context)
    y, h_n, c_n = _emit_recurrent_core(g, spec, e, context.get("lengths"), h0, c0, prefix=spec.cell)
    outputs = context.setdefault("outputs", {})
    outputs["h_n"] = h_n
    if c_n is not None:
        outputs["c_n"] = c_n
    logits = _emit_linear(g, module.head, y, context)  # (T, B, V)
    return g.node("Transpose", [logits], "char_lm_logits", perm=[1, 0, 2])


# --------------------------------------------------------------------------- entry points

def _first_leaf(module):
    """The first non-container module (through Sequentials), for the input's type."""
    children = list(module) if hasattr(module, "__iter__") and not _recurrent_kind(module)[0] else None
    if children:
        return _first_leaf(children[0])
    return module


def _first_recurrent(module):
    if _recurrent_kind(module)[0] is not None:
        return module
    if hasattr(module, "__iter__"):
        for child in module:
            found = _first_recurrent(child)
            if found is not None:
                return found
    return None


def _model_dtype(module):
    params = module.parameters() if hasattr(module, "parameters") else []
    for p in params:
        return _array(p).dtype
    return np.dtype(np.float32)


def _output_width(module):
    """Feature width of a module's output, or None when unknown."""
    if _recurrent_kind(module)[0] is not None:
        return module.hidden_size * (2 if module.bidirectional else 1)
    for attr in ("out_features", "embedding_dim"):
        if hasattr(module, attr):
            return int(getattr(module, attr))
    if hasattr(module, "__iter__"):
        for child in reversed(list(module)):
            width = _output_width(child)
            if width is not None:
                return width
    return None


def to_model(module, *, lengths=False, initial_state=False, opset=DEFAULT_OPSET, dtype=None):
    """Build the ONNX ``ModelProto`` for ``module`` (see :func:`export`); checked with ``onnx.checker``."""
    _register_torch()
    _register_models()
    models = sys.modules.get("fastrnn.models")
    if models is not None and isinstance(module, models.Seq2Seq):
        raise TypeError("a Seq2Seq model is two graphs (encoder and one decoder step): "
                        "use fastrnn.onnx.export_seq2seq")
    cell, origin = _recurrent_kind(module)
    if cell is not None:
        spec = _RecurrentSpec(module, cell, origin)
        g = Graph(spec.dtype if dtype is None else dtype)
        dirs, layers = spec.num_directions, spec.num_layers
        seq_axes = ["batch", "time"] if spec.batch_first else ["time", "batch"]
        x = g.add_input("x", g.elem_type, seq_axes + [spec.input_size])
        lens = g.add_input("lengths", TensorProto.INT64, ["batch"]) if lengths else None
        h0 = c0 = None
        if initial_state:
            h0 = g.add_input("h0", g.elem_type, [layers * dirs, "batch", spec.hidden_size])
            if cell == "lstm":
                c0 = g.add_input("c0", g.elem_type, [layers * dirs, "batch", spec.hidden_size])
        x_tm = g.node("Transpose", [x], "x_time_major", perm=[1, 0, 2]) if spec.batch_first else x
        y, h_n, c_n = _emit_recurrent_core(g, spec, x_tm, lens, h0, c0, prefix=cell)
        if spec.batch_first:
            y = g.node("Transpose", [y], "y_batch_first", perm=[1, 0, 2])
        g.add_output("y", y, g.elem_type, seq_axes + [dirs * spec.hidden_size])
        state_shape = [layers * dirs, "batch", spec.hidden_size]
        g.add_output("h_n", h_n, g.elem_type, state_shape)
        if c_n is not None:
            g.add_output("c_n", c_n, g.elem_type, state_shape)
    elif _ready_model(module) is not None:
        name, elem_type, in_shape, outputs, options = _ready_model(module)
        for option, value in (("lengths", lengths), ("initial_state", initial_state)):
            if value and option not in options:
                raise ValueError(f"{option}=True is not supported when exporting {type(module).__name__}")
        g = Graph(_model_dtype(module) if dtype is None else dtype)
        x = g.add_input(name, g.elem_type if elem_type is None else elem_type, in_shape)
        lens = g.add_input("lengths", TensorProto.INT64, ["batch"]) if lengths else None
        context = {"lengths": lens, "initial_state": initial_state, "outputs": {}}
        context["outputs"]["y"] = _emit(g, module, x, context)
        for out_name, shape in outputs:
            g.add_output(out_name, context["outputs"][out_name], g.elem_type, shape)
    else:
        if initial_state:
            raise ValueError("initial_state=True is only supported when exporting a single recurrent layer")
        g = Graph(_model_dtype(module) if dtype is None else dtype)
        first, recurrent = _first_leaf(module), _first_recurrent(module)
        batch_first = recurrent is not None and bool(recurrent.batch_first)
        axes = ["batch", "time"] if batch_first else ["time", "batch"]
        if hasattr(first, "num_embeddings") and hasattr(first, "embedding_dim"):
            x = g.add_input("indices", TensorProto.INT64, axes)
        else:
            width = getattr(first, "in_features", None) or getattr(first, "input_size", None)
            x = g.add_input("x", g.elem_type, axes + [width])
        lens = g.add_input("lengths", TensorProto.INT64, ["batch"]) if lengths else None
        y = _emit(g, module, x, {"lengths": lens})
        width = _output_width(module)
        g.add_output("y", y, g.elem_type, axes + [width if width is not None else "features"])
    model = g.model(opset)
    onnx.checker.check_model(model, full_check=True)
    return model


def export(module, path=None, *, lengths=False, initial_state=False, opset=DEFAULT_OPSET, dtype=None):
    """Export ``module`` to ONNX; writes ``path`` when given and returns the ``onnx.ModelProto``.

    module: a recurrent layer (fastrnn.nn, torch.nn or fastrnn.torch LSTM/GRU/RNN), a
    Sequential of Embedding/Linear/Dropout/recurrent layers (fastrnn.nn or torch.nn), or a
    fastrnn.models SequenceTagger / SequenceClassifier / Forecaster / CharLM (a Seq2Seq
    goes through :func:`export_seq2seq`).
    lengths: add the int64 input ``lengths`` (B,) for variable-length batches (layers,
    Sequentials, tagger and classifier).
    initial_state: add ``h0`` (and ``c0``) inputs (a single recurrent layer, or CharLM).
    opset: the ONNX opset (default 17; 13 or newer).
    dtype: the model's float type (default: the module's). onnxruntime's CPU
    LSTM/GRU/RNN kernels run float32 only, so export float64 layers with
    ``dtype=np.float32`` to run them there (the weights are rounded once).
    Raises NotImplementedError for LSTM projections and unknown module types.
    """
    model = to_model(module, lengths=lengths, initial_state=initial_state, opset=opset, dtype=dtype)
    if path is not None:
        onnx.save(model, str(path) if not hasattr(path, "write") else path)
    return model


def export_seq2seq(model, encoder_path=None, decoder_path=None, *, lengths=False, opset=DEFAULT_OPSET, dtype=None):
    """Export a ``fastrnn.models.Seq2Seq`` as two ONNX graphs; returns ``(encoder, decoder)`` ModelProtos
    (each written to its path when given).

    Encoder: inputs ``src`` (B, Ts) int64 and, with ``lengths=True``, ``src_lengths``
    (B,) int64; outputs ``enc_y`` (B, Ts, H) (zero past each length), ``h_n`` (and
    ``c_n`` for an LSTM) (1, B, H), and with attention and lengths ``src_mask`` (B, Ts)
    bool (True at valid source positions).

    Decoder, one step: inputs ``token`` (B,) int64 (the previous token, ``bos_id``
    first), ``h0`` (and ``c0``) (1, B, H) (the encoder's final state first, then the
    previous step's), with attention ``enc_y`` and, with lengths, ``src_mask``;
    outputs ``logits`` (B, tgt_vocab) and the new state ``h_n`` (and ``c_n``).
    Greedy decoding as ``Seq2Seq.predict`` does it, with onnxruntime sessions::

        enc = dict(zip([o.name for o in enc_session.get_outputs()],
                       enc_session.run(None, {"src": src, "src_lengths": src_lengths})))
        wanted = {i.name for i in dec_session.get_inputs()}
        fixed = {k: enc[k] for k in ("enc_y", "src_mask") if k in wanted}
        state = {"h0": enc["h_n"], **({"c0": enc["c_n"]} if "c_n" in enc else {})}
        token = np.full(len(src), model.bos_id, np.int64)
        for t in range(max_len):
            logits, *new_state = dec_session.run(None, {"token": token, **state, **fixed})
            token = logits.argmax(-1)  # plus predict's eos_id bookkeeping when it is set
            state = dict(zip(state, new_state))
    """
    models = sys.modules.get("fastrnn.models")
    if models is None or not isinstance(model, models.Seq2Seq):
        raise TypeError(f"export_seq2seq needs a fastrnn.models.Seq2Seq, got {type(model).__name__}")
    dtype = _model_dtype(model) if dtype is None else dtype
    hidden, lstm = model.hidden_size, model.cell == "lstm"
    state_shape = [1, "batch", hidden]
    enc_shape = ["batch", "src_time", hidden]
    use_mask = lengths and model.attention

    g = Graph(dtype)
    src = g.add_input("src", TensorProto.INT64, ["batch", "src_time"])
    lens = g.add_input("src_lengths", TensorProto.INT64, ["batch"]) if lengths else None
    e = _emit_embedding(g, model.src_embedding, g.node("Transpose", [src], "src_tm", perm=[1, 0]), {})
    y, h_n, c_n = _emit_recurrent_core(g, _spec(model.encoder), e, lens, prefix="encoder")
    g.add_output("enc_y", g.node("Transpose", [y], "enc_y_bf", perm=[1, 0, 2]), g.elem_type, enc_shape)
    g.add_output("h_n", h_n, g.elem_type, state_shape)
    if lstm:
        g.add_output("c_n", c_n, g.elem_type, state_shape)
    if use_mask:
        axis, zero, one = (g.const(hint, np.array(v, np.int64)) for hint, v in (("axis", 1), ("zero", 0), ("one", 1)))
        steps = g.node("Gather", [g.node("Shape", [src], "src_shape"), axis], "src_steps", axis=0)
        positions = g.node("Range", [zero, steps, one], "positions")
        mask = g.node("Less", [g.node("Unsqueeze", [positions, g.ints("mask_axis0", [0])], "positions_1s"),
                               g.node("Unsqueeze", [lens, g.ints("mask_axis1", [1])], "lengths_b1")], "mask")
        g.add_output("src_mask", mask, TensorProto.BOOL, ["batch", "src_time"])
    encoder = g.model(opset, "fastrnn_seq2seq_encoder")

    g = Graph(dtype)
    token = g.add_input("token", TensorProto.INT64, ["batch"])
    h0 = g.add_input("h0", g.elem_type, state_shape)
    c0 = g.add_input("c0", g.elem_type, state_shape) if lstm else None
    enc_y = g.add_input("enc_y", g.elem_type, enc_shape) if model.attention else None
    mask = g.add_input("src_mask", TensorProto.BOOL, ["batch", "src_time"]) if use_mask else None
    ids = g.node("Unsqueeze", [token, g.ints("token_axis", [0])], "token_1b")  # (1, B): one time step
    e = _emit_embedding(g, model.tgt_embedding, ids, {})
    y, h_n, c_n = _emit_recurrent_core(g, _spec(model.decoder), e, None, h0, c0, prefix="decoder")
    dec = g.node("Transpose", [y], "dec_b1h", perm=[1, 0, 2])  # (B, 1, H)
    if model.attention:  # Luong dot attention over the encoder outputs, padded positions masked
        scores = g.node("MatMul", [dec, g.node("Transpose", [enc_y], "enc_bht", perm=[0, 2, 1])], "scores")
        if mask is not None:
            keep = g.node("Unsqueeze", [mask, g.ints("mask_axis", [1])], "mask_b1s")
            scores = g.node("Where", [keep, scores, g.const("masked", np.array(-1e9))], "scores_masked")
        weights = g.node("Softmax", [scores], "attention", axis=-1)
        ctx = g.node("MatMul", [weights, enc_y], "context")
        both = g.node("Concat", [ctx, dec], "context_dec", axis=-1)
        dec = g.node("Tanh", [_emit_linear(g, model.combine, both, {})], "attentional")
    logits = g.node("Squeeze", [_emit_linear(g, model.out, dec, {}), g.ints("step_axis", [1])], "step_logits")
    g.add_output("logits", logits, g.elem_type, ["batch", model.out.out_features])
    g.add_output("h_n", h_n, g.elem_type, state_shape)
    if lstm:
        g.add_output("c_n", c_n, g.elem_type, state_shape)
    decoder = g.model(opset, "fastrnn_seq2seq_decoder")

    for proto, path in ((encoder, encoder_path), (decoder, decoder_path)):
        onnx.checker.check_model(proto, full_check=True)
        if path is not None:
            onnx.save(proto, str(path) if not hasattr(path, "write") else path)
    return encoder, decoder
