"""The cell-variant keywords of fastrnn.functional: checks, masks and the variant kernels.

Kept apart from functional.py so that the plain path stays short; functional.lstm
and functional.gru call :func:`lstm_options` / :func:`gru_options` and, when an option
is on, run the variant kernels through the functions below.

Input dropout and DropConnect act on the kernel's inputs: x * input_mask and
W_hh * weight_hh_mask are formed once per call (one pass each, outside the time
loop), and their gradients are multiplied by the same masks on the way back.
"""
from typing import NamedTuple, Optional

import numpy as np

from . import _validate as check

__all__ = ["LSTMVariantGrads", "GRUVariantGrads", "LSTMOptions", "GRUOptions"]


class LSTMVariantGrads(NamedTuple):
    """Gradients of an LSTM forward that used variant options.

    dpeephole = (dw_ci or None with coupled gates, dw_cf, dw_co), each (H,), or None;
    dlayer_norm = (d ln_ih (GH,), d ln_hh (GH,), d ln_c gain (H,), d ln_c bias (H,)) or None.
    dw_hh is w.r.t. the unmasked w_hh (DropConnect's mask is applied on the way back).
    """
    dx: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    dw_ih: np.ndarray
    dw_hh: np.ndarray
    db_ih: Optional[np.ndarray]
    db_hh: Optional[np.ndarray]
    dpeephole: Optional[tuple]
    dlayer_norm: Optional[tuple]


class GRUVariantGrads(NamedTuple):
    """Gradients of a GRU forward that used variant options; dlayer_norm = (d ln_ih, d ln_hh) or None."""
    dx: np.ndarray
    dh0: np.ndarray
    dw_ih: np.ndarray
    dw_hh: np.ndarray
    db_ih: Optional[np.ndarray]
    db_hh: Optional[np.ndarray]
    dlayer_norm: Optional[tuple]


class LSTMOptions(NamedTuple):
    coupled: bool
    peephole: Optional[np.ndarray]       # (3, H) rows p_i (zero with coupled gates), p_f, p_o
    cell_clip: Optional[float]
    layer_norm: Optional[tuple]          # (g_ih, g_hh, g_c, b_c)
    input_mask: Optional[np.ndarray]     # (B, I)
    recurrent_mask: Optional[np.ndarray]  # (B, H)
    weight_hh_mask: Optional[np.ndarray]  # (GH, H)
    zoneout_h: Optional[np.ndarray]      # (T, B, H)
    zoneout_c: Optional[np.ndarray]


class GRUOptions(NamedTuple):
    layer_norm: Optional[tuple]          # (g_ih, g_hh)
    input_mask: Optional[np.ndarray]
    recurrent_mask: Optional[np.ndarray]
    weight_hh_mask: Optional[np.ndarray]
    zoneout_h: Optional[np.ndarray]


class VariantSaved(NamedTuple):
    """What a variant forward keeps for its backward (inside a functional Context).

    device "cuda": the forward ran on fastrnn.cuda; kernel_saved and the masks are
    then device arrays (the backward runs there too).
    """
    kernel_saved: tuple
    input_mask: Optional[np.ndarray]
    weight_hh_mask: Optional[np.ndarray]
    peephole_coupled: Optional[bool]  # None without peephole
    device: str = "cpu"


def _vector(name, value, size, dtype, meaning):
    value = check.float_array(name, value, 1, dtype)
    check.expect_shape(name, value, (size,), meaning)
    return value


def _mask(name, value, shape, dtype, meaning):
    if value is None:
        return None
    value = check.float_array(name, value, len(shape), dtype)
    check.expect_shape(name, value, shape, meaning)
    return value


def _zoneout(name, value, shape, dtype):
    """None, a probability p (evaluation: the expectation, p everywhere) or a (T, B, H)
    array of keep-previous weights in [0, 1] (training: 0/1 masks)."""
    if value is None:
        return None
    if np.ndim(value) == 0 and not isinstance(value, np.ndarray):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be None, a probability or a (T, B, H) array, got {value!r}")
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        return np.full(shape, value, dtype)
    value = _mask(name, value, shape, dtype, "(T, B, H)")
    if not np.all((value >= 0) & (value <= 1)):
        raise ValueError(f"{name} must hold keep-previous weights in [0, 1]; found values outside")
    return value


def _common_masks(x, hidden, width, input_mask, recurrent_mask, weight_hh_mask, zoneout_h):
    steps, batch, n_in = x.shape
    return (_mask("input_mask", input_mask, (batch, n_in), x.dtype, "(B, I)"),
            _mask("recurrent_mask", recurrent_mask, (batch, hidden), x.dtype, "(B, H)"),
            _mask("weight_hh_mask", weight_hh_mask, (width, hidden), x.dtype, "(G*H, H)"),
            _zoneout("zoneout_h", zoneout_h, (steps, batch, hidden), x.dtype))


