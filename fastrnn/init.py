"""Weight initializers for fastrnn's recurrent layers and cells.

Two levels:

* **Array functions** (``uniform_``, ``normal_``, ``torch_default_``,
  ``xavier_uniform_``, ``xavier_normal_``, ``orthogonal_``, ``identity_``,
  ``zeros_``, ``constant_``) write *in place* into a floating-point NumPy array
  (float16/32/64; the dtype is kept, values are drawn in float64 and cast) and
  return that same array. Random ones take ``rng``: a ``np.random.Generator``
  (advanced by the call), an int seed, or None (fresh OS entropy). The same seed
  gives the same values.
* **Gate-aware helpers**: a recurrent layer stacks its gate blocks along axis 0
  in torch's order (LSTM ``i, f, g, o``; GRU ``r, z, n``; RNN one block), so
  ``weight_hh`` is ``(G*H, H)`` (``(4H, P)`` for an LSTM with ``proj_size=P``).
  :func:`per_gate_` applies an initializer to every ``(H, ...)`` block
  separately, like Keras' ``recurrent_initializer`` applied per gate;
  :func:`orthogonal_per_gate_` and :func:`identity_per_gate_` are the usual cases;
  :func:`gate_slice` and :func:`forget_bias_` locate/set one gate's block.

:func:`initialize` applies a whole scheme (``"torch"``, ``"xavier"``,
``"orthogonal"``, ``"irnn"``) to a ``fastrnn.RNN/LSTM/GRU`` layer (or an
``RNNCell/LSTMCell/GRUCell``) in place, optionally with an LSTM forget-gate bias.

Example::

    import fastrnn, fastrnn.init
    lstm = fastrnn.LSTM(64, 128, num_layers=2)
    fastrnn.init.initialize(lstm, "orthogonal", forget_bias=1.0, seed=0)
"""
import math
import re

import numpy as np

from . import _validate as check

__all__ = [
    "GATES",
    "IRNN_INPUT_STD",
    "SCHEMES",
    "calculate_fan_in_and_fan_out",
    "constant_",
    "forget_bias_",
    "gate_slice",
    "identity_",
    "identity_per_gate_",
    "initialize",
    "normal_",
    "orthogonal_",
    "orthogonal_per_gate_",
    "per_gate_",
    "torch_default_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

#: Gate order along axis 0 of the stacked weights and biases, per cell type (torch's order).
GATES = {"rnn": ("h",), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}

#: Schemes understood by :func:`initialize`.
SCHEMES = ("torch", "xavier", "orthogonal", "irnn")

#: Standard deviation of the input weights in the "irnn" scheme (Le, Jaitly & Hinton 2015 use N(0, 0.001)).
IRNN_INPUT_STD = 1e-3


# ---------------------------------------------------------------------------------------------
# validation helpers

def _check_array(a, name="a", min_ndim=0):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a NumPy ndarray (it is written in place), got {type(a).__name__}")
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name} must have a floating-point dtype (float16/32/64), got {a.dtype}")
    if not a.flags.writeable:
        raise ValueError(f"{name} is read-only; initializers write in place")
    if a.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {a.shape}")
    return a


def _rng(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}")


