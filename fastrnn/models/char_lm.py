"""Character-level language model: :class:`CharLM`."""
import numpy as np

from .. import _validate as check
from ..nn import Dropout, Embedding, Linear, Module
from . import _common as C

__all__ = ["CharLM"]


class CharLM(Module):
    """Embedding -> LSTM/GRU/RNN -> Linear over the vocabulary; next-token logits.

    ``CharLM(vocab_size, embedding_dim=32, hidden_size=256, cell="lstm", num_layers=1,
    dropout=0.0, dtype=np.float32, seed=None)``

    Stateful, as :func:`fastrnn.train.fit_tbptt` expects: ``forward(x, state=None)``
    with token ids x (B, T) returns ``(logits (B, T, vocab_size), state)``, the state
    being the layer's final state (h, or (h, c) for an LSTM) to pass to the next
    chunk. ``backward(dlogits)`` accumulates the gradients (no gradient flows into
    the incoming state: truncated BPTT).

    :meth:`bits_per_token` scores a held-out id sequence; :meth:`generate` samples
    text with a temperature and a seed, step by step through the layer's
    :meth:`~fastrnn.LSTM.stream` (one fused step call per token).
    """

    def __init__(self, vocab_size, embedding_dim=32, hidden_size=256, cell="lstm", num_layers=1, dropout=0.0,
                 dtype=np.float32, seed=None):
        super().__init__()
        self._config = {"vocab_size": vocab_size, "embedding_dim": embedding_dim, "hidden_size": hidden_size,
                            "cell": cell, "num_layers": num_layers, "dropout": dropout, "dtype": np.dtype(dtype), "seed": seed}
        self.cell = C.check_cell(cell)
        self.dtype = np.dtype(dtype)
        self.vocab_size = int(vocab_size)
        self.embedding = Embedding(vocab_size, embedding_dim, dtype=dtype, seed=C.sub_seed(seed, 0))
        self.rnn = C.recurrent(cell, embedding_dim, hidden_size, num_layers, False,
                               0.0 if num_layers == 1 else dropout, dtype, C.sub_seed(seed, 1))
        self.dropout = Dropout(dropout, seed=C.sub_seed(seed, 2))
        self.head = Linear(hidden_size, vocab_size, dtype=dtype, seed=C.sub_seed(seed, 3))

    def forward(self, x, state=None):
        """Token ids x (B, T), state None or a previous call's -> (logits (B, T, V), state)."""
        y, state = self.rnn(self.embedding(x), state)
        return self.head(self.dropout(y)), state

    def backward(self, dlogits):
        """dL/dlogits (B, T, V) -> None (accumulates every parameter's gradient)."""
        dy = self.dropout.backward(self.head.backward(dlogits))
        dx, _ = self.rnn.backward(np.ascontiguousarray(dy))
        self.embedding.backward(dx)

    def bits_per_token(self, ids, chunk=2048):
        """Mean -log2 p(ids[t+1] | ids[:t+1]) over a 1-D id sequence, state carried across chunks."""
        ids = self.embedding.check_indices(ids, "ids")
        if ids.ndim != 1 or ids.size < 2:
            raise ValueError(f"ids must be a 1-D sequence of at least two ids (one to predict from, one to "
                             f"score), got shape {ids.shape}")
        total, count, state = 0.0, 0, None
        with C.eval_mode(self):
            for start in range(0, len(ids) - 1, chunk):
                x = ids[start:start + chunk][None]
                y = ids[start + 1:start + chunk + 1][None]
                x = x[:, :y.shape[1]]
                logits, state = self.forward(x, state)
                z = logits[0].astype(np.float64)
                z = z - z.max(axis=1, keepdims=True)
                logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
                total -= logp[np.arange(y.shape[1]), y[0]].sum()
                count += y.shape[1]
        return total / count / np.log(2.0)

    def generate(self, prompt, length, temperature=1.0, seed=None):
        """Sample ``length`` new token ids after ``prompt`` (a non-empty sequence of ids).

        ``temperature`` > 0 divides the logits (lower: more conservative; near 0: greedy);
        ``seed`` makes the sample reproducible. Returns the new ids (an int64 array)."""
        prompt = self.embedding.check_indices(prompt, "prompt")
        if prompt.ndim != 1 or prompt.size == 0:
            raise ValueError(f"prompt must be a non-empty 1-D sequence of ids, got shape {prompt.shape}")
        length = check.positive_int("length", length, minimum=0)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        rng = np.random.default_rng(seed)
        weight = self.embedding.weight.data
        stream = self.rnn.stream(batch_size=1)
        out = stream.step(np.ascontiguousarray(weight[prompt][None]))  # (1, T, H) chunk
        h = out[0, -1]
        new = np.empty(length, np.int64)
        with C.eval_mode(self):
            for t in range(length):
                p = C.softmax(self.head(h[None]).astype(np.float64)[0], temperature)
                token = rng.choice(self.vocab_size, p=p)
                new[t] = token
                h = stream.step(np.ascontiguousarray(weight[token][None]))[0]
        return new
