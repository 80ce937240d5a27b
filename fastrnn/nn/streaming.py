"""Streaming inference: run a recurrent layer a step (or a chunk) at a time.

A :class:`Stream` keeps the state of every layer of a unidirectional ``RNN``,
``LSTM`` or ``GRU`` between calls, so feeding a sequence in chunks of any sizes
gives the same outputs and final state as one call of the layer in eval mode
(``stream.step(x[:5]); stream.step(x[5:])`` == ``layer.eval()(x)``).
It is inference only: no dropout, no backward.

    s = Stream(lstm, batch_size=1)      # or lstm.stream(batch_size=1)
    for x_t in frames:                  # x_t (B, I), or (I,) when batch_size == 1
        y_t = s.step(x_t)               # (B, H_out): a read-only view, see step()
    y = s.step(chunk)                   # chunk (T, B, I) (or (B, T, I) if batch_first)
    h, c = s.state                      # copies, shaped like the layer's h_n, c_n
    s.reset()                           # zero state

How the single step stays cheap. A Numba dispatch costs more the more array
arguments it takes (DESIGN.md), so everything a step needs lives in three flat
buffers allocated once, at construction: ``params`` (per layer W_ih, W_hh, the
packed W_hh^T of the small-batch path, the summed bias; W_hr for projected LSTMs),
``state`` (h and c of every layer plus the kernels' fixed scratch) and ``seq`` (per
layer the output y and the gate workspace of one step). A compiled driver takes
``(x, params, state, seq, meta)`` - five arguments whatever the depth -, carves the
per-layer views out of the buffers using offsets stored in the int64 ``meta`` array,
and calls the fused layer kernels (through one adapter per cell below, the only place
that spells the kernels' signatures) with T = 1. Nothing is allocated per step; a
chunk allocates a ``seq`` buffer for its T steps.

Weights are a snapshot: the stream copies (and packs) the layer's weights when it is
built. After changing the layer's weights (training, ``load_state_dict``) call
:meth:`Stream.refresh`; the state is kept.
"""
import numpy as np

from .. import _validate as check
from numba import carray, types
from numba.extending import intrinsic

from .._jit import inline_kernel, kernel
from ..kernels.blas import SMALL_BATCH
from ..kernels.gru import gru_forward_kernel, gru_reset_before_forward_kernel
from ..kernels.lstm import lstm_forward_kernel
from ..kernels.rnn import rnn_forward_kernel

__all__ = ["Stream"]

_ndarray = np.ndarray
_FIELDS = 4  # ints per view record in meta: start, d0, d1, d2
_HEADER = 4  # meta[0:4] = layers, batch, flag, index of the first record; then lengths (B,)


# --------------------------------------------------------------------------- kernel adapters
# The one place that spells each kernel's signature: a signature change is fixed here.

@inline_kernel
def _lstm_layer(x, w_ih, w_ih_t, w_hh, w_hh_t, w_hr, w_hr_t, bias, h, c, lengths, y, gates, c_all, m_all, h_proj):
    lstm_forward_kernel(x, (w_ih, w_ih_t, w_hh, w_hh_t, w_hr, w_hr_t), bias, h, c, lengths, y, gates, c_all,
                        m_all, h_proj, False)


@inline_kernel
def _gru_layer(x, w_ih, w_ih_t, w_hh, w_hh_t, b_1, b_2, b_3, h, lengths, y, gates, h_n_all, scratch, reset_after):
    if reset_after:  # b_1 = b_ih + b_hh, b_2 = b_ih, b_3 = b_hh, scratch = h_proj (B, 3H)
        gru_forward_kernel(x, (w_ih, w_ih_t, w_hh, w_hh_t), (b_1, b_2, b_3), h, lengths, y, gates, h_n_all,
                           scratch, False)
    else:  # b_1 = b_ih + b_hh, b_2 and b_3 unused, scratch = reset_h (B, H)
        gru_reset_before_forward_kernel(x, (w_ih, w_ih_t, w_hh, w_hh_t), b_1, h, lengths, y, gates, scratch, False)


@inline_kernel
def _rnn_layer(x, w_ih, w_ih_t, w_hh, w_hh_t, bias, h, lengths, y, pre, use_relu):
    rnn_forward_kernel(x, (w_ih, w_ih_t, w_hh, w_hh_t), bias, h, lengths, y, pre, use_relu)