def _number(name, value, positive=False, nonneg=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if nonneg and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def _write(a, values):
    a[...] = values  # casts to a.dtype; works on views (gate blocks)
    return a


# ---------------------------------------------------------------------------------------------
# array-level initializers

def uniform_(a, low=0.0, high=1.0, rng=None):
    """Fill ``a`` (any shape, float dtype) in place with U(low, high) draws; return ``a``."""
    _check_array(a)
    low, high = _number("low", low), _number("high", high)
    if high < low:
        raise ValueError(f"high must be >= low, got low={low}, high={high}")
    return _write(a, _rng(rng).uniform(low, high, a.shape))


def normal_(a, mean=0.0, std=1.0, rng=None):
    """Fill ``a`` (any shape, float dtype) in place with N(mean, std²) draws; return ``a``."""
    _check_array(a)
    mean, std = _number("mean", mean), _number("std", std, nonneg=True)
    return _write(a, _rng(rng).normal(mean, std, a.shape))


def torch_default_(a, hidden_size, rng=None):
    """torch's default for RNN/LSTM/GRU parameters: U(-1/sqrt(H), 1/sqrt(H)) in place.

    ``a``: any shape, float dtype (a weight ``(G*H, I)``/``(G*H, H)`` or bias ``(G*H,)``);
    ``hidden_size``: H (a positive int). Returns ``a``.
    """
    bound = 1.0 / math.sqrt(_hidden(hidden_size))
    return uniform_(a, -bound, bound, rng)


def calculate_fan_in_and_fan_out(a):
    """``(fan_in, fan_out)`` as ``torch.nn.init._calculate_fan_in_and_fan_out``.

    For a 2-D ``(out, in)`` weight: ``fan_in = in = shape[1]``, ``fan_out = out = shape[0]``;
    extra trailing dimensions multiply both (receptive field). Needs ``ndim >= 2``.
    """
    shape = np.shape(a)
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need an array with at least 2 dimensions, got shape {tuple(shape)}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return int(shape[1]) * receptive, int(shape[0]) * receptive


def xavier_uniform_(a, gain=1.0, rng=None):
    """Glorot/Xavier uniform in place: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)).

    ``a``: float array with ``ndim >= 2`` (``(out, in)`` for a weight; fans as torch). Returns ``a``.
    """
    _check_array(a, min_ndim=2)
    fan_in, fan_out = calculate_fan_in_and_fan_out(a)
    bound = _number("gain", gain) * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(a, -abs(bound), abs(bound), rng)


def xavier_normal_(a, gain=1.0, rng=None):
    """Glorot/Xavier normal in place: N(0, s²), s = gain * sqrt(2 / (fan_in + fan_out)).

    ``a``: float array with ``ndim >= 2`` (fans as torch). Returns ``a``.
    """
    _check_array(a, min_ndim=2)
    fan_in, fan_out = calculate_fan_in_and_fan_out(a)
    std = abs(_number("gain", gain)) * math.sqrt(2.0 / (fan_in + fan_out))
    return normal_(a, 0.0, std, rng)


def orthogonal_(a, gain=1.0, rng=None):
    """(Semi-)orthogonal matrix in place, times ``gain`` (Saxe et al. 2013; torch's algorithm).

    ``a``: float array with ``ndim >= 2``, viewed as ``(rows, cols) = (shape[0], size // shape[0])``.
    A Gaussian matrix is QR-factorised (transposed first when rows < cols) and Q's
    columns are multiplied by the signs of R's diagonal, which makes Q Haar-distributed.
    Result: orthonormal rows if rows <= cols, orthonormal columns otherwise
    (``W.T @ W = gain² I`` for square/tall ``W``). Computed in float64. Returns ``a``.
    """
    _check_array(a, min_ndim=2)
    gain = _number("gain", gain)
    if a.size == 0:
        return a
    rows = a.shape[0]
    cols = a.size // rows
    flat = _rng(rng).normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    d = np.sign(np.diag(r))
    d[d == 0] = 1.0
    q = q * d
    if rows < cols:
        q = q.T
    return _write(a, (gain * q).reshape(a.shape))


def identity_(a, scale=1.0):
    """``scale`` times the identity in place (``np.eye(rows, cols)``, like ``torch.nn.init.eye_``).

    ``a``: 2-D float array (rectangular allowed: ones on the main diagonal). Returns ``a``.
    """
    _check_array(a, min_ndim=2)
    if a.ndim != 2:
        raise ValueError(f"identity_ needs a 2-D array, got shape {a.shape}")
    return _write(a, _number("scale", scale) * np.eye(*a.shape))


def zeros_(a):
    """Fill ``a`` (any shape, float dtype) with 0 in place; return ``a``."""
    _check_array(a)
    a[...] = 0
    return a


def constant_(a, value):
    """Fill ``a`` (any shape, float dtype) with ``value`` in place; return ``a``."""
    _check_array(a)
    a[...] = _number("value", value)
    return a


# ---------------------------------------------------------------------------------------------
# gate-aware helpers

def _hidden(hidden_size):
    return check.positive_int("hidden_size", hidden_size)


def per_gate_(a, hidden_size, init, *args, **kwargs):
    """Apply ``init(block, *args, **kwargs)`` to every gate block ``a[g*H:(g+1)*H]`` in place.

    ``a``: float array of shape ``(G*H, ...)`` (a stacked weight ``(G*H, H)`` or bias ``(G*H,)``);
    ``init``: one of the array functions. An int ``rng`` keyword is turned into one
    Generator first, so the blocks get different (but reproducible) draws. Returns ``a``.
    """
    _check_array(a, min_ndim=1)
    hidden_size = _hidden(hidden_size)
    if a.shape[0] % hidden_size:
        raise ValueError(f"first dimension {a.shape[0]} is not a multiple of hidden_size {hidden_size}")
    if "rng" in kwargs:
        kwargs["rng"] = _rng(kwargs["rng"])
    for g in range(a.shape[0] // hidden_size):
        init(a[g * hidden_size:(g + 1) * hidden_size], *args, **kwargs)
    return a


def orthogonal_per_gate_(a, hidden_size, gain=1.0, rng=None):
    """Orthogonal init of each ``(H, K)`` gate block of a ``(G*H, K)`` recurrent weight; returns ``a``.

    Each block satisfies ``B.T @ B = gain² I`` when K <= H (``B @ B.T`` otherwise).
    """
    return per_gate_(a, hidden_size, orthogonal_, gain=gain, rng=_rng(rng))


def identity_per_gate_(a, hidden_size, scale=1.0):
    """``scale * I`` in each ``(H, K)`` gate block of a ``(G*H, K)`` weight; returns ``a``."""
    return per_gate_(a, hidden_size, identity_, scale=scale)


def gate_slice(cell, gate, hidden_size):
    """The ``slice`` of axis 0 holding ``gate`` (e.g. ``"f"``) for ``cell`` in {"rnn", "lstm", "gru"}."""
    if cell not in GATES:
        raise ValueError(f"cell must be one of {sorted(GATES)}, got {cell!r}")
    if gate not in GATES[cell]:
        raise ValueError(f"{cell} has gates {GATES[cell]}, not {gate!r}")
    hidden_size = _hidden(hidden_size)
    g = GATES[cell].index(gate)
    return slice(g * hidden_size, (g + 1) * hidden_size)


def forget_bias_(bias_ih, bias_hh, hidden_size, value=1.0):
    """LSTM forget-gate bias in place: ``bias_ih[f] = value``, ``bias_hh[f] = 0`` (sum = value).

    ``bias_ih``, ``bias_hh``: float arrays ``(4H,)``, gates i, f, g, o, or ``(3H,)`` for
    an LSTM with coupled gates (blocks f, g, o). Other blocks untouched.
    Returns ``(bias_ih, bias_hh)``.
    """
    hidden_size = _hidden(hidden_size)
    for name, b in (("bias_ih", bias_ih), ("bias_hh", bias_hh)):
        _check_array(b, name)
        if b.shape not in ((4 * hidden_size,), (3 * hidden_size,)) or b.shape != np.shape(bias_ih):
            raise ValueError(f"{name} must have shape (4*hidden_size,) = ({4 * hidden_size},) (or (3*hidden_size,) "
                             f"with coupled gates), like bias_ih; got {b.shape}")
    coupled = bias_ih.shape[0] == 3 * hidden_size
    f = slice(0, hidden_size) if coupled else gate_slice("lstm", "f", hidden_size)
    constant_(bias_ih[f], value)
    zeros_(bias_hh[f])
    return bias_ih, bias_hh


# ---------------------------------------------------------------------------------------------
# whole-layer schemes

_NAME = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)(_l\d+)?(_reverse)?$")


def _layer_params(layer):
    cell = getattr(layer, "_cell", None)
    if cell not in GATES or not hasattr(layer, "named_parameters") or not hasattr(layer, "hidden_size"):
        raise TypeError("initialize needs a fastrnn RNN/LSTM/GRU layer or RNNCell/LSTMCell/GRUCell, "
                        f"got {type(layer).__name__}")
    groups = {}
    for name, param in layer.named_parameters(recurse=False):
        m = _NAME.match(name)
        if m is None:
            continue  # parameters of variants (peephole, layer norm, ...) keep their own init
        _check_array(param.data, name)
        key = (m.group(2) or "") + (m.group(3) or "")
        groups.setdefault(key, {})[m.group(1)] = param.data
    return cell, groups


def initialize(layer, scheme="torch", forget_bias=None, seed=None):
    """Re-initialise a recurrent layer's parameters in place; return the layer.

    ``layer``: ``fastrnn.RNN``, ``LSTM`` or ``GRU`` (any ``num_layers``, ``bidirectional``,
    LSTM ``proj_size``), or ``RNNCell``/``LSTMCell``/``GRUCell``. Parameters are
    ``weight_ih (G*H, I)``, ``weight_hh (G*H, H)`` (``(4H, P)`` with projection),
    ``bias_ih``/``bias_hh (G*H,)`` and ``weight_hr (P, H)``; their dtypes are kept.

    ``scheme``:

    * ``"torch"``: everything U(-1/sqrt(H), 1/sqrt(H)) (torch's default).
    * ``"xavier"``: Xavier-uniform ``weight_ih`` (whole matrix, fan_in = I, fan_out = G*H,
      as torch/Keras' glorot_uniform kernel), orthogonal ``weight_hh`` per gate block,
      zero biases (Keras' defaults).
    * ``"orthogonal"``: orthogonal ``weight_hh`` per gate block, Xavier-*normal*
      ``weight_ih``, zero biases.
    * ``"irnn"``: identity ``weight_hh`` (scale 1), zero biases, ``weight_ih`` ~
      N(0, IRNN_INPUT_STD²) (Le, Jaitly & Hinton 2015). Only for ``RNN``/``RNNCell``
      with ``nonlinearity="relu"``.

    In the non-"torch" schemes an LSTM's ``weight_hr`` is orthogonal (it is part of the loop).

    ``forget_bias``: LSTM only (needs ``bias=True``): after the scheme, the forget-gate
    block of ``bias_ih`` is set to the value and that of ``bias_hh`` to 0, so the
    effective bias of f is exactly ``forget_bias``. ``seed``: int, Generator or None;
    the same seed gives the same parameters.

    Raises ``ValueError`` for an unknown scheme, "irnn" on a non-ReLU-RNN, or
    ``forget_bias`` on a non-LSTM / bias-free layer; ``TypeError`` for a non-layer or
    non-float parameters.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; expected one of {SCHEMES}")
    cell, groups = _layer_params(layer)
    if scheme == "irnn":
        nonlinearity = getattr(layer, "cell_options", {}).get("nonlinearity", "tanh")
        if cell != "rnn" or nonlinearity != "relu":
            what = f"RNN with nonlinearity={nonlinearity!r}" if cell == "rnn" else cell.upper()
            raise ValueError(f"scheme 'irnn' needs an RNN with nonlinearity='relu', got {what}")
    if forget_bias is not None:
        if cell != "lstm":
            raise ValueError(f"forget_bias applies only to LSTM layers, got a {cell.upper()} layer")
        forget_bias = _number("forget_bias", forget_bias)
        if not getattr(layer, "bias", True) or any("bias_ih" not in g for g in groups.values()):
            raise ValueError("forget_bias needs a layer with bias=True")
    hidden = int(layer.hidden_size)
    rng = _rng(seed)
    for params in groups.values():  # registration order: layer 0, its reverse, layer 1, ...
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"):
            a = params.get(name)
            if a is None:
                continue
            if scheme == "torch":
                torch_default_(a, hidden, rng)
            elif name.startswith("bias"):
                zeros_(a)
            elif scheme == "irnn":
                if name == "weight_ih":
                    normal_(a, 0.0, IRNN_INPUT_STD, rng)
                else:
                    identity_per_gate_(a, hidden)
            elif name == "weight_ih":
                (xavier_uniform_ if scheme == "xavier" else xavier_normal_)(a, rng=rng)
            elif name == "weight_hh":
                orthogonal_per_gate_(a, hidden, rng=rng)
            else:  # weight_hr (P, H)
                orthogonal_(a, rng=rng)
        if forget_bias is not None:
            forget_bias_(params["bias_ih"], params["bias_hh"], hidden, forget_bias)
    return layer
