"""Drop-in counterparts of ``torch.nn.RNN``, ``LSTM`` and ``GRU`` on NumPy arrays.

Same constructor arguments, defaults, parameter names and shapes, call signature
and output shapes as torch (including ``batch_first``, unbatched 2-D input and
stacked/bidirectional states), so a torch ``state_dict`` loads unchanged. Each
(layer, direction) runs one fused kernel call over the whole sequence.

``lengths`` (B,) gives PyTorch packed-sequence results from padded input: each
sequence's outputs past its length are zero, its final state is taken at its last
valid step, and the reverse direction starts at each sequence's own last step.
"""
import contextlib

import numpy as np

from .. import _finite
from .. import _validate as check
from .. import functional as F
from . import variants as _variants
from .module import Module, Parameter

__all__ = ["RNN", "LSTM", "GRU"]


def _reverse_within_lengths(a, lengths):
    """Reverse the first (time) axis of a (T, B, F) array within each sequence's length.

    Positions past a sequence's length stay where they are. The map is its own inverse.
    """
    if lengths is None:
        return np.ascontiguousarray(a[::-1])
    steps = a.shape[0]
    t = np.arange(steps)[:, None]
    source = np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
    return np.take_along_axis(a, source[:, :, None], axis=0)


@contextlib.contextmanager
def _naming_layer(layer, direction, lengths, steps, user_views=None):
    """Re-raise a check_finite error naming the layer and direction, with the time step
    in the input's order (the reverse pass runs on time reversed within each length).

    ``user_views`` maps the names of tensors that are the caller's own arrays (x and
    h0 of the first layer, dy of the last, ...) to a function turning the kernel's
    index and shape into the caller's (see ``_RecurrentBase._user_view``); other
    tensors keep this direction's time-major coordinates, with time in input order.
    """
    try:
        yield
    except _finite.NonFiniteError as error:
        step, index = error.step, error.index
        if direction == 1 and step is not None:
            n = steps if lengths is None else int(lengths[error.sequence])
            step = n - 1 - step if step < n else step
            index = (step,) + tuple(index[1:])
        message, shape = str(error), error.shape
        view = (user_views or {}).get(error.tensor)
        if view is not None:
            index, shape = view(index, shape)
        where = f"layer {layer}" + (" reverse direction" if direction == 1 else "")
        head = message.split(" at time step ")[0] if error.step is not None else message.split(" (first non-finite")[0]
        at = f" at time step {step} (sequence {error.sequence}; " if step is not None else " ("
        message = f"{head}{at}first non-finite element at index {index} of shape {shape}) [{where}]"
        raise _finite.NonFiniteError(message, error.tensor, index, error.value, step, error.sequence, shape) from None