# --------------------------------------------------------------------------- compiled drivers
# Each reads its per-layer views from meta in the order of the matching _*_views below.

@intrinsic
def _element_pointer(typingctx, buf, offset):
    """Pointer to ``buf[offset]`` (1-D buffer), for :func:`numba.carray` views."""
    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.gep(array.data, [args[1]])
    return types.CPointer(buf.dtype)(buf, offset), codegen


# The views below are built with numba.carray on a raw pointer: no slice bounds
# arithmetic, no reshape checks and, above all, no reference counting (they carry no
# meminfo), which made carving a dozen views per step cost ~0.7 us. They are valid
# while the Stream holds its buffers, i.e. for the duration of a driver call.

@inline_kernel
def _vec(buf, meta, i):
    return carray(_element_pointer(buf, meta[i]), (meta[i + 1],))


@inline_kernel
def _mat(buf, meta, i):
    return carray(_element_pointer(buf, meta[i]), (meta[i + 1], meta[i + 2]))


@inline_kernel
def _mat_or_empty(buf, meta, i, empty):
    """_mat, or the shared ``empty`` (0, 0) view when the record is empty: carving a
    view costs tens of ns (slice, reshape, reference counting) and unused ones abound."""
    if meta[i + 1] * meta[i + 2] == 0:
        return empty
    return _mat(buf, meta, i)


@inline_kernel
def _cube_or_empty(buf, meta, i, empty):
    """_cube, or the shared ``empty`` 3-D view when the record is empty (see _mat_or_empty)."""
    if meta[i + 1] * meta[i + 2] * meta[i + 3] == 0:
        return empty
    return _cube(buf, meta, i)


@inline_kernel
def _cube(buf, meta, i):
    return carray(_element_pointer(buf, meta[i]), (meta[i + 1], meta[i + 2], meta[i + 3]))


@inline_kernel
def _seq(buf, meta, i, steps):
    start = meta[i] * steps  # start is per step
    return carray(_element_pointer(buf, start), (steps, meta[i + 1], meta[i + 2]))


@inline_kernel
def _begin(x, meta):
    """(time-major 3-D view of x, lengths, first record); sets every length to T.

    x is (T*B, I), or (I,) for one unbatched step."""
    batch, n_in = meta[1], x.shape[-1]
    steps = x.size // (batch * n_in)
    lengths = meta[_HEADER:_HEADER + batch]
    lengths[:] = steps
    return x.reshape(steps, batch, n_in), lengths, meta[3]


@kernel
def _lstm_stack(x, params, state, seq, meta):
    """Run every LSTM layer over x (T*B, I); state updated in place, outputs in seq."""
    inp, lengths, r = _begin(x, meta)
    steps = inp.shape[0]
    empty2, empty3 = params[:0].reshape(0, 0), params[:0].reshape(0, 0, 0)
    for _ in range(meta[0]):
        w_ih = _mat(params, meta, r)
        w_ih_t = _mat_or_empty(params, meta, r + 4, empty2)
        w_hh = _mat(params, meta, r + 8)
        w_hh_t = _mat_or_empty(params, meta, r + 12, empty2)
        w_hr = _mat_or_empty(params, meta, r + 16, empty2)
        w_hr_t = _mat_or_empty(params, meta, r + 20, empty2)
        bias = _vec(params, meta, r + 24)
        h = _mat(state, meta, r + 28)
        c = _mat(state, meta, r + 32)
        c_all = _cube_or_empty(state, meta, r + 36, empty3)
        m_all = _cube_or_empty(state, meta, r + 40, empty3)
        h_proj = _mat_or_empty(state, meta, r + 44, empty2)
        y = _seq(seq, meta, r + 48, steps)
        gates = _seq(seq, meta, r + 52, steps)
        _lstm_layer(inp, w_ih, w_ih_t, w_hh, w_hh_t, w_hr, w_hr_t, bias, h, c, lengths, y, gates, c_all, m_all,
                    h_proj)
        inp = y
        r += 56


