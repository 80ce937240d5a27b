"""Variant options of the LSTM and GRU layers: checks, extra parameters, masks.

Options (constructor keywords; the defaults keep torch's cell):

    LSTM: peephole=False, coupled_gates=False, cell_clip=None, layer_norm=False,
          input_dropout=0.0, recurrent_dropout=0.0, zoneout=0.0, weight_dropout=0.0
    GRU:  layer_norm=False, input_dropout=0.0, recurrent_dropout=0.0, zoneout=0.0,
          weight_dropout=0.0

Extra parameters, per layer k and direction (suffix ``_l{k}`` / ``_l{k}_reverse``),
registered after torch's own in this order (names are stable):

    weight_ci, weight_cf, weight_co (H,)   peephole (no weight_ci with coupled_gates)
    ln_weight_ih, ln_weight_hh (G*H,)      layer-norm gains of the input and recurrent
                                           pre-activations (their biases are bias_ih/hh)
    ln_weight_c, ln_bias_c (H,)            LSTM: layer norm of the cell before tanh

With coupled_gates the LSTM has no input gate: weight_ih (3H, I), weight_hh (3H, H)
and the biases (3H,) hold the blocks f, g, o, and i = 1 - f.

Regularizers act in training mode only, from the layer's seeded generator:
input_dropout and recurrent_dropout draw one mask per sequence per call (Gal &
Ghahramani; reused at every step), weight_dropout one DropConnect mask of weight_hh
per call (AWD-LSTM); all are scaled by 1/(1-p). zoneout keeps each unit's previous
h (and c) with probability p at every step; in eval() the expectation
p * previous + (1 - p) * new is used. ``zoneout`` is one probability for h and c or
a pair (p_h, p_c) (LSTM).
"""
import numpy as np

from .. import _validate as check

__all__ = ["LSTM_OPTIONS", "GRU_OPTIONS", "check_options"]

LSTM_OPTIONS = dict(peephole=False, coupled_gates=False, cell_clip=None, layer_norm=False, input_dropout=0.0,
                    recurrent_dropout=0.0, zoneout=0.0, weight_dropout=0.0)
GRU_OPTIONS = dict(layer_norm=False, input_dropout=0.0, recurrent_dropout=0.0, zoneout=0.0, weight_dropout=0.0)


def check_options(cell, values):
    """The non-default options among ``values`` (a dict of the keywords above), checked."""
    defaults = LSTM_OPTIONS if cell == "lstm" else GRU_OPTIONS
    chosen = {}
    for name, default in defaults.items():
        value = values.get(name, default)
        if name in ("peephole", "coupled_gates", "layer_norm"):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {value!r}")
            value = bool(value)
        elif name == "cell_clip":
            value = check.positive_bound("cell_clip", value)
        elif name == "zoneout" and cell == "lstm" and isinstance(value, (tuple, list)):
            if len(value) != 2:
                raise ValueError(f"zoneout must be a probability or a pair (p_h, p_c), got {value!r}")
            value = (check.probability("zoneout[0] (h)", value[0]), check.probability("zoneout[1] (c)", value[1]))
            value = value if value != (0.0, 0.0) else 0.0
        else:
            value = check.probability(name, value)
        if value != default:
            chosen[name] = value
    return chosen


def zoneout_pair(variants):
    """(p_h, p_c) from the ``zoneout`` option."""
    z = variants.get("zoneout", 0.0)
    return tuple(z) if isinstance(z, (tuple, list)) else (z, z)


def parameters(cell, variants, hidden, width, rng, bound):
    """(name, initial value) of one layer and direction's variant parameters, in registration order.

    Peephole weights start like the others, U(-bound, bound); layer-norm gains at 1, biases at 0.
    """
    out = []
    if variants.get("peephole"):
        names = ("weight_cf", "weight_co") if variants.get("coupled_gates") else ("weight_ci", "weight_cf", "weight_co")
        out += [(name, rng.uniform(-bound, bound, hidden)) for name in names]
    if variants.get("layer_norm"):
        out += [("ln_weight_ih", np.ones(width)), ("ln_weight_hh", np.ones(width))]
        if cell == "lstm":
            out += [("ln_weight_c", np.ones(hidden)), ("ln_bias_c", np.zeros(hidden))]
    return out


def arguments(module, cell, layer, suffix, shape, training):
    """fastrnn.functional variant keywords for one (layer, direction) call on (T, B, I) input."""
    variants = module.variants
    if not variants:
        return {}

    def param(name):
        return getattr(module, f"{name}_l{layer}{suffix}").data

    args = {}
    coupled = bool(variants.get("coupled_gates"))
    if cell == "lstm":
        if coupled:
            args["coupled"] = True
        if variants.get("peephole"):
            args["peephole"] = (None if coupled else param("weight_ci"), param("weight_cf"), param("weight_co"))
        if variants.get("cell_clip"):
            args["cell_clip"] = variants["cell_clip"]
    if variants.get("layer_norm"):
        names = ("ln_weight_ih", "ln_weight_hh") + (("ln_weight_c", "ln_bias_c") if cell == "lstm" else ())
        args["layer_norm"] = tuple(param(name) for name in names)
    args.update(_masks(module, cell, shape, training))
    return args


def _masks(module, cell, shape, training):
    steps, batch, n_in = shape
    variants, rng, dtype, hidden = module.variants, module._rng, module.dtype, module.hidden_size
    width = module.gate_count * hidden

    def keep(p, size):  # inverted dropout: E[mask] = 1
        return (rng.random(size) < 1.0 - p).astype(dtype) / dtype.type(1.0 - p)

    masks = {}
    if training:
        for name, key, size in (("input_dropout", "input_mask", (batch, n_in)),
                                ("recurrent_dropout", "recurrent_mask", (batch, hidden)),
                                ("weight_dropout", "weight_hh_mask", (width, hidden))):
            if variants.get(name):
                masks[key] = keep(variants[name], size)
    p_h, p_c = zoneout_pair(variants)
    for p, key in ((p_h, "zoneout_h"), (p_c if cell == "lstm" else 0.0, "zoneout_c")):
        if p:
            masks[key] = (rng.random((steps, batch, hidden)) < p).astype(dtype) if training else p
    return masks


def gradients(module, cell, layer, suffix, grads):
    """(Parameter, gradient) pairs of the variant parameters from one functional backward."""
    variants = module.variants
    pairs = []

    def param(name):
        return getattr(module, f"{name}_l{layer}{suffix}")

    if variants.get("peephole"):
        for name, grad in zip(("weight_ci", "weight_cf", "weight_co"), grads.dpeephole):
            if grad is not None:
                pairs.append((param(name), grad))
    if variants.get("layer_norm"):
        names = ("ln_weight_ih", "ln_weight_hh") + (("ln_weight_c", "ln_bias_c") if cell == "lstm" else ())
        pairs += [(param(name), grad) for name, grad in zip(names, grads.dlayer_norm)]
    return pairs
