"""Weight converters: Keras and haste layouts to and from fastrnn's (= PyTorch's), NumPy only.

fastrnn keeps PyTorch's layout: ``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H),
``bias_ih``/``bias_hh`` (G*H,), gates LSTM i,f,g,o; GRU r,z,n; per layer
``_l{k}`` and ``_reverse`` suffixes in a state dict.

Keras (2 and 3; ``layer.get_weights()`` / ``layer.set_weights()`` order):

- ``LSTM``: ``kernel`` (I, 4H), ``recurrent_kernel`` (H, 4H), ``bias`` (4H,), gates
  i,f,c,o (the same order as torch's; the arrays are transposed and the two torch
  biases summed into Keras's one).
- ``GRU``: gates z,r,h. ``reset_after=True`` (Keras's default, torch's and
  fastrnn's default form) has ``bias`` (2, 3H): row 0 the input bias, row 1 the
  recurrent bias. ``reset_after=False`` (Cho et al. 2014; fastrnn
  ``GRU(reset_after=False)``) has ``bias`` (3H,).
- ``SimpleRNN``: ``kernel`` (I, H), ``recurrent_kernel`` (H, H), ``bias`` (H,).
- ``Bidirectional(layer)``: the forward layer's weights, then the backward layer's.

haste (``haste_pytorch``/``haste_tf``): ``LSTM`` ``kernel`` (I, 4H),
``recurrent_kernel`` (H, 4H), ``bias`` (4H,) with gates i,g,f,o; ``GRU`` (the
reset-after form) ``kernel`` (I, 3H), ``recurrent_kernel`` (H, 3H), ``bias`` and
``recurrent_bias`` (3H,) with gates z,r,n. haste layers are single-layer and
unidirectional.

Per-layer functions take and return plain arrays (any array-like, e.g. CPU torch
tensors, is read with ``np.asarray``); dtypes are kept. The state-dict functions
(:func:`from_keras`, :func:`to_keras`, :func:`from_haste`, :func:`to_haste`) handle
stacks and directions; load their result with ``layer.load_state_dict(...)``
(for a torch module wrap the values with ``torch.from_numpy``).
"""
import re

import numpy as np

__all__ = ["lstm_from_keras", "lstm_to_keras", "gru_from_keras", "gru_to_keras", "rnn_from_keras", "rnn_to_keras",
           "lstm_from_haste", "lstm_to_haste", "gru_from_haste", "gru_to_haste",
           "from_keras", "to_keras", "from_haste", "to_haste"]

_GATES = {"lstm": 4, "gru": 3, "rnn": 1}
# Keras GRU z,r,h <-> torch r,z,n: swapping the first two blocks both ways.
_KERAS_GRU = (1, 0, 2)
# haste LSTM i,g,f,o <-> torch i,f,g,o: swapping the middle two blocks both ways.
_HASTE_LSTM = (0, 2, 1, 3)
_HASTE_GRU = (1, 0, 2)


def _array(name, value, ndim):
    if value is None:
        raise TypeError(f"{name} must be an array, got None")
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise TypeError(f"{name} must hold floating-point values, got dtype {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {array.shape}")
    return array


def _blocks(a, order, axis):
    """Reorder the gate blocks of ``a`` along ``axis`` (``order[k]`` = source block of block k)."""
    parts = np.split(a, len(order), axis=axis)
    return np.ascontiguousarray(np.concatenate([parts[k] for k in order], axis=axis))


def _kernels_in(kernel, recurrent_kernel, gates, order):
    """(I, G*H), (H, G*H) column-gate kernels -> torch's (G*H, I), (G*H, H)."""
    kernel = _array("kernel", kernel, 2)
    recurrent_kernel = _array("recurrent_kernel", recurrent_kernel, 2)
    width = kernel.shape[1]
    if width % gates:
        raise ValueError(f"kernel must have shape (I, {gates}*H), got {kernel.shape}")
    hidden = width // gates
    if recurrent_kernel.shape != (hidden, width):
        raise ValueError(f"recurrent_kernel must have shape (H, {gates}*H) = {(hidden, width)} to match kernel "
                         f"{kernel.shape}, got {recurrent_kernel.shape}")
    if recurrent_kernel.dtype != kernel.dtype:
        raise TypeError(f"recurrent_kernel has dtype {recurrent_kernel.dtype} but kernel has {kernel.dtype}")
    return _blocks(kernel.T, order, 0), _blocks(recurrent_kernel.T, order, 0), hidden


