"""Stateless entry points: one layer, one direction, time-major.

Each forward validates its arguments, runs the fused kernel over the whole sequence
and returns the outputs plus a context for the backward (None unless
``training=True``). Shapes: x (T, B, I); states (B, H); y (T, B, H); weights in
PyTorch layout w_ih (G*H, I), w_hh (G*H, H), biases (G*H,) with G = 4 (LSTM),
3 (GRU), 1 (RNN). float32 or float64, all arguments of one dtype.

``lengths`` (B,) ints in 1..T give PyTorch packed-sequence results from padded
input: past its length a sequence's state is frozen and its output is zero, and
h_n is the state at its last valid step.

The context keeps references to the forward's arrays (inputs included, as
autograd does): do not modify them in place before calling the backward.

``device="cuda"`` runs the same call on fastrnn.cuda after the same checks (see
``_placement``); the backward runs where its forward ran.

Safety options (CPU only; on "cuda" they raise ``NotImplementedError``):

* ``check_finite=True`` (forwards and backwards): NaN and Inf otherwise propagate
  as IEEE 754 says; with it, the call scans its inputs (x, then the initial states,
  then the weights; in a backward dy, then dh_n/dc_n) and then its results (y by
  time step, then h_n/c_n; dx by time step, then the other gradients) and raises
  :class:`fastrnn._finite.NonFiniteError` (a ``FloatingPointError``) naming the
  first tensor, time step and sequence holding a NaN or Inf.
* ``clip_per_step=c`` (backwards): at every valid step the total dL/dh_t (dy_t plus
  what flows back from step t+1; for an LSTM with projection the width-P dh) is
  clipped elementwise to [-c, c] before it flows on (Graves 2013). The results are
  then the gradients of that clipped backward pass, not of the loss.
* ``hidden_grads_out=a`` (backwards): a C-contiguous writable (T, B, W) array of
  the forward's dtype (W the width of h) that receives that (clipped) dL/dh_t of
  every step, 0 past each sequence's length.
"""
from typing import NamedTuple, Optional

import numpy as np

from . import _finite
from . import _validate as check
from . import _variants
from ._variants import GRUVariantGrads, LSTMVariantGrads
from .kernels import gru as _gru
from .kernels import lstm as _lstm
from .kernels import rnn as _rnn

__all__ = ["lstm", "gru", "rnn", "lstm_backward", "gru_backward", "rnn_backward",
           "LSTMGrads", "LSTMProjectionGrads", "GRUGrads", "RNNGrads", "LSTMVariantGrads", "GRUVariantGrads"]


class LSTMGrads(NamedTuple):
    """Gradients from :func:`lstm_backward`; db_* are None for absent biases."""
    dx: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    dw_ih: np.ndarray
    dw_hh: np.ndarray
    db_ih: Optional[np.ndarray]
    db_hh: Optional[np.ndarray]


class LSTMProjectionGrads(NamedTuple):
    """Gradients from :func:`lstm_backward` for an LSTM with projection (``w_hr``)."""
    dx: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    dw_ih: np.ndarray
    dw_hh: np.ndarray
    db_ih: Optional[np.ndarray]
    db_hh: Optional[np.ndarray]
    dw_hr: np.ndarray


class GRUGrads(NamedTuple):
    """Gradients from :func:`gru_backward`; db_* are None for absent biases."""
    dx: np.ndarray
    dh0: np.ndarray
    dw_ih: np.ndarray
    dw_hh: np.ndarray
    db_ih: Optional[np.ndarray]
    db_hh: Optional[np.ndarray]


class RNNGrads(NamedTuple):
    """Gradients from :func:`rnn_backward`; db_* are None for absent biases."""
    dx: np.ndarray
    dh0: np.ndarray
    dw_ih: np.ndarray
    dw_hh: np.ndarray
    db_ih: Optional[np.ndarray]
    db_hh: Optional[np.ndarray]