class _RecurrentBase(Module, register=False):
    """Stacked, optionally bidirectional recurrent layer (shared by RNN, LSTM, GRU)."""

    _cell = None       # "rnn" | "lstm" | "gru"
    _gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=np.float32, seed=None, init="torch", variants=None,
                 **cell_options):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            check.positive_int(name, value)
        dropout = check.probability("dropout", dropout)
        dtype = check.float_dtype(dtype)
        seed = check.seed(seed)
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.dropout, self.bidirectional = float(dropout), bool(bidirectional)
        # An int seed travels with save/load; a Generator cannot (it is not JSON).
        self.dtype, self.seed = dtype, (seed if isinstance(seed, int) else None)
        self.cell_options = cell_options
        self.variants = variants or {}  # the non-default variant options (see _variant_options)
        if self.variants and self.proj_size:
            raise ValueError(f"proj_size cannot be combined with the variant options {sorted(self.variants)}")
        self._rng = np.random.default_rng(seed)
        self._saved = None
        self._device = "cpu"
        bound = 1.0 / np.sqrt(self.hidden_size)
        width = self.gate_count * self.hidden_size
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self.output_size * self.num_directions
            for suffix in self._suffixes():
                shapes = [("weight_ih", (width, layer_input)), ("weight_hh", (width, self.output_size))]
                if self.bias:
                    shapes += [("bias_ih", (width,)), ("bias_hh", (width,))]
                if self.proj_size:
                    shapes += [("weight_hr", (self.proj_size, self.hidden_size))]
                for name, shape in shapes:  # torch's registration order and U(-1/sqrt(H), 1/sqrt(H))
                    data = self._rng.uniform(-bound, bound, shape).astype(dtype)
                    self.register_parameter(f"{name}_l{layer}{suffix}", Parameter(data))
                for name, data in self._variant_parameters(bound):
                    self.register_parameter(f"{name}_l{layer}{suffix}", Parameter(data.astype(dtype)))
        self.init = init
        if init != "torch":  # the default above is torch's; other schemes re-draw (fastrnn.init)
            from ..init import initialize
            initialize(self, init, seed=self._rng)

    @property
    def gate_count(self):
        """G, the number of gate blocks in weight_ih / weight_hh (3 for a coupled-gate LSTM)."""
        return 3 if self.variants.get("coupled_gates") else self._gates

    def _variant_parameters(self, bound):
        """(name, initial value) of the variant parameters of one layer and direction (nn.variants)."""
        return _variants.parameters(self._cell, self.variants, self.hidden_size, self.gate_count * self.hidden_size,
                                    self._rng, bound)

    def _variant_arguments(self, layer, suffix, shape, training):
        """Variant keywords of fastrnn.functional for one (layer, direction) call on input of shape (T, B, I)."""
        return _variants.arguments(self, self._cell, layer, suffix, shape, training)

    def _variant_grads(self, layer, suffix, grads):
        """(Parameter, gradient) pairs of the variant parameters from one backward call."""
        return _variants.gradients(self, self._cell, layer, suffix, grads) if self.variants else []

    @property
    def proj_size(self):
        """Width of the LSTM projection (0: none); always 0 for RNN and GRU."""
        return self.cell_options.get("proj_size", 0)

    @property
    def output_size(self):
        """Width of h and of each direction's output: proj_size when set, else hidden_size."""
        return self.proj_size or self.hidden_size

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def _suffixes(self):
        return ("", "_reverse") if self.bidirectional else ("",)

    def config(self):
        return dict(input_size=self.input_size, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    bias=self.bias, batch_first=self.batch_first, dropout=self.dropout,
                    bidirectional=self.bidirectional, dtype=self.dtype, seed=self.seed, **self.cell_options,
                    **self.variants,
                    **({} if self.init == "torch" else {"init": self.init}))

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        for name, value in {**self.cell_options, **self.variants}.items():
            text += f", {name}={value!r}"
        return text + f", dtype={self.dtype}"

    def _weights(self, layer, suffix):
        """(weight_ih, weight_hh, bias_ih, bias_hh, weight_hr) Parameters; None where absent."""
        def param(name):
            return getattr(self, f"{name}_l{layer}{suffix}")
        biases = [param("bias_ih"), param("bias_hh")] if self.bias else [None, None]
        return [param("weight_ih"), param("weight_hh"), *biases, param("weight_hr") if self.proj_size else None]

    @property
    def device(self):
        """Where the kernels run: "cpu" or "cuda" (see :meth:`to`)."""
        return self._device

    def to(self, device):
        """Run this layer's kernels on ``device`` ("cpu" or "cuda"); returns self.

        Parameters stay NumPy arrays on the host (their ``.grad`` too); on "cuda" each
        call copies them to the GPU, runs the CUDA kernels and returns NumPy results,
        so a model mixes CPU and GPU layers freely. Raises ``RuntimeError`` naming what
        is missing when CUDA is unusable.
        """
        device = check.choice("device", device, ("cpu", "cuda"))
        if device == "cuda":
            from ..cuda import require  # imported only when asked for: import fastrnn stays CUDA-free
            require()
        self._device = device
        return self

    def stream(self, batch_size=1):
        """A :class:`fastrnn.nn.streaming.Stream` for step-by-step inference with this
        layer's weights (unidirectional layers only): ``s.step(x_t)`` per time step or
        chunk, ``s.reset()``, ``s.state``. Layers with variant options get a
        :class:`fastrnn.nn.variant_stream.VariantStream` (same interface, a layer call
        per step)."""
        if self.variants:  # no per-step compiled driver for the variant cells: layer calls per step
            from .variant_stream import VariantStream
            return VariantStream(self, batch_size)
        from .streaming import Stream  # streaming builds on this module
        return Stream(self, batch_size)

    # -- shapes in and out
    def _prepare_input(self, x, lengths):
        x = check.floats("x", x, self.dtype, "the layer")
        x = check.float_array("x", x, x.ndim if x.ndim in (2, 3) else 3, self.dtype, "the layer")
        if x.shape[-1] != self.input_size:  # before any transposition: quote the caller's shape
            raise ValueError(f"x must have {self.input_size} features (input_size) in its last axis, "
                             f"got shape {tuple(x.shape)}")
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        x = np.ascontiguousarray(x)
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"x must have at least one time step and one sequence, got shape {tuple(x.shape)}")
        if lengths is not None:
            lengths = check.lengths_array(lengths, x.shape[1], x.shape[0])
        return x, unbatched, lengths

    def _prepare_state(self, name, value, batch, width, unbatched):
        layers = self.num_layers * self.num_directions
        if value is None:
            return np.zeros((layers, batch, width), self.dtype)
        value = check.float_array(name, value, 2 if unbatched else 3, self.dtype, "the layer")
        if unbatched:
            value = value[:, None, :]
        check.expect_shape(name, value, (layers, batch, width), "(num_layers * num_directions, B, H)")
        return value

    def _output(self, y, unbatched):
        if unbatched:
            return y[:, 0]
        return np.ascontiguousarray(y.transpose(1, 0, 2)) if self.batch_first else y

    def _state_out(self, state, unbatched):
        return state[:, 0] if unbatched else state

    # -- the stack
    def _run(self, x, states, lengths, check_finite=False, unbatched=False):
        """Run every layer and direction. states: list of (L*D, B, H) initial states;
        ``unbatched``: the caller passed 2-D input (for check_finite messages).

        Returns (y (T, B, D*H), final states list) and keeps what backward needs when training.
        """
        training = self.training
        saved_layers = []
        finals = [np.empty_like(s) for s in states]
        layer_input = x
        for layer in range(self.num_layers):
            mask = None
            if layer > 0 and training and self.dropout > 0:
                keep = 1.0 - self.dropout
                mask = (self._rng.random(layer_input.shape) < keep).astype(self.dtype) / self.dtype.type(keep)
                layer_input = layer_input * mask
            layer_input, contexts = self._run_layer(layer, layer_input, states, lengths, training, finals,
                                                    check_finite, unbatched=unbatched)
            saved_layers.append((mask, contexts))
        self._saved = (saved_layers, lengths, x.shape) if training else None
        return layer_input, finals

    def _run_layer(self, layer, layer_input, states, lengths, training, finals=None, check_finite=False,
                   regularized=None, unbatched=False):
        """Run every direction of one layer on its (T, B, F) input.

        Returns (output (T, B, D*H), one context per direction); each direction's final
        states go into ``finals`` (lists of (L*D, B, H) arrays) when given.
        ``regularized`` (default: ``training``) draws the variant regularizers' training
        masks; False uses their eval form (no dropout, zoneout's expectation).
        """
        regularized = training if regularized is None else regularized
        outputs, contexts = [], []
        for direction, suffix in enumerate(self._suffixes()):
            index = layer * self.num_directions + direction
            weights = [None if p is None else p.data for p in self._weights(layer, suffix)]
            seq = layer_input if direction == 0 else _reverse_within_lengths(layer_input, lengths)
            variant = self._variant_arguments(layer, suffix, seq.shape, regularized)
            views = self._user_views(layer, direction, unbatched, "x" if layer == 0 else None,
                                     "y" if layer == self.num_layers - 1 else None, ("h0", "c0", "h_n", "c_n"))
            with _naming_layer(layer, direction, lengths, layer_input.shape[0], views):
                result = self._call_cell(seq, weights, [s[index] for s in states], lengths, training,
                                         check_finite=check_finite, **variant)
            y_dir, final, ctx = result[0], result[1:-1], result[-1]
            if finals is not None:
                for store, value in zip(finals, final):
                    store[index] = value
            outputs.append(y_dir if direction == 0 else _reverse_within_lengths(y_dir, lengths))
            contexts.append(ctx)
        return (outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=2)), contexts

    def _user_views(self, layer, direction, unbatched, input_name, output_name, state_names):
        """For check_finite messages: index maps from one direction's kernel tensors to
        the caller's arrays. ``input_name`` (x or dx of the first layer: shared by both
        directions), ``output_name`` (y or dy of the last layer: this direction's feature
        block of D*H) and the ``state_names`` ((B, W) slices of (L*D, B, W) states)."""
        batch_first = self.batch_first
        stack = layer * self.num_directions + direction

        def timed(offset, width):
            def view(index, shape):
                index = (index[0], index[1], index[2] + offset)
                shape = (shape[0], shape[1], width or shape[2])
                if unbatched:
                    return (index[0], index[2]), (shape[0], shape[2])
                if batch_first:
                    return (index[1], index[0], index[2]), (shape[1], shape[0], shape[2])
                return index, shape
            return view

        def state(index, shape):
            layers = self.num_layers * self.num_directions
            if unbatched:
                return (stack, index[1]), (layers, shape[1])
            return (stack,) + tuple(index), (layers,) + tuple(shape)

        views = {name: state for name in state_names}
        if input_name:
            views[input_name] = timed(0, None)
        if output_name:
            width = self.output_size
            views[output_name] = timed(direction * width, width * self.num_directions)
        return views

    def _backward_stack(self, dy, d_finals, clip_per_step=None, check_finite=False, unbatched=False):
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a forward call in training mode first "
                               "(call .train() before the forward; eval() keeps nothing for backward)")
        saved_layers, lengths, x_shape = self._saved
        hidden = self.output_size
        d_initial = [np.empty_like(d) for d in d_finals]
        d_out = dy
        for layer in range(self.num_layers - 1, -1, -1):
            mask, contexts = saved_layers[layer]
            d_in = None
            for direction, suffix in enumerate(self._suffixes()):
                index = layer * self.num_directions + direction
                dy_dir = d_out[:, :, direction * hidden:(direction + 1) * hidden]
                if direction == 1:
                    dy_dir = _reverse_within_lengths(dy_dir, lengths)
                views = self._user_views(layer, direction, unbatched, "dx" if layer == 0 else None,
                                         "dy" if layer == self.num_layers - 1 else None,
                                         ("dh_n", "dc_n", "dh0", "dc0"))
                with _naming_layer(layer, direction, lengths, x_shape[0], views):
                    grads = self._call_backward(contexts[direction], np.ascontiguousarray(dy_dir),
                                                [d[index] for d in d_finals], clip_per_step=clip_per_step,
                                                check_finite=check_finite)
                for store, value in zip(d_initial, self._initial_state_grads(grads)):
                    store[index] = value
                params = self._weights(layer, suffix)
                weight_grads = (grads.dw_ih, grads.dw_hh, grads.db_ih, grads.db_hh, getattr(grads, "dw_hr", None))
                for param, grad in zip(params, weight_grads):
                    if param is not None:
                        param.accumulate_grad(grad, copy=False)
                for param, grad in self._variant_grads(layer, suffix, grads):
                    param.accumulate_grad(grad, copy=False)
                dx = grads.dx if direction == 0 else _reverse_within_lengths(grads.dx, lengths)
                d_in = dx if d_in is None else d_in + dx
            if mask is not None:
                d_in = d_in * mask
            d_out = d_in
        return d_out, d_initial

    def _dy_array(self, dy, y_shape_tm, unbatched):
        dy = check.float_array("dy", dy, 2 if unbatched else 3, self.dtype, "the layer")
        steps, batch, width = y_shape_tm
        expected = (steps, width) if unbatched else ((batch, steps, width) if self.batch_first else y_shape_tm)
        check.expect_shape("dy", dy, expected, "the shape of the forward output")
        if unbatched:
            dy = dy[:, None, :]
        elif self.batch_first:
            dy = dy.transpose(1, 0, 2)
        return np.ascontiguousarray(dy)


