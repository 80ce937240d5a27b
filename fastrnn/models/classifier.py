"""Many-to-one and many-to-many synchronous models: :class:`SequenceClassifier` and
:class:`SequenceTagger`."""
import numpy as np

from ..nn import Dropout, Embedding, Linear, Module
from . import _common as C

__all__ = ["SequenceClassifier", "SequenceTagger"]


class _SequenceModel(Module, register=False):
    """Embedding (token ids) or dense input -> recurrent layer (batch-first)."""

    def _build(self, input_size, vocab_size, embedding_dim, padding_idx, hidden_size, cell, num_layers,
               bidirectional, dropout, dtype, seed):
        self.cell = C.check_cell(cell)
        self.dtype = np.dtype(dtype)
        if vocab_size is not None:
            embedding_dim = embedding_dim or 32
            self.embedding = Embedding(vocab_size, embedding_dim, padding_idx=padding_idx, dtype=dtype,
                                       seed=C.sub_seed(seed, 0))
            rnn_in = embedding_dim
        else:
            if input_size is None:
                raise ValueError("give input_size (dense input) or vocab_size (token ids)")
            self.embedding = None
            rnn_in = input_size
        self.rnn = C.recurrent(cell, rnn_in, hidden_size, num_layers, bidirectional, 0.0 if num_layers == 1
                               else dropout, dtype, C.sub_seed(seed, 1))
        self.dropout = Dropout(dropout, seed=C.sub_seed(seed, 2))
        self.directions = 2 if bidirectional else 1

    def _embed(self, x):
        if self.embedding is not None:
            return self.embedding(x)
        return C.check_dense("x", x, self.dtype)

    def _input_backward(self, dx):
        if self.embedding is not None:
            self.embedding.backward(dx)
            return None
        return dx


class SequenceClassifier(_SequenceModel):
    """Sequence -> class logits (many-to-one).

    ``SequenceClassifier(num_classes, input_size=None, vocab_size=None, embedding_dim=None,
    padding_idx=None, hidden_size=64, cell="lstm", num_layers=1, bidirectional=False,
    pooling="last", dropout=0.0, dtype=np.float32, seed=None)``

    Input: dense ``x (B, T, input_size)`` of the model's dtype, or token ids ``x (B, T)``
    when ``vocab_size`` is given (an :class:`~fastrnn.nn.Embedding` of width
    ``embedding_dim``, default 32, comes first). ``lengths (B,)`` optional: padded
    steps are ignored. Features: ``pooling="last"`` takes the state at each sequence's
    last valid step (for a bidirectional layer, the forward direction's last state
    concatenated with the reverse direction's final state, i.e. its state at t=0);
    ``"mean"`` averages the top layer's outputs over the valid steps. Then
    ``Dropout(dropout)`` and a ``Linear`` to ``num_classes`` logits.

    ``forward(x, lengths=None) -> logits (B, num_classes)``; ``backward(dlogits)``
    accumulates every parameter's gradient and returns dL/dx for dense input (None
    for token ids). Train with ``fastrnn.train.fit`` and
    ``fastrnn.losses.cross_entropy``; a ``BatchIterator(X, y, lengths=...)`` passes
    the lengths through.
    """

    def __init__(self, num_classes, input_size=None, vocab_size=None, embedding_dim=None, padding_idx=None,
                 hidden_size=64, cell="lstm", num_layers=1, bidirectional=False, pooling="last", dropout=0.0,
                 dtype=np.float32, seed=None):
        super().__init__()
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {pooling!r}")
        self._config = {"num_classes": num_classes, "input_size": input_size, "vocab_size": vocab_size,
                            "embedding_dim": embedding_dim, "padding_idx": padding_idx, "hidden_size": hidden_size,
                            "cell": cell, "num_layers": num_layers, "bidirectional": bidirectional, "pooling": pooling,
                            "dropout": dropout, "dtype": np.dtype(dtype), "seed": seed}
        self._build(input_size, vocab_size, embedding_dim, padding_idx, hidden_size, cell, num_layers,
                    bidirectional, dropout, dtype, seed)
        self.pooling = pooling
        self.head = Linear(self.directions * hidden_size, num_classes, dtype=dtype, seed=C.sub_seed(seed, 3))
        self._saved = None

    def forward(self, x, lengths=None):
        """x (B, T, F) or token ids (B, T); lengths (B,) or None -> logits (B, num_classes)."""
        e = self._embed(x)
        y, state = self.rnn(e, None, lengths)
        batch, steps = y.shape[0], y.shape[1]
        if self.pooling == "last":
            h = C.hidden_of(self.cell, state)
            feat = np.concatenate(list(h[-self.directions:]), axis=1) if self.directions == 2 else h[-1]
            denom = None
        else:
            lens = np.full(batch, steps) if lengths is None else np.asarray(lengths)
            denom = lens.astype(self.dtype)[:, None]
            feat = y.sum(axis=1) / denom
        self._saved = (y.shape, C.hidden_of(self.cell, state).shape, lengths, denom) if self.training else None
        return self.head(self.dropout(np.ascontiguousarray(feat, dtype=self.dtype)))

    def backward(self, dlogits):
        """dL/dlogits (B, num_classes) -> dL/dx (dense input) or None (token ids)."""
        if self._saved is None:
            raise RuntimeError("SequenceClassifier.backward needs a training-mode forward first")
        y_shape, h_shape, lengths, denom = self._saved
        dfeat = self.dropout.backward(self.head.backward(dlogits))
        dy = np.zeros(y_shape, self.dtype)
        dh = np.zeros(h_shape, self.dtype)
        if self.pooling == "last":
            hidden = h_shape[-1]
            for d in range(self.directions):
                dh[h_shape[0] - self.directions + d] = dfeat[:, d * hidden:(d + 1) * hidden]
        else:
            dy[...] = (dfeat / denom)[:, None, :]
            if lengths is not None:
                dy *= (np.arange(y_shape[1])[None, :] < np.asarray(lengths)[:, None])[:, :, None]
        dx, _ = self.rnn.backward(dy, C.state_grad(self.cell, dh))
        return self._input_backward(dx)

    def predict_proba(self, x, lengths=None, batch_size=1024):
        """Class probabilities (B, num_classes), in evaluation mode."""
        with C.eval_mode(self):
            return C.batched(lambda xb, lb: C.softmax(self.forward(xb, lb)), len(x), batch_size, x, lengths)

    def predict(self, x, lengths=None, batch_size=1024):
        """Predicted class indices (B,)."""
        return self.predict_proba(x, lengths, batch_size).argmax(axis=1)