class Context:
    """What a training-mode forward keeps for its backward (opaque to users)."""

    __slots__ = ("cell", "saved", "steps", "batch", "hidden", "width", "dtype", "has_b_ih", "has_b_hh")

    def __init__(self, cell, saved, x, hidden, b_ih, b_hh, width=None):
        self.cell, self.saved, self.hidden = cell, saved, hidden
        self.width = hidden if width is None else width  # of y and h (P with a projection)
        self.steps, self.batch, _ = x.shape
        self.dtype = x.dtype
        self.has_b_ih, self.has_b_hh = b_ih is not None, b_hh is not None

    def __repr__(self):
        return f"<fastrnn {self.cell} context T={self.steps} B={self.batch} H={self.hidden} {self.dtype}>"


def _prepare(x, w_ih, w_hh, b_ih, b_hh, gates, lengths, training, w_hr=None):
    x = check.sequence_input(x)
    w_ih, w_hh, b_ih, b_hh, w_hr, hidden = check.weights(w_ih, w_hh, b_ih, b_hh, gates, x.shape[2], x.dtype, w_hr)
    lengths = check.lengths_array(lengths, x.shape[1], x.shape[0])
    return x, w_ih, w_hh, b_ih, b_hh, w_hr, hidden, lengths, check.flag("training", training)


def _zeros_if_none(b, size, dtype):
    return np.zeros(size, dtype) if b is None else b


def _summed_bias(b_ih, b_hh, size, dtype):
    return _zeros_if_none(b_ih, size, dtype) + _zeros_if_none(b_hh, size, dtype)


def _context(ctx, cell):
    if ctx is None:
        raise ValueError(f"{cell}_backward needs the context of a forward run with training=True; "
                         "got None (the forward ran with training=False)")
    if not isinstance(ctx, Context) or ctx.cell != cell:
        raise TypeError(f"ctx must be the context returned by fastrnn.functional.{cell}(..., training=True), "
                        f"got {ctx!r}")
    return ctx


def _output_grads(ctx, dy, states):
    """Validate dy and the final-state gradients; states: (name, value, width, meaning)."""
    dy = check.float_array("dy", dy, 3, ctx.dtype)
    check.expect_shape("dy", dy, (ctx.steps, ctx.batch, ctx.width), "(T, B, H)")
    return dy, [check.state(name, value, ctx.batch, width, ctx.dtype, meaning) for name, value, width, meaning in states]


def _bias_grads(ctx, db_ih, db_hh):
    return (db_ih if ctx.has_b_ih else None), (db_hh if ctx.has_b_hh else None)


# --- check_finite, clip_per_step, hidden_grads_out ---------------------------------
def _finite_flag(gpu, check_finite, cell, where):
    check_finite = check.flag("check_finite", check_finite)
    if check_finite and gpu:
        raise NotImplementedError(f"check_finite=True is not implemented for device='cuda' ({cell}{where}); "
                                  "copy the arrays to the host and use fastrnn._finite.require_finite, "
                                  "or run on device='cpu'")
    return check_finite


def _require_finite(cell, role, timed=(), untimed=()):
    """check_finite scan: ``timed`` (name, (T, B, ...) array) pairs first, then ``untimed``."""
    where = f"({role} of {cell})"
    for name, array in timed:
        _finite.require_finite(name, array, True, where)
    for name, array in untimed:
        _finite.require_finite(name, array, False, where)


def _bptt_options(ctx, gpu, clip_per_step, hidden_grads_out, check_finite, inputs):
    """Validate the backward's safety keywords. Returns (clip bound, trace or None, check_finite).

    ``inputs``: the validated arrays the kernel reads (hidden_grads_out must not overlap them).
    """
    check_finite = _finite_flag(gpu, check_finite, ctx.cell, "_backward")
    if clip_per_step is not None:
        if gpu:
            raise NotImplementedError(f"clip_per_step is not implemented for device='cuda' ({ctx.cell}_backward): "
                                      "the CUDA backward kernels do not clip per step; run the layer on the CPU")
        clip = check.positive_bound("clip_per_step", clip_per_step)
    else:
        clip = np.inf
    trace = hidden_grads_out
    if trace is not None:
        if gpu:
            raise NotImplementedError(f"hidden_grads_out is not implemented for device='cuda' ({ctx.cell}_backward): "
                                      "the CUDA backward kernels keep no per-step trace; run the layer on the CPU")
        if type(trace) is not np.ndarray:
            raise TypeError(f"hidden_grads_out must be None or a NumPy array, got {type(trace).__name__}")
        if trace.dtype != ctx.dtype:
            raise TypeError(f"hidden_grads_out has dtype {trace.dtype} but the forward ran in {ctx.dtype}; "
                            "it must have the forward's dtype")
        check.expect_shape("hidden_grads_out", trace, (ctx.steps, ctx.batch, ctx.width), "(T, B, H)")
        if not trace.flags.c_contiguous or not trace.flags.writeable:
            raise ValueError("hidden_grads_out must be a C-contiguous, writable array, got one that is "
                             + ("not C-contiguous" if not trace.flags.c_contiguous else "read-only"))
        for name, array in [*inputs, *(("the forward's saved arrays", a) for a in _arrays_in(ctx.saved))]:
            if isinstance(array, np.ndarray) and np.may_share_memory(trace, array):
                raise ValueError(f"hidden_grads_out must not share memory with {name}")
    return clip, trace, check_finite