class _SingleStateRecurrent(_RecurrentBase, register=False):
    """RNN and GRU: one state tensor h."""

    def forward(self, x, h0=None, lengths=None, check_finite=False):
        """Run the layer over a sequence.

        x: (T, B, I), or (B, T, I) with ``batch_first``, or unbatched (T, I); float of
        the layer's dtype. h0: (num_layers * num_directions, B, H) or None (zeros).
        lengths: (B,) ints in 1..T or None. Returns ``(y, h_n)``: y (T, B, D*H) (or
        batch-first / unbatched like x), h_n (num_layers * num_directions, B, H).
        ``check_finite=True`` raises :class:`fastrnn.NonFiniteError` naming the layer,
        tensor and first time step holding a NaN or Inf (else they propagate).
        """
        x, unbatched, lengths = self._prepare_input(x, lengths)
        h0 = self._prepare_state("h0", h0, x.shape[1], self.hidden_size, unbatched)
        y, (h_n,) = self._run(x, [h0], lengths, check_finite, unbatched)
        self._shape = (y.shape, unbatched)
        return self._output(y, unbatched), self._state_out(h_n, unbatched)

    def backward(self, dy, dh_n=None, clip_per_step=None, check_finite=False):
        """Gradients for the last training-mode forward; accumulates every parameter's ``.grad``.

        dy: like the forward's y; dh_n: like its h_n, or None. Returns ``(dx, dh0)`` shaped
        like the forward's x and h0. ``clip_per_step=c`` clips every step's dL/dh_t to
        [-c, c] inside each layer's BPTT (Graves); ``check_finite`` as in :meth:`forward`.
        """
        if self._saved is None:
            return self._backward_stack(None, None)  # raises the explanatory error
        y_shape, unbatched = self._shape
        dy = self._dy_array(dy, y_shape, unbatched)
        dh_n = self._prepare_state("dh_n", dh_n, y_shape[1], self.hidden_size, unbatched)
        dx, (dh0,) = self._backward_stack(dy, [dh_n], clip_per_step, check_finite, unbatched)
        return self._output(dx, unbatched), self._state_out(dh0, unbatched)

    def _initial_state_grads(self, grads):
        return (grads.dh0,)