def _weights_in(weight_ih, weight_hh, gates):
    weight_ih = _array("weight_ih", weight_ih, 2)
    weight_hh = _array("weight_hh", weight_hh, 2)
    if weight_ih.shape[0] % gates:
        raise ValueError(f"weight_ih must have shape ({gates}*H, I), got {weight_ih.shape}")
    hidden = weight_ih.shape[0] // gates
    if weight_hh.shape != (gates * hidden, hidden):
        raise ValueError(f"weight_hh must have shape ({gates}*H, H) = {(gates * hidden, hidden)}, got "
                         f"{weight_hh.shape} (LSTM projections, proj_size > 0, have no Keras or haste form)")
    if weight_hh.dtype != weight_ih.dtype:
        raise TypeError(f"weight_hh has dtype {weight_hh.dtype} but weight_ih has {weight_ih.dtype}")
    return weight_ih, weight_hh, hidden


def _bias(name, value, size, dtype):
    if value is None:
        return None
    b = _array(name, value, 1)
    if b.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {b.shape}")
    if b.dtype != dtype:
        raise TypeError(f"{name} has dtype {b.dtype} but the weights have dtype {dtype}")
    return b


def _summed(b_ih, b_hh, size, dtype):
    total = np.zeros(size, dtype)
    for b in (b_ih, b_hh):
        if b is not None:
            total = total + b
    return total


def _torch_dict(weight_ih, weight_hh, bias_ih, bias_hh):
    return {"weight_ih": weight_ih, "weight_hh": weight_hh, "bias_ih": bias_ih, "bias_hh": bias_hh}


# --------------------------------------------------------------------------- Keras, per layer

def lstm_from_keras(kernel, recurrent_kernel, bias=None):
    """Keras LSTM weights -> dict(weight_ih, weight_hh, bias_ih, bias_hh) (biases None without ``bias``).

    The Keras bias becomes ``bias_ih``; ``bias_hh`` is zero (only their sum matters).
    """
    w_ih, w_hh, hidden = _kernels_in(kernel, recurrent_kernel, 4, (0, 1, 2, 3))
    if bias is None:
        return _torch_dict(w_ih, w_hh, None, None)
    b = _bias("bias", bias, 4 * hidden, w_ih.dtype)
    return _torch_dict(w_ih, w_hh, np.array(b), np.zeros_like(b))


def lstm_to_keras(weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """fastrnn/torch LSTM weights -> ``[kernel, recurrent_kernel, bias]`` (Keras ``set_weights`` order).

    The bias (b_ih + b_hh) is left out when both biases are None (Keras ``use_bias=False``).
    """
    w_ih, w_hh, hidden = _weights_in(weight_ih, weight_hh, 4)
    b_ih, b_hh = (_bias(n, b, 4 * hidden, w_ih.dtype) for n, b in (("bias_ih", bias_ih), ("bias_hh", bias_hh)))
    out = [np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T)]
    if b_ih is not None or b_hh is not None:
        out.append(_summed(b_ih, b_hh, 4 * hidden, w_ih.dtype))
    return out