def _named_arrays(record, skip=()):
    """(name, array) of a named tuple's array fields (None kept, other values left out)
    except those named in ``skip``; tuple fields are flattened as ``name[k]``."""
    pairs = []
    for name, value in record._asdict().items():
        if name in skip:
            continue
        if isinstance(value, tuple):
            pairs += [(f"{name}[{k}]", v) for k, v in enumerate(value)]
        elif value is None or isinstance(value, np.ndarray):
            pairs.append((name, value))
    return pairs


def _option_arrays(options):
    """(name, array) of a variant's parameter and mask arrays, for the check_finite scan
    (zoneout weights are range-checked already, which refuses NaN)."""
    return _named_arrays(options, skip=("zoneout_h", "zoneout_c"))


def _arrays_in(saved):
    """Every array in a context's saved state, however deeply its tuples nest."""
    if isinstance(saved, (tuple, list)):
        for item in saved:
            yield from _arrays_in(item)
    elif isinstance(saved, np.ndarray):
        yield saved


def _untimed_grads(result):
    """(name, array) of a gradient tuple's fields other than dx; nested tuples (variant grads) flattened."""
    return _named_arrays(result, skip=("dx",))


# --- device="cuda" (fastrnn.cuda, imported only when asked for) ------------------
def _placement(device, **arrays):
    """``(gpu, arrays)`` for one call; ``device`` is "cpu", "cuda" or a Context.

    On "cpu", gpu is None and the arrays come back unchanged. On "cuda", gpu is a
    fastrnn.cuda Placement and the arrays are host stand-ins of any device arrays
    (same shape and dtype), so the checks below run unchanged; gpu's methods then
    run the CUDA kernels on the validated arguments. ``import fastrnn`` never
    imports numba.cuda: this function does, on the first "cuda" call.
    """
    from_context = isinstance(device, Context)
    if from_context:
        device = getattr(device.saved, "device", "cpu")
    if device == "cpu":
        for name, value in arrays.items():
            if value is None or type(value) is np.ndarray:
                continue
            if getattr(value, "__cuda_ndarray__", False) or hasattr(value, "__cuda_array_interface__"):
                advice = ("the forward ran on the CPU; copy it to the host (or run the forward with "
                          "device='cuda')" if from_context else "device='cpu'; pass device='cuda' (or copy it "
                          "to the host)")
                raise TypeError(f"{name} is a CUDA device array but {advice}")
        return None, tuple(arrays.values())
    check.choice("device", device, ("cpu", "cuda"))
    from .cuda.dispatch import Placement
    gpu = Placement(arrays)
    return gpu, gpu.stand_ins