class RNN(_SingleStateRecurrent):
    """Elman RNN, ``torch.nn.RNN``'s drop-in: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

    Extra arguments beyond torch's: ``dtype`` (float32 or float64), ``seed``
    (initialisation and dropout masks) and ``init`` (a :func:`fastrnn.init.initialize`
    scheme: "torch", "xavier", "orthogonal", "irnn").
    """

    _cell, _gates = "rnn", 1

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype=np.float32, seed=None, init="torch"):
        check.choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype, seed, init, nonlinearity=nonlinearity)

    def _call_cell(self, x, weights, states, lengths, training, **variant):
        return F.rnn(x, *weights[:4], states[0], lengths, training, device=self._device, **self.cell_options,
                     **variant)

    def _call_backward(self, ctx, dy, d_finals, **safety):
        return F.rnn_backward(ctx, dy, d_finals[0], **safety)


class GRU(_SingleStateRecurrent):
    """GRU, ``torch.nn.GRU``'s drop-in (gates r, z, n).

    ``reset_after=False`` switches to the Cho et al. 2014 form (Keras
    ``reset_after=False``); the default is torch's. Extra arguments: ``dtype``, ``seed``, ``init`` (see RNN).

    Variant options (fused in the kernels; see :mod:`fastrnn.nn.variants` for the
    parameter names): ``layer_norm`` (input and recurrent pre-activations normalized
    separately), ``input_dropout``, ``recurrent_dropout`` (one mask per sequence),
    ``zoneout`` (on h) and ``weight_dropout`` (DropConnect on weight_hh). Layer norm,
    recurrent dropout and zoneout need ``reset_after=True``.
    """

    _cell, _gates = "gru", 3

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, reset_after=True, dtype=np.float32, seed=None, init="torch",
                 layer_norm=False, input_dropout=0.0, recurrent_dropout=0.0, zoneout=0.0, weight_dropout=0.0):
        variants = _variants.check_options("gru", dict(
            layer_norm=layer_norm, input_dropout=input_dropout, recurrent_dropout=recurrent_dropout,
            zoneout=zoneout, weight_dropout=weight_dropout))
        reset_after = check.flag("reset_after", reset_after)
        needs_reset_after = sorted(set(variants) & {"layer_norm", "recurrent_dropout", "zoneout"})
        if needs_reset_after and not reset_after:
            raise ValueError(f"{needs_reset_after} need reset_after=True (the reset-before GRU has no such kernel)")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype, seed, init, variants=variants, reset_after=reset_after)

    def _call_cell(self, x, weights, states, lengths, training, **variant):
        return F.gru(x, *weights[:4], states[0], lengths, training, device=self._device, **self.cell_options,
                     **variant)

    def _call_backward(self, ctx, dy, d_finals, **safety):
        return F.gru_backward(ctx, dy, d_finals[0], **safety)