def gru_from_keras(kernel, recurrent_kernel, bias=None, reset_after=None):
    """Keras GRU weights -> dict(weight_ih, weight_hh, bias_ih, bias_hh).

    ``reset_after``: the Keras layer's form; None infers it from the bias shape
    ((2, 3H): True, (3H,): False; required when there is no bias). Load the result
    into a fastrnn GRU built with the same ``reset_after`` (torch's GRU is the
    reset-after form). A reset-before bias goes to ``bias_ih``; ``bias_hh`` is zero.
    """
    w_ih, w_hh, hidden = _kernels_in(kernel, recurrent_kernel, 3, _KERAS_GRU)
    if bias is None:
        if reset_after is None:
            raise ValueError("gru_from_keras needs reset_after (True or False) when there is no bias")
        return _torch_dict(w_ih, w_hh, None, None)
    b = np.asarray(bias)
    if b.ndim not in (1, 2):
        raise ValueError(f"bias must have shape (2, 3H) or (3H,), got {b.shape}")
    b = _array("bias", b, b.ndim)
    if b.dtype != w_ih.dtype:
        raise TypeError(f"bias has dtype {b.dtype} but the weights have dtype {w_ih.dtype}")
    inferred = {(2, 3 * hidden): True, (3 * hidden,): False}.get(b.shape)
    if inferred is None:
        raise ValueError(f"bias must have shape (2, 3H) = (2, {3 * hidden}) (reset_after=True) or "
                         f"(3H,) = ({3 * hidden},) (reset_after=False), got {b.shape}")
    if reset_after is not None and bool(reset_after) != inferred:
        raise ValueError(f"reset_after={reset_after} but bias has shape {b.shape}, the "
                         f"reset_after={inferred} form")
    if inferred:
        return _torch_dict(w_ih, w_hh, _blocks(b[0], _KERAS_GRU, 0), _blocks(b[1], _KERAS_GRU, 0))
    b_ih = _blocks(b, _KERAS_GRU, 0)
    return _torch_dict(w_ih, w_hh, b_ih, np.zeros_like(b_ih))


def gru_to_keras(weight_ih, weight_hh, bias_ih=None, bias_hh=None, reset_after=True):
    """fastrnn/torch GRU weights -> ``[kernel, recurrent_kernel, bias]`` for a Keras GRU of the same form.

    ``reset_after=True`` (torch's form): bias (2, 3H) = [b_ih; b_hh]. ``False`` (a fastrnn
    ``GRU(reset_after=False)``): bias (3H,) = b_ih + b_hh. The bias is left out when
    both biases are None.
    """
    w_ih, w_hh, hidden = _weights_in(weight_ih, weight_hh, 3)
    b_ih, b_hh = (_bias(n, b, 3 * hidden, w_ih.dtype) for n, b in (("bias_ih", bias_ih), ("bias_hh", bias_hh)))
    out = [_blocks(w_ih.T, _KERAS_GRU, 1), _blocks(w_hh.T, _KERAS_GRU, 1)]
    if b_ih is None and b_hh is None:
        return out
    zeros = np.zeros(3 * hidden, w_ih.dtype)
    b_ih = zeros if b_ih is None else b_ih
    b_hh = zeros if b_hh is None else b_hh
    if reset_after:
        out.append(np.stack([_blocks(b_ih, _KERAS_GRU, 0), _blocks(b_hh, _KERAS_GRU, 0)]))
    else:
        out.append(_blocks(b_ih + b_hh, _KERAS_GRU, 0))
    return out


def rnn_from_keras(kernel, recurrent_kernel, bias=None):
    """Keras SimpleRNN weights -> dict(weight_ih, weight_hh, bias_ih, bias_hh)."""
    w_ih, w_hh, hidden = _kernels_in(kernel, recurrent_kernel, 1, (0,))
    if bias is None:
        return _torch_dict(w_ih, w_hh, None, None)
    b = _bias("bias", bias, hidden, w_ih.dtype)
    return _torch_dict(w_ih, w_hh, np.array(b), np.zeros_like(b))


def rnn_to_keras(weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """fastrnn/torch RNN weights -> ``[kernel, recurrent_kernel, bias]`` (Keras SimpleRNN)."""
    w_ih, w_hh, hidden = _weights_in(weight_ih, weight_hh, 1)
    b_ih, b_hh = (_bias(n, b, hidden, w_ih.dtype) for n, b in (("bias_ih", bias_ih), ("bias_hh", bias_hh)))
    out = [np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T)]
    if b_ih is not None or b_hh is not None:
        out.append(_summed(b_ih, b_hh, hidden, w_ih.dtype))
    return out


# --------------------------------------------------------------------------- haste, per layer