def lstm(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None, lengths=None, training=False, w_hr=None,
         device="cpu", check_finite=False, *, coupled=False, peephole=None, cell_clip=None, layer_norm=None,
         input_mask=None, recurrent_mask=None, weight_hh_mask=None, zoneout_h=None, zoneout_c=None):
    """LSTM over a whole sequence (gates i, f, g, o), optionally with projection.

    x (T, B, I); w_ih (4H, I); w_hh (4H, H); b_ih, b_hh (4H,) or None; h0, c0 (B, H)
    or None (zeros); lengths (B,) ints in 1..T or None.
    With ``w_hr`` (P, H) (torch's ``proj_size``), h_t = W_hr (o * tanh(c_t)): then
    w_hh is (4H, P) and h0, h_n, y have width P.
    Returns ``(y, h_n, c_n, ctx)``: y (T, B, H), h_n and c_n (B, H), ctx for
    :func:`lstm_backward` (None unless ``training``). Same dtype as x.
    ``device``: "cpu" or "cuda" (fastrnn.cuda; see the module docstring).
    ``check_finite``: raise on NaN/Inf in the inputs or outputs (module docstring).

    Variants (CPU and "cuda"; equations in fastrnn.reference.lstm_variants; any combination):
    ``coupled=True`` couples the input and forget gates (i = 1 - f): w_ih (3H, I),
    w_hh (3H, H), biases (3H,) hold the blocks f, g, o. ``peephole=(w_ci, w_cf, w_co)``
    (H,) each (w_ci None when coupled). ``cell_clip`` > 0 clips the cell state.
    ``layer_norm=(g_ih (GH,), g_hh (GH,), g_c (H,), b_c (H,))`` normalizes the input
    and recurrent pre-activations and the cell. ``input_mask`` (B, I),
    ``recurrent_mask`` (B, H) (applied to h_{t-1} in the recurrent product) and
    ``weight_hh_mask`` (GH, H) (DropConnect) are scaled dropout masks used at every
    step; ``zoneout_h``/``zoneout_c``: (T, B, H) keep-previous masks in [0, 1], or
    a probability p (evaluation: p * previous + (1 - p) * new). Not with ``w_hr``.
    The option arrays are NumPy arrays on either device. The backward then returns
    :class:`LSTMVariantGrads`.
    """
    gpu, (x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, w_hr) = _placement(
        device, x=x, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, h0=h0, c0=c0, lengths=lengths, w_hr=w_hr)
    coupled = check.flag("coupled", coupled)
    x, w_ih, w_hh, b_ih, b_hh, w_hr, hidden, lengths, training = _prepare(
        x, w_ih, w_hh, b_ih, b_hh, 3 if coupled else 4, lengths, training, w_hr)
    width = hidden if w_hr is None else w_hr.shape[0]
    h0 = check.state("h0", h0, x.shape[1], width, x.dtype, "(B, P)" if w_hr is not None else "(B, H)")
    c0 = check.state("c0", c0, x.shape[1], hidden, x.dtype)
    if _finite_flag(gpu, check_finite, "lstm", ""):
        _require_finite("lstm", "input", [("x", x)], [("h0", h0), ("c0", c0), ("w_ih", w_ih), ("w_hh", w_hh),
                                                      ("b_ih", b_ih), ("b_hh", b_hh), ("w_hr", w_hr)])
    options = _variants.lstm_options(x, hidden, coupled, peephole, cell_clip, layer_norm, input_mask,
                                     recurrent_mask, weight_hh_mask, zoneout_h, zoneout_c)
    if options is not None:
        if w_hr is not None:
            raise ValueError("w_hr (projection) cannot be combined with the LSTM variant options")
        if check_finite:
            _require_finite("lstm", "input", (), _option_arrays(options))
        y, h_n, c_n, saved = _variants.lstm_forward(x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, training, options,
                                                    gpu)
        if check_finite:
            _require_finite("lstm", "output", [("y", y)], [("h_n", h_n), ("c_n", c_n)])
        return y, h_n, c_n, (Context("lstm", saved, x, hidden, b_ih, b_hh) if training else None)
    if gpu:
        y, h_n, c_n, saved = gpu.lstm_forward(x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, training, w_hr)
        return y, h_n, c_n, (Context("lstm", saved, x, hidden, b_ih, b_hh, width) if training else None)
    bias = _summed_bias(b_ih, b_hh, 4 * hidden, x.dtype)
    y, h_n, c_n, saved = _lstm.lstm_forward(x, w_ih, w_hh, bias, h0, c0, lengths, training, w_hr)
    if check_finite:
        _require_finite("lstm", "output", [("y", y)], [("h_n", h_n), ("c_n", c_n)])
    ctx = Context("lstm", saved, x, hidden, b_ih, b_hh, width) if training else None
    return y, h_n, c_n, ctx