class LSTM(_RecurrentBase):
    """LSTM, ``torch.nn.LSTM``'s drop-in (gates i, f, g, o).

    Call ``y, (h_n, c_n) = lstm(x, hx=None, lengths=None)``. ``proj_size > 0`` adds
    torch's projection h = W_hr (o * tanh(c)) (parameters ``weight_hr_l{k}``, h and
    y of width proj_size). Extra arguments: ``dtype``, ``seed``, ``init`` (see RNN).

    Variant options (fused in the kernels; see :mod:`fastrnn.nn.variants` for the
    parameter names): ``peephole`` (Gers et al.: c_{t-1} into i and f, c_t into o),
    ``coupled_gates`` (CIFG: i = 1 - f, no input-gate weights), ``cell_clip``
    (cuDNN-style clip of c), ``layer_norm`` (input and recurrent pre-activations and
    the cell, each normalized with a learned gain), ``input_dropout`` and
    ``recurrent_dropout`` (one mask per sequence), ``zoneout`` (p or (p_h, p_c)) and
    ``weight_dropout`` (DropConnect on weight_hh). Not combinable with proj_size.
    """

    _cell, _gates = "lstm", 4

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype=np.float32, seed=None, init="torch",
                 peephole=False, coupled_gates=False, cell_clip=None, layer_norm=False, input_dropout=0.0,
                 recurrent_dropout=0.0, zoneout=0.0, weight_dropout=0.0):
        check.positive_int("hidden_size", hidden_size)  # before it is compared with proj_size
        if isinstance(proj_size, bool) or not isinstance(proj_size, (int, np.integer)) or proj_size < 0:
            raise ValueError(f"proj_size must be a non-negative integer, got {proj_size!r}")
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size ({hidden_size}), got {proj_size}")
        options = {"proj_size": int(proj_size)} if proj_size else {}
        variants = _variants.check_options("lstm", dict(
            peephole=peephole, coupled_gates=coupled_gates, cell_clip=cell_clip, layer_norm=layer_norm,
            input_dropout=input_dropout, recurrent_dropout=recurrent_dropout, zoneout=zoneout,
            weight_dropout=weight_dropout))
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype, seed, init, variants=variants, **options)

    def forward(self, x, hx=None, lengths=None, check_finite=False):
        """Run the layer over a sequence.

        x: (T, B, I), or (B, T, I) with ``batch_first``, or unbatched (T, I).
        hx: ``(h0, c0)``, each (num_layers * num_directions, B, H), or None (zeros).
        Returns ``(y, (h_n, c_n))`` shaped like torch's. ``check_finite``: see RNN.forward.
        """
        x, unbatched, lengths = self._prepare_input(x, lengths)
        h0, c0 = (None, None) if hx is None else self._pair("hx", hx)
        h0 = self._prepare_state("h0", h0, x.shape[1], self.output_size, unbatched)
        c0 = self._prepare_state("c0", c0, x.shape[1], self.hidden_size, unbatched)
        y, (h_n, c_n) = self._run(x, [h0, c0], lengths, check_finite, unbatched)
        self._shape = (y.shape, unbatched)
        return self._output(y, unbatched), (self._state_out(h_n, unbatched), self._state_out(c_n, unbatched))

    def backward(self, dy, d_state=None, clip_per_step=None, check_finite=False):
        """Gradients for the last training-mode forward; accumulates every parameter's ``.grad``.

        dy: like the forward's y; d_state: ``(dh_n, dc_n)`` (either may be None) or None.
        Returns ``(dx, (dh0, dc0))`` shaped like the forward's x and hx.
        ``clip_per_step``, ``check_finite``: see RNN.backward.
        """
        if self._saved is None:
            return self._backward_stack(None, None)  # raises the explanatory error
        y_shape, unbatched = self._shape
        dy = self._dy_array(dy, y_shape, unbatched)
        dh_n, dc_n = (None, None) if d_state is None else self._pair("d_state", d_state)
        dh_n = self._prepare_state("dh_n", dh_n, y_shape[1], self.output_size, unbatched)
        dc_n = self._prepare_state("dc_n", dc_n, y_shape[1], self.hidden_size, unbatched)
        dx, (dh0, dc0) = self._backward_stack(dy, [dh_n, dc_n], clip_per_step, check_finite, unbatched)
        return self._output(dx, unbatched), (self._state_out(dh0, unbatched), self._state_out(dc0, unbatched))

    @staticmethod
    def _pair(name, value):
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"{name} must be a pair (h, c), got {type(value).__name__}")
        return value

    def _call_cell(self, x, weights, states, lengths, training, **variant):
        return F.lstm(x, *weights[:4], states[0], states[1], lengths, training, w_hr=weights[4],
                      device=self._device, **variant)

    def _call_backward(self, ctx, dy, d_finals, **safety):
        return F.lstm_backward(ctx, dy, d_finals[0], d_finals[1], **safety)

    def _initial_state_grads(self, grads):
        return grads.dh0, grads.dc0
