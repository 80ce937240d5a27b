"""Feed-forward layers: :class:`Linear`, :class:`Embedding`, :class:`Dropout`.

Same parameter names, shapes and initialisation as PyTorch's layers, NumPy arrays
in and out. Each layer has ``backward``: called after a training-mode forward, it
returns the gradient of the input and accumulates ``.grad`` on the parameters.
The forward keeps references to what the backward needs (not copies, except
Embedding's indices): do not modify its input in place before the backward.

dtype is never changed silently: a layer built with ``dtype=np.float32`` takes
float32 input and returns float32 (float64 input raises ``TypeError``).
"""
import numpy as np

from .. import _validate as check
from .module import Module, Parameter

__all__ = ["Linear", "Embedding", "Dropout"]



# --------------------------------------------------------------------------- checks

_float_dtype = check.float_dtype


def _rng(seed):
    """A ``np.random.Generator`` from None, an int or a Generator; plus the seed to record."""
    seed = check.seed(seed)
    return np.random.default_rng(seed), (seed if isinstance(seed, int) else None)


def _float_input(name, value, dtype, layer):
    """``value`` as an ndarray of exactly ``dtype`` (or any float dtype when None)."""
    return check.floats(name, value, dtype, layer)


def _no_forward(layer):
    return RuntimeError(f"{layer}.backward() needs a preceding forward in training mode "
                        "(call layer.train() before the forward)")


# --------------------------------------------------------------------------- Linear

class Linear(Module):
    """Affine map ``y = x @ weight.T + bias``, as ``torch.nn.Linear``.

    Parameters: ``weight`` (out_features, in_features) and, with ``bias=True``,
    ``bias`` (out_features,), both of ``dtype`` (float32 or float64), initialised
    U(-1/sqrt(in_features), 1/sqrt(in_features)) from ``np.random.default_rng(seed)``
    (``seed``: None, an int, or a ``np.random.Generator``).

    ``forward(x)``: x (..., in_features) of the layer's dtype -> y (..., out_features).
    In training mode it keeps x for :meth:`backward`.
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, seed=None):
        super().__init__()
        self.in_features = check.positive_int("in_features", in_features)
        self.out_features = check.positive_int("out_features", out_features)
        has_bias = check.flag("bias", bias)
        dtype = _float_dtype(dtype)
        rng, self._seed = _rng(seed)
        bound = 1.0 / np.sqrt(self.in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, (self.out_features, self.in_features)).astype(dtype))
        if has_bias:
            self.bias = Parameter(rng.uniform(-bound, bound, self.out_features).astype(dtype))
        else:
            self.register_parameter("bias", None)
        self._x = None

    @property
    def dtype(self):
        """The parameters' dtype."""
        return self.weight.dtype

    def config(self):
        """Constructor arguments (for :func:`fastrnn.nn.save`)."""
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "dtype": self.dtype, "seed": self._seed}

    def forward(self, x):
        """x (..., in_features) -> y (..., out_features), same dtype as the layer."""
        x = _float_input("x", x, self.dtype, "Linear")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., in_features) = (..., {self.in_features}), "
                             f"got shape {x.shape}")
        y = np.matmul(x, self.weight.data.T)
        if self.bias is not None:
            y += self.bias.data
        self._x = x if self.training else None
        return y

    def backward(self, dy):
        """dL/dy (..., out_features) -> dL/dx (..., in_features).

        Accumulates ``weight.grad`` += dy^T x and ``bias.grad`` += sum of dy over
        all leading axes. Needs a preceding training-mode forward."""
        if self._x is None:
            raise _no_forward("Linear")
        x = self._x
        dy = _float_input("dy", dy, self.dtype, "Linear")
        expected = x.shape[:-1] + (self.out_features,)
        if dy.shape != expected:
            raise ValueError(f"dy must have the output's shape (..., out_features) = {expected}, "
                             f"got shape {dy.shape}")
        dx = np.matmul(dy, self.weight.data)
        dy2 = dy.reshape(-1, self.out_features)
        self.weight.accumulate_grad(dy2.T @ x.reshape(-1, self.in_features), copy=False)
        if self.bias is not None:
            self.bias.accumulate_grad(dy2.sum(axis=0), copy=False)
        return dx

    def extra_repr(self):
        extra = f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        return extra if self.dtype == np.float32 else f"{extra}, dtype={self.dtype}"


# --------------------------------------------------------------------------- Embedding