def _layer_norm(value, sizes, dtype):
    names = ("layer_norm[0] (input gain)", "layer_norm[1] (recurrent gain)", "layer_norm[2] (cell gain)",
             "layer_norm[3] (cell bias)")
    if not isinstance(value, (tuple, list)) or len(value) != len(sizes):
        raise TypeError(f"layer_norm must be a tuple of {len(sizes)} arrays of shapes "
                        f"{[(s,) for s in sizes]}, got {type(value).__name__}")
    return tuple(_vector(name, v, size, dtype, f"({size},)") for name, v, size in zip(names, value, sizes))


def lstm_options(x, hidden, coupled=False, peephole=None, cell_clip=None, layer_norm=None, input_mask=None,
                 recurrent_mask=None, weight_hh_mask=None, zoneout_h=None, zoneout_c=None):
    """Checked :class:`LSTMOptions`, or None when every option is off (the plain kernel runs).

    x: the checked (T, B, I) input; hidden: H. ``coupled`` is already a checked bool.
    """
    width = (3 if coupled else 4) * hidden
    cell_clip = check.positive_bound("cell_clip", cell_clip)
    if peephole is not None:
        if not isinstance(peephole, (tuple, list)) or len(peephole) != 3:
            raise TypeError("peephole must be a tuple (w_ci, w_cf, w_co) of (H,) arrays "
                            f"(w_ci None with coupled gates), got {type(peephole).__name__}")
        w_ci, w_cf, w_co = peephole
        if coupled and w_ci is not None:
            raise ValueError("peephole w_ci must be None with coupled gates (there is no input gate)")
        if not coupled and w_ci is None:
            raise ValueError("peephole w_ci is None but coupled is False; pass an (H,) array")
        rows = [np.zeros(hidden, x.dtype) if w_ci is None else _vector("peephole w_ci", w_ci, hidden, x.dtype, "(H,)"),
                _vector("peephole w_cf", w_cf, hidden, x.dtype, "(H,)"),
                _vector("peephole w_co", w_co, hidden, x.dtype, "(H,)")]
        peephole = np.ascontiguousarray(np.stack(rows))
    if layer_norm is not None:
        layer_norm = _layer_norm(layer_norm, (width, width, hidden, hidden), x.dtype)
    masks = _common_masks(x, hidden, width, input_mask, recurrent_mask, weight_hh_mask, zoneout_h)
    zoneout_c = _zoneout("zoneout_c", zoneout_c, x.shape[:2] + (hidden,), x.dtype)
    options = LSTMOptions(coupled, peephole, cell_clip, layer_norm, *masks, zoneout_c)
    return None if not coupled and all(v is None for v in options[1:]) else options


def gru_options(x, hidden, reset_after, layer_norm=None, input_mask=None, recurrent_mask=None,
                weight_hh_mask=None, zoneout_h=None):
    """Checked :class:`GRUOptions`, or None when every option is off."""
    width = 3 * hidden
    if layer_norm is not None:
        layer_norm = _layer_norm(layer_norm, (width, width), x.dtype)
    options = GRUOptions(layer_norm, *_common_masks(x, hidden, width, input_mask, recurrent_mask, weight_hh_mask,
                                                    zoneout_h))
    if all(v is None for v in options):
        return None
    if not reset_after and (options.layer_norm is not None or options.recurrent_mask is not None
                            or options.zoneout_h is not None):
        raise ValueError("layer_norm, recurrent_mask and zoneout_h need the reset-after GRU (reset_after=True)")
    return options


def _masked_inputs(x, w_hh, input_mask, weight_hh_mask):
    x = x if input_mask is None else x * input_mask[None]
    w_hh = w_hh if weight_hh_mask is None else np.ascontiguousarray(w_hh * weight_hh_mask)
    return x, w_hh


def _unmasked_grads(dx, dw_hh, saved):
    if saved.input_mask is not None:
        dx *= saved.input_mask[None]
    if saved.weight_hh_mask is not None:
        dw_hh *= saved.weight_hh_mask
    return dx, dw_hh


def _zeros_if_none(b, size, dtype):
    return np.zeros(size, dtype) if b is None else b


def lstm_forward(x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, training, options, gpu=None):
    """Run the LSTM variant kernel. Returns (y, h_n, c_n, VariantSaved or None).

    gpu: None (CPU), or the call's fastrnn.cuda Placement (the arguments are then its
    validated stand-ins; the masks are applied on the device).
    """
    coupled = options.coupled if options.peephole is not None else None
    if gpu is not None:
        y, h_n, c_n, saved, (input_mask, weight_hh_mask) = gpu.lstm_variants_forward(
            x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, training, options)
        if not training:
            return y, h_n, c_n, None
        return y, h_n, c_n, VariantSaved(saved, input_mask, weight_hh_mask, coupled, "cuda")
    from .kernels import lstm_variants as kernels
    width = w_ih.shape[0]
    bias = _zeros_if_none(b_ih, width, x.dtype) + _zeros_if_none(b_hh, width, x.dtype)
    x_in, w_hh_in = _masked_inputs(x, w_hh, options.input_mask, options.weight_hh_mask)
    y, h_n, c_n, saved = kernels.lstm_variants_forward(
        x_in, w_ih, w_hh_in, bias, h0, c0, lengths, training, options.peephole, options.layer_norm,
        options.recurrent_mask, options.zoneout_h, options.zoneout_c, options.cell_clip)
    if not training:
        return y, h_n, c_n, None
    return y, h_n, c_n, VariantSaved(saved, options.input_mask, options.weight_hh_mask, coupled)


