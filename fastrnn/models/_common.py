"""Helpers shared by the ready models: building the recurrent layer, state handling,
sub-seeds, batched prediction."""
import numpy as np

from ..nn import GRU, LSTM, RNN

_LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


def check_cell(cell):
    if cell not in _LAYERS:
        raise ValueError(f"cell must be one of {sorted(_LAYERS)}, got {cell!r}")
    return cell


def sub_seed(seed, k):
    """A distinct int seed per submodule (None stays None: fresh entropy)."""
    return None if seed is None else int(seed) * 1009 + k


def recurrent(cell, input_size, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
              dtype=np.float32, seed=None):
    """A batch-first RNN/LSTM/GRU layer."""
    return _LAYERS[check_cell(cell)](input_size, hidden_size, num_layers=num_layers, batch_first=True,
                                     dropout=dropout, bidirectional=bidirectional, dtype=dtype, seed=seed)


def hidden_of(cell, state):
    """h of a layer's final state (the pair's first element for an LSTM)."""
    return state[0] if cell == "lstm" else state


def state_grad(cell, dh):
    """The d_state argument for ``layer.backward`` from dL/dh_n (dc_n zero for an LSTM)."""
    return (dh, None) if cell == "lstm" else dh


def check_dense(name, x, dtype, ndim=3):
    x = np.asarray(x)
    if x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype} but the model has dtype {dtype}: convert it with "
                        f".astype(np.{dtype}) (fastrnn never casts silently)")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} axes, got shape {x.shape}")
    return x


def batched(fn, n, batch_size, *arrays):
    """Concatenate ``fn(*rows)`` over slices of ``batch_size`` samples (None arrays stay None)."""
    if batch_size is None or batch_size >= n:
        return fn(*arrays)
    parts = []
    for start in range(0, n, batch_size):
        parts.append(fn(*[None if a is None else a[start:start + batch_size] for a in arrays]))
    return np.concatenate(parts, axis=0)


class eval_mode:
    """Context manager: ``model.eval()`` inside, the previous training flag restored after."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.was = self.model.training
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        self.model.train(self.was)
        return False


def softmax(logits, temperature=1.0):
    # shift before dividing: a tiny temperature then sends the others to -inf (greedy)
    # instead of overflowing every logit to inf (inf - inf = NaN)
    with np.errstate(over="ignore"):  # -inf is the intended result there: exp gives 0
        z = (logits - logits.max(axis=-1, keepdims=True)) / temperature
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