class SequenceTagger(_SequenceModel):
    """One label per time step (many-to-many, synchronous).

    ``SequenceTagger(num_tags, input_size=None, vocab_size=None, embedding_dim=None,
    padding_idx=None, hidden_size=64, cell="lstm", num_layers=1, bidirectional=True,
    dropout=0.0, dtype=np.float32, seed=None)``

    ``forward(x, lengths=None) -> logits (B, T, num_tags)``. Padded steps give
    logits that must not count: pad the targets with -100 (``cross_entropy``'s
    ``ignore_index``, e.g. ``pad_sequences(tags, padding_value=-100, batch_first=True)``)
    or use :meth:`loss`, which masks by ``lengths``. ``backward(dlogits)``.
    """

    def __init__(self, num_tags, input_size=None, vocab_size=None, embedding_dim=None, padding_idx=None,
                 hidden_size=64, cell="lstm", num_layers=1, bidirectional=True, dropout=0.0,
                 dtype=np.float32, seed=None):
        super().__init__()
        self._config = {"num_tags": num_tags, "input_size": input_size, "vocab_size": vocab_size,
                            "embedding_dim": embedding_dim, "padding_idx": padding_idx, "hidden_size": hidden_size,
                            "cell": cell, "num_layers": num_layers, "bidirectional": bidirectional, "dropout": dropout,
                            "dtype": np.dtype(dtype), "seed": seed}
        self._build(input_size, vocab_size, embedding_dim, padding_idx, hidden_size, cell, num_layers,
                    bidirectional, dropout, dtype, seed)
        self.head = Linear(self.directions * hidden_size, num_tags, dtype=dtype, seed=C.sub_seed(seed, 3))

    def forward(self, x, lengths=None):
        """x (B, T, F) or token ids (B, T); lengths (B,) or None -> logits (B, T, num_tags)."""
        y, _ = self.rnn(self._embed(x), None, lengths)
        return self.head(self.dropout(y))

    def backward(self, dlogits):
        """dL/dlogits (B, T, num_tags) -> dL/dx (dense input) or None (token ids)."""
        dy = self.dropout.backward(self.head.backward(dlogits))
        dx, _ = self.rnn.backward(np.ascontiguousarray(dy))
        return self._input_backward(dx)

    @staticmethod
    def loss(logits, tags, lengths=None):
        """Masked per-step cross-entropy: ``(loss, dlogits)``, mean over valid steps."""
        from ..losses import cross_entropy
        mask = None
        if lengths is not None:
            mask = np.arange(logits.shape[1])[None, :] < np.asarray(lengths)[:, None]
        return cross_entropy(logits, np.where(mask, tags, 0) if mask is not None else tags, mask=mask)

    def predict(self, x, lengths=None, batch_size=1024):
        """Tag indices (B, T); positions past a sequence's length are -1."""
        with C.eval_mode(self):
            tags = C.batched(lambda xb, lb: self.forward(xb, lb).argmax(axis=-1), len(x), batch_size, x, lengths)
        if lengths is not None:
            tags = np.where(np.arange(tags.shape[1])[None, :] < np.asarray(lengths)[:, None], tags, -1)
        return tags