def lstm_backward(ctx, dy, dh_n=None, dc_n=None, *, clip_per_step=None, check_finite=False, hidden_grads_out=None):
    """Gradients of an LSTM forward given dL/dy (T, B, H) and optionally dL/dh_n, dL/dc_n (B, H).

    Returns :class:`LSTMGrads` (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh) in the
    forward's dtype, or :class:`LSTMProjectionGrads` (the same plus dw_hr) when the
    forward had a projection. Gradients at padded steps of dy are ignored (those
    outputs are constant zero).
    ``clip_per_step`` (positive float), ``hidden_grads_out`` ((T, B, H) array, or
    (T, B, P) with a projection), ``check_finite``: see the module docstring.
    """
    ctx = _context(ctx, "lstm")
    gpu, (dy, dh_n, dc_n) = _placement(ctx, dy=dy, dh_n=dh_n, dc_n=dc_n)
    dy, (dh_n, dc_n) = _output_grads(ctx, dy, (("dh_n", dh_n, ctx.width, "(B, H)"),
                                               ("dc_n", dc_n, ctx.hidden, "(B, H)")))
    clip, trace, check_finite = _bptt_options(ctx, gpu, clip_per_step, hidden_grads_out, check_finite,
                                              (("dy", dy), ("dh_n", dh_n), ("dc_n", dc_n)))
    if gpu and isinstance(ctx.saved, _variants.VariantSaved):
        return _variants.lstm_backward(ctx.saved, dy, dh_n, dc_n, (ctx.has_b_ih, ctx.has_b_hh), gpu=gpu)
    if gpu:
        dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr = gpu.lstm_backward(ctx.saved, dy, dh_n, dc_n)
        grads = (dx, dh0, dc0, dw_ih, dw_hh, *_bias_grads(ctx, db_ih, db_hh))
        return LSTMGrads(*grads) if dw_hr is None else LSTMProjectionGrads(*grads, dw_hr)
    if check_finite:
        _require_finite("lstm_backward", "input", [("dy", dy)], [("dh_n", dh_n), ("dc_n", dc_n)])
    if isinstance(ctx.saved, _variants.VariantSaved):
        result = _variants.lstm_backward(ctx.saved, dy, dh_n, dc_n, (ctx.has_b_ih, ctx.has_b_hh), clip, trace)
    else:
        dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr = _lstm.lstm_backward(ctx.saved, dy, dh_n, dc_n, clip, trace)
        grads = (dx, dh0, dc0, dw_ih, dw_hh, *_bias_grads(ctx, db, db.copy()))
        result = LSTMGrads(*grads) if dw_hr is None else LSTMProjectionGrads(*grads, dw_hr)
    if check_finite:
        _require_finite("lstm_backward", "result", [("dx", result.dx)],
                        _untimed_grads(result))
    return result