class Embedding(Module):
    """Lookup table ``y = weight[indices]``, as ``torch.nn.Embedding``.

    Parameter ``weight`` (num_embeddings, embedding_dim) of ``dtype`` (float32 or
    float64), initialised N(0, 1) from ``np.random.default_rng(seed)``.
    ``padding_idx`` (an int in [-num_embeddings, num_embeddings), negative counts
    from the end, or None): that row starts at zero and never receives a gradient.

    ``forward(indices)``: integer array of any shape (values in [0, num_embeddings))
    -> y (*indices.shape, embedding_dim) of the layer's dtype (a copy).
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, dtype=np.float32, seed=None):
        super().__init__()
        self.num_embeddings = check.positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = check.positive_int("embedding_dim", embedding_dim)
        if padding_idx is not None:
            if isinstance(padding_idx, (bool, np.bool_)) or not isinstance(padding_idx, (int, np.integer)):
                raise TypeError(f"padding_idx must be an int or None, got {type(padding_idx).__name__}")
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"padding_idx must lie in [-num_embeddings, num_embeddings) = "
                                 f"[{-self.num_embeddings}, {self.num_embeddings}), got {padding_idx}")
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        dtype = _float_dtype(dtype)
        rng, self._seed = _rng(seed)
        weight = rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(dtype)
        if padding_idx is not None:
            weight[padding_idx] = 0
        self.weight = Parameter(weight)
        self._indices = None

    @property
    def dtype(self):
        """The weight's dtype."""
        return self.weight.dtype

    def config(self):
        """Constructor arguments (for :func:`fastrnn.nn.save`)."""
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "padding_idx": self.padding_idx, "dtype": self.dtype, "seed": self._seed}

    def check_indices(self, indices, name="indices"):
        """``indices`` as an integer array with every id in [0, num_embeddings); a
        TypeError/ValueError naming ``name`` otherwise (negative ids are refused, not
        counted from the end)."""
        if indices is None:
            raise TypeError(f"{name} must be an integer array, got None")
        try:
            idx = np.asarray(indices)
        except Exception as exc:
            raise TypeError(f"{name} must be an integer array, got {type(indices).__name__}: {exc}") from None
        if idx.dtype == np.bool_ or not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"{name} must hold integers, got dtype {idx.dtype}")
        if idx.size:
            low, high = int(idx.min()), int(idx.max())
            if low < 0 or high >= self.num_embeddings:
                bad = idx[(idx < 0) | (idx >= self.num_embeddings)]
                raise ValueError(f"{name} must lie in [0, num_embeddings) = [0, {self.num_embeddings}), "
                                 f"got {bad.size} out of range, e.g. {bad.ravel()[:5].tolist()}")
        return idx

    def forward(self, indices):
        """indices (...) integers in [0, num_embeddings) -> y (..., embedding_dim)."""
        idx = self.check_indices(indices)
        y = self.weight.data[idx]
        self._indices = idx.copy() if self.training else None
        return y

    def backward(self, dy):
        """dL/dy (*indices.shape, embedding_dim) -> None (indices have no gradient).

        Accumulates ``weight.grad`` (rows summed with ``np.add.at``; the
        ``padding_idx`` row gets zero). Needs a preceding training-mode forward."""
        if self._indices is None:
            raise _no_forward("Embedding")
        idx = self._indices
        dy = _float_input("dy", dy, self.dtype, "Embedding")
        expected = idx.shape + (self.embedding_dim,)
        if dy.shape != expected:
            raise ValueError(f"dy must have the output's shape (*indices.shape, embedding_dim) = "
                             f"{expected}, got shape {dy.shape}")
        grad = np.zeros(self.weight.shape, self.dtype)
        np.add.at(grad, idx.ravel(), dy.reshape(-1, self.embedding_dim))
        if self.padding_idx is not None:
            grad[self.padding_idx] = 0
        self.weight.accumulate_grad(grad, copy=False)

    def extra_repr(self):
        extra = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            extra += f", padding_idx={self.padding_idx}"
        return extra if self.dtype == np.float32 else f"{extra}, dtype={self.dtype}"


# --------------------------------------------------------------------------- Dropout

class Dropout(Module):
    """Inverted dropout, as ``torch.nn.Dropout``.

    In training mode each element is zeroed with probability ``p`` and the kept
    ones are scaled by 1/(1-p): ``y = x * mask`` with ``mask`` in {0, 1/(1-p)},
    the division done in x's dtype (the same rounding as torch). In eval mode, or
    with p = 0, the input is returned unchanged. ``p`` in [0, 1). Masks come from
    ``np.random.default_rng(seed)``: two layers built with the same int seed draw
    the same sequence of masks. No parameters.

    ``forward(x)``: x float32 or float64 of any shape -> y of the same shape and dtype.
    """

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)):
            raise TypeError(f"p must be a float in [0, 1), got {type(p).__name__} {p!r}")
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p must lie in [0, 1), got {p}")
        self.p = float(p)
        self._rng, self._seed = _rng(seed)
        self._mask = None      # scaled mask of the last training forward (None: identity)
        self._shape = None     # shape of the last training forward's input (None: no forward)

    def config(self):
        """Constructor arguments (for :func:`fastrnn.nn.save`)."""
        return {"p": self.p, "seed": self._seed}

    def forward(self, x):
        """x (any shape, float32/float64) -> x * mask in training mode, x itself otherwise."""
        x = _float_input("x", x, None, "Dropout")
        if not self.training:
            self._mask = self._shape = None
            return x
        self._shape = x.shape
        if self.p == 0.0:
            self._mask = None
            return x
        keep = self._rng.random(x.shape, dtype=x.dtype) >= self.p
        mask = keep.astype(x.dtype)
        mask /= x.dtype.type(1.0 - self.p)  # torch's rounding: 1 / (1-p) in x's dtype
        self._mask = mask
        return x * mask

    def backward(self, dy):
        """dL/dy (the input's shape and dtype) -> dL/dx = dy * mask (the forward's mask)."""
        if self._shape is None:
            raise _no_forward("Dropout")
        dy = _float_input("dy", dy, None if self._mask is None else self._mask.dtype, "this Dropout's input")
        if dy.shape != self._shape:
            raise ValueError(f"dy must have the forward input's shape {self._shape}, got shape {dy.shape}")
        return dy if self._mask is None else dy * self._mask

    def extra_repr(self):
        return f"p={self.p}"