@kernel
def _gru_stack(x, params, state, seq, meta):
    """Run every GRU layer (meta[2]: reset_after) over x (T*B, I)."""
    inp, lengths, r = _begin(x, meta)
    steps = inp.shape[0]
    reset_after = meta[2] != 0
    empty2 = params[:0].reshape(0, 0)
    for _ in range(meta[0]):
        w_ih = _mat(params, meta, r)
        w_ih_t = _mat_or_empty(params, meta, r + 4, empty2)
        w_hh = _mat(params, meta, r + 8)
        w_hh_t = _mat_or_empty(params, meta, r + 12, empty2)
        b_1 = _vec(params, meta, r + 16)
        b_2 = _vec(params, meta, r + 20)
        b_3 = _vec(params, meta, r + 24)
        h = _mat(state, meta, r + 28)
        h_n_all = _cube(state, meta, r + 32)
        scratch = _mat(state, meta, r + 36)
        y = _seq(seq, meta, r + 40, steps)
        gates = _seq(seq, meta, r + 44, steps)
        _gru_layer(inp, w_ih, w_ih_t, w_hh, w_hh_t, b_1, b_2, b_3, h, lengths, y, gates, h_n_all, scratch,
                   reset_after)
        inp = y
        r += 48


@kernel
def _rnn_stack(x, params, state, seq, meta):
    """Run every RNN layer (meta[2]: use_relu) over x (T*B, I)."""
    inp, lengths, r = _begin(x, meta)
    steps = inp.shape[0]
    use_relu = meta[2] != 0
    for _ in range(meta[0]):
        w_ih = _mat(params, meta, r)
        w_ih_t = _mat(params, meta, r + 4)
        w_hh = _mat(params, meta, r + 8)
        w_hh_t = _mat(params, meta, r + 12)
        bias = _vec(params, meta, r + 16)
        h = _mat(state, meta, r + 20)
        y = _seq(seq, meta, r + 24, steps)
        pre = _seq(seq, meta, r + 28, steps)
        _rnn_layer(inp, w_ih, w_ih_t, w_hh, w_hh_t, bias, h, lengths, y, pre, use_relu)
        inp = y
        r += 32


# --------------------------------------------------------------------------- per-layer views
# (name, buffer, shape) in the order the drivers above read them. "seq" shapes are per
# step (B, F); the driver makes them (T, B, F). h and c are placed first, for all layers,
# so the state of the whole stack is one (L, B, F) view.

def _lstm_views(batch, n_in, hidden, width, small, projected):
    gates = 4 * hidden
    return [("w_ih", "params", (gates, n_in)),
            ("w_ih_t", "params", (n_in, gates) if small else (0, 0)),
            ("w_hh", "params", (gates, width)),
            ("w_hh_t", "params", (width, gates) if small else (0, 0)),
            ("w_hr", "params", (width, hidden) if projected else (0, 0)),
            ("w_hr_t", "params", (hidden, width) if projected and small else (0, 0)),
            ("bias", "params", (gates,)),
            ("h", "state", (batch, width)),
            ("c", "state", (batch, hidden)),
            ("c_all", "state", (0, batch, hidden)),
            ("m_all", "state", (1 if projected else 0, batch, hidden)),
            ("h_proj", "state", (batch if projected else 0, width)),
            ("y", "seq", (batch, width)),
            ("gates", "seq", (batch, gates))]


def _gru_views(batch, n_in, hidden, reset_after, small):
    gates = 3 * hidden
    return [("w_ih", "params", (gates, n_in)),
            ("w_ih_t", "params", (n_in, gates) if small else (0, 0)),
            ("w_hh", "params", (gates, hidden)),
            ("w_hh_t", "params", (hidden, gates) if small else (0, 0)),
            ("b_1", "params", (gates,)),
            ("b_2", "params", (gates,) if reset_after else (0,)),
            ("b_3", "params", (gates,) if reset_after else (0,)),
            ("h", "state", (batch, hidden)),
            ("h_n_all", "state", (0, batch, hidden)),
            ("scratch", "state", (batch, gates) if reset_after else (batch, hidden)),
            ("y", "seq", (batch, hidden)),
            ("gates", "seq", (batch, gates))]


def _rnn_views(batch, n_in, hidden, small):
    return [("w_ih", "params", (hidden, n_in)),
            ("w_ih_t", "params", (n_in, hidden) if small else (0, 0)),
            ("w_hh", "params", (hidden, hidden)),
            ("w_hh_t", "params", (hidden, hidden) if small else (0, 0)),
            ("bias", "params", (hidden,)),
            ("h", "state", (batch, hidden)),
            ("y", "seq", (batch, hidden)),
            ("pre", "seq", (batch, hidden))]


_DRIVERS = {"lstm": _lstm_stack, "gru": _gru_stack, "rnn": _rnn_stack}


def _zeros_if_none(param, size, dtype):
    return np.zeros(size, dtype) if param is None else param.data