def gru(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, lengths=None, training=False, reset_after=True,
        device="cpu", check_finite=False, *, layer_norm=None, input_mask=None, recurrent_mask=None,
        weight_hh_mask=None, zoneout_h=None):
    """GRU over a whole sequence (gates r, z, n).

    ``reset_after=True`` is PyTorch's form, n = tanh(W_in x + b_in + r * (W_hn h + b_hn));
    False is Cho et al. 2014 (Keras reset_after=False), n = tanh(W_in x + b_in + W_hn (r * h) + b_hn).
    x (T, B, I); w_ih (3H, I); w_hh (3H, H); b_ih, b_hh (3H,) or None; h0 (B, H) or
    None; lengths (B,) or None. Returns ``(y, h_n, ctx)``: y (T, B, H), h_n (B, H),
    ctx for :func:`gru_backward` (None unless ``training``).
    ``device``: "cpu" or "cuda" (fastrnn.cuda; see the module docstring).
    ``check_finite``: raise on NaN/Inf in the inputs or outputs (module docstring).

    Variants (CPU and "cuda"; equations in fastrnn.reference.gru_variants): ``layer_norm=(g_ih,
    g_hh)`` (3H,) gains normalizing the input and recurrent pre-activations;
    ``input_mask`` (B, I), ``recurrent_mask`` (B, H), ``weight_hh_mask`` (3H, H):
    scaled dropout masks used at every step; ``zoneout_h``: (T, B, H) keep-previous
    masks in [0, 1] or a probability (evaluation). Layer norm, recurrent_mask and
    zoneout need ``reset_after=True``. The option arrays are NumPy arrays on either
    device. The backward then returns :class:`GRUVariantGrads`.
    """
    gpu, (x, w_ih, w_hh, b_ih, b_hh, h0, lengths) = _placement(
        device, x=x, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, h0=h0, lengths=lengths)
    x, w_ih, w_hh, b_ih, b_hh, _, hidden, lengths, training = _prepare(x, w_ih, w_hh, b_ih, b_hh, 3, lengths, training)
    reset_after = check.flag("reset_after", reset_after)
    h0 = check.state("h0", h0, x.shape[1], hidden, x.dtype)
    if _finite_flag(gpu, check_finite, "gru", ""):
        _require_finite("gru", "input", [("x", x)], [("h0", h0), ("w_ih", w_ih), ("w_hh", w_hh),
                                                     ("b_ih", b_ih), ("b_hh", b_hh)])
    options = _variants.gru_options(x, hidden, reset_after, layer_norm, input_mask, recurrent_mask,
                                    weight_hh_mask, zoneout_h)
    if options is not None and check_finite:
        _require_finite("gru", "input", (), _option_arrays(options))
    if options is not None:
        y, h_n, saved = _variants.gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, training, reset_after, options,
                                              gpu)
        if check_finite:
            _require_finite("gru", "output", [("y", y)], [("h_n", h_n)])
        return y, h_n, (Context("gru", saved, x, hidden, b_ih, b_hh) if training else None)
    if gpu:
        y, h_n, saved = gpu.gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, training, reset_after)
        return y, h_n, (Context("gru", saved, x, hidden, b_ih, b_hh) if training else None)
    y, h_n, saved = _gru.gru_forward(x, w_ih, w_hh, _zeros_if_none(b_ih, 3 * hidden, x.dtype),
                                     _zeros_if_none(b_hh, 3 * hidden, x.dtype), h0, lengths, training, reset_after)
    if check_finite:
        _require_finite("gru", "output", [("y", y)], [("h_n", h_n)])
    ctx = Context("gru", saved, x, hidden, b_ih, b_hh) if training else None
    return y, h_n, ctx


def gru_backward(ctx, dy, dh_n=None, *, clip_per_step=None, check_finite=False, hidden_grads_out=None):
    """Gradients of a GRU forward given dL/dy (T, B, H) and optionally dL/dh_n (B, H).

    Returns :class:`GRUGrads` (dx, dh0, dw_ih, dw_hh, db_ih, db_hh).
    ``clip_per_step``, ``hidden_grads_out`` ((T, B, H)), ``check_finite``: see the
    module docstring.
    """
    ctx = _context(ctx, "gru")
    gpu, (dy, dh_n) = _placement(ctx, dy=dy, dh_n=dh_n)
    dy, (dh_n,) = _output_grads(ctx, dy, (("dh_n", dh_n, ctx.hidden, "(B, H)"),))
    clip, trace, check_finite = _bptt_options(ctx, gpu, clip_per_step, hidden_grads_out, check_finite,
                                              (("dy", dy), ("dh_n", dh_n)))
    if gpu and isinstance(ctx.saved, _variants.VariantSaved):
        return _variants.gru_backward(ctx.saved, dy, dh_n, (ctx.has_b_ih, ctx.has_b_hh), gpu=gpu)
    if gpu:
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = gpu.gru_backward(ctx.saved, dy, dh_n)
        return GRUGrads(dx, dh0, dw_ih, dw_hh, *_bias_grads(ctx, db_ih, db_hh))
    if check_finite:
        _require_finite("gru_backward", "input", [("dy", dy)], [("dh_n", dh_n)])
    if isinstance(ctx.saved, _variants.VariantSaved):
        result = _variants.gru_backward(ctx.saved, dy, dh_n, (ctx.has_b_ih, ctx.has_b_hh), clip, trace)
    else:
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = _gru.gru_backward(ctx.saved, dy, dh_n, clip, trace)
        result = GRUGrads(dx, dh0, dw_ih, dw_hh, *_bias_grads(ctx, db_ih, db_hh))
    if check_finite:
        _require_finite("gru_backward", "result", [("dx", result.dx)],
                        _untimed_grads(result))
    return result