def lstm_backward(saved, dy, dh_n, dc_n, has_biases, clip=np.inf, trace=None, gpu=None):
    """Gradients for :func:`lstm_forward`'s run; has_biases = (has b_ih, has b_hh).
    gpu: the backward call's Placement when the forward ran on CUDA (no clip, no trace)."""
    if gpu is not None:
        dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dpeep, dln = gpu.lstm_variants_backward(saved, dy, dh_n, dc_n)
        return LSTMVariantGrads(dx, dh0, dc0, dw_ih, dw_hh, db_ih if has_biases[0] else None,
                                db_hh if has_biases[1] else None, dpeep, dln)
    from .kernels import lstm_variants as kernels
    dx, dh0, dc0, dw_ih, dw_hh, db, dpeep, dln = kernels.lstm_variants_backward(
        saved.kernel_saved, dy, dh_n, dc_n, clip, trace)
    dx, dw_hh = _unmasked_grads(dx, dw_hh, saved)
    if dpeep is not None:
        dpeep = (None if saved.peephole_coupled else dpeep[0].copy(), dpeep[1].copy(), dpeep[2].copy())
    return LSTMVariantGrads(dx, dh0, dc0, dw_ih, dw_hh, db if has_biases[0] else None,
                            db.copy() if has_biases[1] else None, dpeep, dln)


def gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, training, reset_after, options, gpu=None):
    """Run a GRU with variant options. Returns (y, h_n, VariantSaved or None).

    Input dropout and DropConnect alone run on the plain kernels (either reset form);
    layer norm, recurrent dropout and zoneout run on kernels.gru_variants (reset-after).
    gpu: None (CPU), or the call's fastrnn.cuda Placement (then the same split on
    fastrnn.cuda.gru / fastrnn.cuda.gru_variants).
    """
    if gpu is not None:
        y, h_n, saved, (input_mask, weight_hh_mask) = gpu.gru_variants_forward(
            x, w_ih, w_hh, b_ih, b_hh, h0, lengths, training, reset_after, options)
        if not training:
            return y, h_n, None
        return y, h_n, VariantSaved(saved, input_mask, weight_hh_mask, None, "cuda")
    width = w_ih.shape[0]
    b_ih_z, b_hh_z = _zeros_if_none(b_ih, width, x.dtype), _zeros_if_none(b_hh, width, x.dtype)
    x_in, w_hh_in = _masked_inputs(x, w_hh, options.input_mask, options.weight_hh_mask)
    if options.layer_norm is None and options.recurrent_mask is None and options.zoneout_h is None:
        from .kernels import gru as kernels
        y, h_n, saved = kernels.gru_forward(x_in, w_ih, w_hh_in, b_ih_z, b_hh_z, h0, lengths, training, reset_after)
        kind = "plain"
    else:
        from .kernels import gru_variants as kernels
        y, h_n, saved = kernels.gru_variants_forward(x_in, w_ih, w_hh_in, b_ih_z, b_hh_z, h0, lengths, training,
                                                     *(options.layer_norm or (None, None)),
                                                     options.recurrent_mask, options.zoneout_h)
        kind = "variants"
    if not training:
        return y, h_n, None
    return y, h_n, VariantSaved((kind, saved), options.input_mask, options.weight_hh_mask, None)


def gru_backward(saved, dy, dh_n, has_biases, clip=np.inf, trace=None, gpu=None):
    """Gradients for :func:`gru_forward`'s run (gpu: as in :func:`lstm_backward`)."""
    if gpu is not None:
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dln = gpu.gru_variants_backward(saved, dy, dh_n)
        return GRUVariantGrads(dx, dh0, dw_ih, dw_hh, db_ih if has_biases[0] else None,
                               db_hh if has_biases[1] else None, dln)
    kind, kernel_saved = saved.kernel_saved
    if kind == "plain":
        from .kernels import gru as kernels
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = kernels.gru_backward(kernel_saved, dy, dh_n, clip=clip, trace=trace)
        dln = None
    else:
        from .kernels import gru_variants as kernels
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dln_ih, dln_hh = kernels.gru_variants_backward(
            kernel_saved, dy, dh_n, clip, trace)
        dln = None if dln_ih is None else (dln_ih, dln_hh)
    dx, dw_hh = _unmasked_grads(dx, dw_hh, saved)
    return GRUVariantGrads(dx, dh0, dw_ih, dw_hh, db_ih if has_biases[0] else None,
                           db_hh if has_biases[1] else None, dln)