def lstm_from_haste(kernel, recurrent_kernel, bias):
    """haste LSTM (gates i,g,f,o) -> dict(weight_ih, weight_hh, bias_ih, bias_hh); bias_hh is zero."""
    w_ih, w_hh, hidden = _kernels_in(kernel, recurrent_kernel, 4, _HASTE_LSTM)
    b = _bias("bias", bias, 4 * hidden, w_ih.dtype)
    if b is None:
        raise TypeError("bias must be an array, got None (haste layers always have a bias)")
    b_ih = _blocks(b, _HASTE_LSTM, 0)
    return _torch_dict(w_ih, w_hh, b_ih, np.zeros_like(b_ih))


def lstm_to_haste(weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """fastrnn/torch LSTM -> dict(kernel, recurrent_kernel, bias) in haste's layout (bias = b_ih + b_hh)."""
    w_ih, w_hh, hidden = _weights_in(weight_ih, weight_hh, 4)
    b_ih, b_hh = (_bias(n, b, 4 * hidden, w_ih.dtype) for n, b in (("bias_ih", bias_ih), ("bias_hh", bias_hh)))
    return {"kernel": _blocks(w_ih.T, _HASTE_LSTM, 1), "recurrent_kernel": _blocks(w_hh.T, _HASTE_LSTM, 1),
            "bias": _blocks(_summed(b_ih, b_hh, 4 * hidden, w_ih.dtype), _HASTE_LSTM, 0)}


def gru_from_haste(kernel, recurrent_kernel, bias, recurrent_bias):
    """haste GRU (gates z,r,n; reset-after) -> dict(weight_ih, weight_hh, bias_ih, bias_hh)."""
    w_ih, w_hh, hidden = _kernels_in(kernel, recurrent_kernel, 3, _HASTE_GRU)
    b = _bias("bias", bias, 3 * hidden, w_ih.dtype)
    rb = _bias("recurrent_bias", recurrent_bias, 3 * hidden, w_ih.dtype)
    if b is None or rb is None:
        raise TypeError("bias and recurrent_bias must be arrays (haste GRUs always have both)")
    return _torch_dict(w_ih, w_hh, _blocks(b, _HASTE_GRU, 0), _blocks(rb, _HASTE_GRU, 0))


def gru_to_haste(weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """fastrnn/torch GRU (reset-after form) -> dict(kernel, recurrent_kernel, bias, recurrent_bias)."""
    w_ih, w_hh, hidden = _weights_in(weight_ih, weight_hh, 3)
    b_ih, b_hh = (_bias(n, b, 3 * hidden, w_ih.dtype) for n, b in (("bias_ih", bias_ih), ("bias_hh", bias_hh)))
    zeros = np.zeros(3 * hidden, w_ih.dtype)
    return {"kernel": _blocks(w_ih.T, _HASTE_GRU, 1), "recurrent_kernel": _blocks(w_hh.T, _HASTE_GRU, 1),
            "bias": _blocks(zeros if b_ih is None else b_ih, _HASTE_GRU, 0),
            "recurrent_bias": _blocks(zeros if b_hh is None else b_hh, _HASTE_GRU, 0)}


# --------------------------------------------------------------------------- state dicts

def _check_cell(cell):
    if cell not in _GATES:
        raise ValueError(f"cell must be 'lstm', 'gru' or 'rnn', got {cell!r}")
    return cell


_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def _layout(state_dict):
    """(num_layers, num_directions, has_bias) of a recurrent layer's state dict; rejects projections."""
    layers, directions, has_bias = 0, 1, False
    for key in state_dict:
        match = _KEY.match(key)
        if match is None:
            raise ValueError(f"unexpected state_dict key {key!r} (expected weight_ih_l0, bias_hh_l1_reverse, ...)")
        if match.group(1) == "weight_hr":
            raise ValueError("LSTM projections (weight_hr, proj_size > 0) have no Keras or haste form")
        layers = max(layers, int(match.group(2)) + 1)
        directions = 2 if match.group(3) else directions
        has_bias = has_bias or match.group(1).startswith("bias")
    if layers == 0:
        raise ValueError("state_dict holds no recurrent weights")
    return layers, directions, has_bias


def _layer_weights(state_dict, layer, direction):
    suffix = f"_l{layer}" + ("_reverse" if direction else "")

    def get(name):
        value = state_dict.get(name + suffix)
        return None if value is None else np.asarray(value)
    if get("weight_ih") is None:
        raise ValueError(f"state_dict has no weight_ih{suffix}")
    return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")


def from_keras(cell, weights, *, bidirectional=False, use_bias=True, reset_after=None):
    """Keras weights of a stack of recurrent layers -> a fastrnn/torch state dict.

    weights: the flat list ``get_weights()`` returns for the stack (per layer
    kernel, recurrent_kernel[, bias]; a ``Bidirectional`` layer gives the forward
    layer's then the backward layer's). The number of layers follows from its
    length. cell: "lstm", "gru" (Keras GRU) or "rnn" (SimpleRNN).
    ``reset_after``: GRU form (None infers it from the biases).
    """
    cell = _check_cell(cell)
    per = 3 if use_bias else 2
    dirs = 2 if bidirectional else 1
    weights = list(weights)
    if not weights or len(weights) % (per * dirs):
        raise ValueError(f"weights must hold a multiple of {per * dirs} arrays ({per} per layer and direction), "
                         f"got {len(weights)}")
    convert = {"lstm": lstm_from_keras, "gru": gru_from_keras, "rnn": rnn_from_keras}[cell]
    state = {}
    for index in range(len(weights) // per):
        layer, direction = divmod(index, dirs)
        arrays = weights[index * per:(index + 1) * per]
        if not use_bias:
            arrays = arrays + [None]
        extra = {"reset_after": reset_after} if cell == "gru" else {}
        converted = convert(*arrays, **extra)
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        for name, value in converted.items():
            if value is not None:
                state[name + suffix] = value
    return state


def to_keras(cell, state_dict, *, reset_after=True):
    """A fastrnn/torch recurrent layer's state dict -> Keras's flat ``set_weights`` list for the stack.

    Layers in order; for bidirectional layers the forward direction's arrays, then the
    reverse's (Keras ``Bidirectional``). ``reset_after``: the GRU form (the layer's).
    Accepts NumPy arrays or CPU torch tensors as values.
    """
    cell = _check_cell(cell)
    layers, dirs, _ = _layout(state_dict)
    out = []
    for layer in range(layers):
        for direction in range(dirs):
            w = _layer_weights(state_dict, layer, direction)
            if cell == "lstm":
                out += lstm_to_keras(*w)
            elif cell == "gru":
                out += gru_to_keras(*w, reset_after=reset_after)
            else:
                out += rnn_to_keras(*w)
    return out


def from_haste(cell, params):
    """haste layer parameters (a dict by haste's names, e.g. ``dict(layer.named_parameters())``
    as arrays) -> a single-layer fastrnn/torch state dict (``*_l0``)."""
    cell = _check_cell(cell)
    params = {k: np.asarray(v) for k, v in params.items()}
    if cell == "lstm":
        converted = lstm_from_haste(params["kernel"], params["recurrent_kernel"], params["bias"])
    elif cell == "gru":
        converted = gru_from_haste(params["kernel"], params["recurrent_kernel"], params["bias"],
                                   params["recurrent_bias"])
    else:
        raise ValueError("haste has no plain RNN layer with these weights; cell must be 'lstm' or 'gru'")
    return {f"{name}_l0": value for name, value in converted.items()}


def to_haste(cell, state_dict):
    """A single-layer unidirectional fastrnn/torch state dict -> haste's parameter dict."""
    cell = _check_cell(cell)
    layers, dirs, _ = _layout(state_dict)
    if layers != 1 or dirs != 1:
        raise ValueError(f"haste layers are single-layer and unidirectional; got {layers} layers, "
                         f"{dirs} directions")
    w = _layer_weights(state_dict, 0, 0)
    if cell == "lstm":
        return lstm_to_haste(*w)
    if cell == "gru":
        return gru_to_haste(*w)
    raise ValueError("haste has no plain RNN layer with these weights; cell must be 'lstm' or 'gru'")