def rnn(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, lengths=None, training=False, nonlinearity="tanh",
        device="cpu", check_finite=False):
    """Elman RNN over a whole sequence: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

    nonlinearity "tanh" or "relu". x (T, B, I); w_ih (H, I); w_hh (H, H); b_ih,
    b_hh (H,) or None; h0 (B, H) or None; lengths (B,) or None.
    Returns ``(y, h_n, ctx)``: y (T, B, H), h_n (B, H), ctx for :func:`rnn_backward`.
    ``device``: "cpu" or "cuda" (fastrnn.cuda; see the module docstring).
    ``check_finite``: raise on NaN/Inf in the inputs or outputs (module docstring).
    """
    gpu, (x, w_ih, w_hh, b_ih, b_hh, h0, lengths) = _placement(
        device, x=x, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, h0=h0, lengths=lengths)
    x, w_ih, w_hh, b_ih, b_hh, _, hidden, lengths, training = _prepare(x, w_ih, w_hh, b_ih, b_hh, 1, lengths, training)
    use_relu = check.choice("nonlinearity", nonlinearity, ("tanh", "relu")) == "relu"
    h0 = check.state("h0", h0, x.shape[1], hidden, x.dtype)
    if _finite_flag(gpu, check_finite, "rnn", ""):
        _require_finite("rnn", "input", [("x", x)], [("h0", h0), ("w_ih", w_ih), ("w_hh", w_hh),
                                                     ("b_ih", b_ih), ("b_hh", b_hh)])
    if gpu:
        y, h_n, saved = gpu.rnn_forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, training, use_relu)
        return y, h_n, (Context("rnn", saved, x, hidden, b_ih, b_hh) if training else None)
    bias = _summed_bias(b_ih, b_hh, hidden, x.dtype)
    y, h_n, saved = _rnn.rnn_forward(x, w_ih, w_hh, bias, h0, lengths, training, use_relu)
    if check_finite:
        _require_finite("rnn", "output", [("y", y)], [("h_n", h_n)])
    ctx = Context("rnn", saved, x, hidden, b_ih, b_hh) if training else None
    return y, h_n, ctx


def rnn_backward(ctx, dy, dh_n=None, *, clip_per_step=None, check_finite=False, hidden_grads_out=None):
    """Gradients of an RNN forward given dL/dy (T, B, H) and optionally dL/dh_n (B, H).

    Returns :class:`RNNGrads` (dx, dh0, dw_ih, dw_hh, db_ih, db_hh).
    ``clip_per_step``, ``hidden_grads_out`` ((T, B, H)), ``check_finite``: see the
    module docstring.
    """
    ctx = _context(ctx, "rnn")
    gpu, (dy, dh_n) = _placement(ctx, dy=dy, dh_n=dh_n)
    dy, (dh_n,) = _output_grads(ctx, dy, (("dh_n", dh_n, ctx.hidden, "(B, H)"),))
    clip, trace, check_finite = _bptt_options(ctx, gpu, clip_per_step, hidden_grads_out, check_finite,
                                              (("dy", dy), ("dh_n", dh_n)))
    if gpu:
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = gpu.rnn_backward(ctx.saved, dy, dh_n)
        return RNNGrads(dx, dh0, dw_ih, dw_hh, *_bias_grads(ctx, db_ih, db_hh))
    if check_finite:
        _require_finite("rnn_backward", "input", [("dy", dy)], [("dh_n", dh_n)])
    dx, dh0, dw_ih, dw_hh, db = _rnn.rnn_backward(ctx.saved, dy, dh_n, clip, trace)
    result = RNNGrads(dx, dh0, dw_ih, dw_hh, *_bias_grads(ctx, db, db.copy()))
    if check_finite:
        _require_finite("rnn_backward", "result", [("dx", dx)],
                        _untimed_grads(result))
    return result