def refuse_bidirectional(layer):
    """Raise if ``layer`` is bidirectional: no stream can run it."""
    if getattr(layer, "bidirectional", False):
        raise ValueError("cannot stream a bidirectional layer: its reverse direction reads the sequence from "
                         "its last step backwards, so no output is known before the whole sequence has arrived; "
                         "run the layer on the full sequence instead, or stream a unidirectional layer")


def checked_state(value, shapes, dtype):
    """A stream's new state, checked: h, or the pair (h, c) when two ``shapes`` are
    given (an LSTM); each a float array of ``dtype`` and its shape (num_layers, B, H).
    Returns the arrays (possibly views of the caller's)."""
    if len(shapes) == 2:
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"an LSTM stream's state must be a pair (h, c), got {type(value).__name__}")
        given = (("h", value[0]), ("c", value[1]))
    else:
        given = (("h", value),)
    arrays = []
    for (name, part), shape in zip(given, shapes):
        array = check.float_array(name, part, 3, dtype, "the stream")
        check.expect_shape(name, array, shape, "(num_layers, B, H)")
        arrays.append(array)
    return arrays


class Stream:
    """Step-by-step (or chunk-by-chunk) inference over a unidirectional recurrent layer.

    ``Stream(layer, batch_size=1)`` for a ``fastrnn.RNN``, ``LSTM`` (``proj_size``
    included) or ``GRU`` (either reset form), stacked or not. The state starts at zero
    (see :attr:`state` to set it). Runs in eval semantics whatever the layer's mode:
    no dropout between layers, nothing kept for a backward.

    The layer's weights are **snapshotted** (copied and packed for the kernels) when the
    stream is built: later changes to the layer do not reach the stream until
    :meth:`refresh` is called.

    ``stream(x)`` is the same as ``stream.step(x)``.
    """

    def __init__(self, layer, batch_size=1):
        cell = getattr(layer, "_cell", None)
        if cell not in _DRIVERS or not hasattr(layer, "num_layers"):
            raise TypeError(f"Stream needs a fastrnn RNN, LSTM or GRU layer, got {type(layer).__name__}")
        refuse_bidirectional(layer)
        self._layer, self._cell = layer, cell
        self._batch = check.positive_int("batch_size", batch_size)
        self._dtype = np.dtype(layer.dtype)
        self._layers = int(layer.num_layers)
        self._n_in, self._hidden = int(layer.input_size), int(layer.hidden_size)
        self._proj = int(getattr(layer, "proj_size", 0) or 0) if cell == "lstm" else 0
        self._width = self._proj or self._hidden  # width of h and y
        options = getattr(layer, "cell_options", {}) or {}
        if cell == "gru":
            self._flag = bool(options.get("reset_after", True))
        elif cell == "rnn":
            self._flag = options.get("nonlinearity", "tanh") == "relu"
        else:
            self._flag = False
        self._driver = _DRIVERS[cell]
        self._build_layout()
        self.refresh()

    # -- construction
    def _per_layer_views(self, n_in):
        small = self._batch <= SMALL_BATCH
        if self._cell == "lstm":
            return _lstm_views(self._batch, n_in, self._hidden, self._width, small, self._proj > 0)
        if self._cell == "gru":
            return _gru_views(self._batch, n_in, self._hidden, self._flag, small)
        return _rnn_views(self._batch, n_in, self._hidden, small)

    def _build_layout(self):
        sizes = {"params": 0, "state": 0, "seq": 0}
        specs = [self._per_layer_views(self._n_in if k == 0 else self._width) for k in range(self._layers)]

        def place(buffer, shape):
            start = sizes[buffer]
            sizes[buffer] += int(np.prod(shape))
            return buffer, start, tuple(shape)

        placed = [{} for _ in specs]
        for state_name in ("h", "c"):  # contiguous across layers: the stack's state is one view
            for spec, where in zip(specs, placed):
                for name, buffer, shape in spec:
                    if name == state_name:
                        where[name] = place(buffer, shape)
        for spec, where in zip(specs, placed):
            for name, buffer, shape in spec:
                if name not in where:
                    where[name] = place(buffer, shape)
        first = _HEADER + self._batch
        meta = [self._layers, self._batch, int(self._flag), first] + [1] * self._batch
        for spec, where in zip(specs, placed):
            for name, _, _ in spec:
                _, start, shape = where[name]
                meta += [start, *shape] + [0] * (_FIELDS - 1 - len(shape))
        self._meta = np.array(meta, np.int64)
        self._views = placed
        self._seq_per_step = sizes["seq"]
        self._params = np.zeros(sizes["params"], self._dtype)
        self._state = np.zeros(sizes["state"], self._dtype)
        self._seq = np.zeros(sizes["seq"], self._dtype)
        state_shape = (self._layers, self._batch, self._width)
        self._h = self._state[:int(np.prod(state_shape))].reshape(state_shape)
        if self._cell == "lstm":
            start = placed[0]["c"][1]
            self._c = self._state[start:start + self._layers * self._batch * self._hidden].reshape(
                self._layers, self._batch, self._hidden)
        out = self._view(placed[-1]["y"], self._seq)
        out.flags.writeable = False
        self._out, self._out_unbatched = out, out[0]
        self._step_shape = (self._batch, self._n_in)
        self._unbatched_shape = (self._n_in,) if self._batch == 1 else None
        self.step = self._bind_step()

    def _bind_step(self):
        """The per-instance fast ``step``: every buffer it touches is a closure cell, not
        an attribute lookup (a step is ~3 us, and eight ``self.`` lookups were ~0.15 us).
        The buffers are allocated once and only ever written in place."""
        driver, params, state, seq, meta = self._driver, self._params, self._state, self._seq, self._meta
        out, out_unbatched = self._out, self._out_unbatched
        step_shape, unbatched_shape, dtype = self._step_shape, self._unbatched_shape, self._dtype
        slow = self._step_slow

        def step(x):
            if x.__class__ is _ndarray and x.dtype is dtype and x.flags.c_contiguous:
                shape = x.shape
                if shape == step_shape:
                    driver(x, params, state, seq, meta)
                    return out
                if shape == unbatched_shape:
                    driver(x, params, state, seq, meta)
                    return out_unbatched
            return slow(x)

        step.__doc__ = Stream.step.__doc__
        return step

    @staticmethod
    def _view(placement, buffer, steps=None):
        """The array a placement names in ``buffer``; "seq" views get a leading T = ``steps`` axis when given."""
        kind, start, shape = placement
        if kind == "seq" and steps is not None:
            start, shape = start * steps, (steps,) + shape
        return buffer[start:start + int(np.prod(shape))].reshape(shape)

    def refresh(self):
        """Re-read (copy and re-pack) the layer's weights, e.g. after training it or
        loading a state_dict. The state is kept. Returns self."""
        layer, dtype = self._layer, self._dtype
        if np.dtype(layer.dtype) != dtype:
            raise TypeError(f"the layer's dtype changed from {dtype} to {np.dtype(layer.dtype)}; build a new Stream")
        values = []
        for k, where in enumerate(self._views):
            weights = {"w_ih": "weight_ih", "w_hh": "weight_hh", "w_hr": "weight_hr"}
            arrays = {}
            for name, param_name in weights.items():
                if name == "w_hr" and not self._proj:
                    continue
                full = f"{param_name}_l{k}"
                param = getattr(layer, full)
                array = np.asarray(param.data)
                if array.dtype != dtype:
                    raise TypeError(f"the layer's {full} has dtype {array.dtype}, the stream {dtype}")
                check.expect_shape(f"the layer's {full}", array, where[name][2], "(as when the stream was built)")
                arrays[name] = array
            gates = arrays["w_hh"].shape[0]
            b_ih, b_hh = (_zeros_if_none(getattr(layer, f"{n}_l{k}", None), gates, dtype)
                          for n in ("bias_ih", "bias_hh"))
            # the summed bias, as fastrnn.functional computes it; reset-after GRU also
            # needs each part (its n gate keeps them on either side of the reset)
            arrays["b_1" if self._cell == "gru" else "bias"] = b_ih + b_hh
            if self._cell == "gru" and self._flag:
                arrays["b_2"], arrays["b_3"] = b_ih, b_hh
            for packed, source in (("w_ih_t", "w_ih"), ("w_hh_t", "w_hh"), ("w_hr_t", "w_hr")):
                if packed in where and where[packed][2] != (0, 0):  # the small-batch path reads W^T row-major
                    arrays[packed] = arrays[source].T
            values += [(where[name], array) for name, array in arrays.items()]
        for placement, array in values:  # everything checked: now copy
            np.copyto(self._view(placement, self._params), array)
        return self

    # -- state
    @property
    def layer(self):
        """The layer this stream runs (its weights as of the last :meth:`refresh`)."""
        return self._layer

    @property
    def batch_size(self):
        """B: the number of sequences streamed side by side."""
        return self._batch

    @property
    def dtype(self):
        """The layer's float dtype; inputs must have it."""
        return self._dtype

    @property
    def state(self):
        """The current state as copies, shaped like the layer's final state:
        h (num_layers, B, H_out), and for an LSTM the pair (h, c) with c (num_layers, B, H).

        Assign the same shapes to set it (e.g. a layer call's h_n / (h_n, c_n) to continue
        from it); assigning None resets to zeros."""
        if self._cell == "lstm":
            return self._h.copy(), self._c.copy()
        return self._h.copy()

    @state.setter
    def state(self, value):
        if value is None:
            self.reset()
            return
        targets = (self._h, self._c) if self._cell == "lstm" else (self._h,)
        checked = checked_state(value, [t.shape for t in targets], self._dtype)
        for target, array in zip(targets, checked):
            target[...] = array

    def reset(self):
        """Zero the state (h, and c for an LSTM) of every layer. Returns self."""
        self._h[...] = 0
        if self._cell == "lstm":
            self._c[...] = 0
        return self

    # -- running
    def step(self, x):
        """Advance the stream and return its output.

        * ``x`` (B, I): one time step for the B sequences; returns (B, H_out).
        * ``x`` (I,): one step of an unbatched stream (``batch_size == 1``); returns (H_out,)
          (same speed as the batched form).
        * ``x`` (T, B, I), or (B, T, I) when the layer is ``batch_first``: a chunk of T
          steps (T may be 0); returns (T, B, H_out) (or (B, T, H_out)) as a new array.

        ``x`` must have the layer's dtype (never cast). A single step allocates nothing:
        it returns a **read-only view of the stream's output buffer, overwritten by the
        next call** - copy it (``y.copy()``, ~0.3 us) to keep it. The fast path takes a
        C-contiguous (B, I) or (I,) ndarray of the stream's dtype; anything else
        (lists, other memory layouts, chunks) is validated and converted first.
        """
        # Replaced per instance by the closure from _bind_step (same logic, fewer lookups).
        return self._step_slow(x)

    def __call__(self, x):
        """Same as :meth:`step`."""
        return self.step(x)

    def _step_slow(self, x):
        ndim = np.ndim(x)
        x = check.float_array("x", x, ndim if ndim in (1, 2, 3) else 2, self._dtype, "the stream")
        if x.ndim == 3:
            return self._chunk(x)
        if x.ndim == 1:
            if self._batch != 1:
                raise ValueError(f"x of shape {x.shape} is one unbatched step, but this stream has batch_size="
                                 f"{self._batch}: pass x with shape (B, I) = ({self._batch}, {self._n_in})")
            check.expect_shape("x", x, self._unbatched_shape, "(input_size,)")
            self._driver(x, self._params, self._state, self._seq, self._meta)
            return self._out_unbatched
        check.expect_shape("x", x, self._step_shape, "(batch_size, input_size)")
        self._driver(x, self._params, self._state, self._seq, self._meta)
        return self._out

    def _chunk(self, x):
        batch_first = bool(getattr(self._layer, "batch_first", False))
        meaning = "(B, T, I) (batch_first)" if batch_first else "(T, B, I)"
        b_axis = 0 if batch_first else 1
        if x.shape[b_axis] != self._batch or x.shape[2] != self._n_in:
            expected = list(x.shape)
            expected[b_axis], expected[2] = self._batch, self._n_in
            check.expect_shape("x", x, tuple(expected), meaning)
        steps = x.shape[1 - b_axis]
        if steps == 0:
            return np.empty((self._batch, 0, self._width) if batch_first else (0, self._batch, self._width),
                            self._dtype)
        if batch_first:
            x = x.transpose(1, 0, 2)
        x = np.ascontiguousarray(x).reshape(steps * self._batch, self._n_in)
        seq = np.empty(self._seq_per_step * steps, self._dtype)
        self._driver(x, self._params, self._state, seq, self._meta)
        y = self._view(self._views[-1]["y"], seq, steps)  # (T, B, H_out)
        return np.ascontiguousarray(y.transpose(1, 0, 2)) if batch_first else y.copy()

    def __repr__(self):
        return f"Stream({self._layer!r}, batch_size={self._batch})"
