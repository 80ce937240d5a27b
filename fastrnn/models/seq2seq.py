"""Encoder-decoder: :class:`Seq2Seq` (teacher forcing, scheduled sampling, greedy
decoding, optional Luong dot attention)."""
import numpy as np

from ..nn import Embedding, Linear, Module
from . import _common as C

__all__ = ["Seq2Seq"]

_NEG = -1e9


class Seq2Seq(Module):
    """Token sequence -> token sequence with a recurrent encoder and decoder.

    ``Seq2Seq(src_vocab, tgt_vocab, embedding_dim=32, hidden_size=128, cell="gru",
    attention=True, bos_id=0, eos_id=None, sampling_prob=0.0, dtype=np.float32, seed=None)``

    The encoder reads the source ids; its final state starts the decoder. With
    ``attention`` (Luong et al. 2015, "dot" score) every decoder output h_t attends
    over the encoder outputs (padded source positions masked out): a = softmax(h_t ·
    enc_s), ctx_t = sum_s a_s enc_s, and the logits are ``out(tanh(W_c [ctx_t; h_t]))``;
    without it, ``out(h_t)``.

    ``forward(src, tgt_in, src_lengths=None) -> logits (B, T_tgt, tgt_vocab)``, with
    teacher forcing: ``tgt_in`` is the target shifted right (``bos_id`` first).
    ``backward(dlogits)``. With :func:`fastrnn.train.fit`, use batches
    ``(src, tgt_out, tgt_in[, src_lengths])`` — e.g.
    ``BatchIterator(src, tgt_out, tgt_in, batch_size=...)`` — so that the model is
    called as ``model(src, tgt_in[, src_lengths])`` and the loss compares with
    ``tgt_out`` (pad it with -100 to ignore padding).

    Scheduled sampling (Bengio et al. 2015, in its parallel form, Duckworth et al.
    2019): in training mode with ``sampling_prob`` p > 0 (an attribute a callback
    may change each epoch), a first teacher-forced pass without gradients predicts
    every step greedily, and each decoder input after the first is replaced by the
    model's own previous prediction with probability p before the real pass.

    :meth:`predict` decodes greedily (``max_len`` steps, stopping early once every
    sequence has emitted ``eos_id`` when it is set; positions after the end repeat
    ``eos_id``).
    """

    def __init__(self, src_vocab, tgt_vocab, embedding_dim=32, hidden_size=128, cell="gru", attention=True,
                 bos_id=0, eos_id=None, sampling_prob=0.0, dtype=np.float32, seed=None):
        super().__init__()
        self._config = {"src_vocab": src_vocab, "tgt_vocab": tgt_vocab, "embedding_dim": embedding_dim,
                            "hidden_size": hidden_size, "cell": cell, "attention": attention, "bos_id": bos_id,
                            "eos_id": eos_id, "sampling_prob": sampling_prob, "dtype": np.dtype(dtype), "seed": seed}
        self.cell = C.check_cell(cell)
        self.dtype = np.dtype(dtype)
        self.hidden_size = int(hidden_size)
        self.attention, self.bos_id, self.eos_id = bool(attention), int(bos_id), eos_id
        self.sampling_prob = float(sampling_prob)
        self._rng = np.random.default_rng(C.sub_seed(seed, 9))
        self.src_embedding = Embedding(src_vocab, embedding_dim, dtype=dtype, seed=C.sub_seed(seed, 0))
        self.tgt_embedding = Embedding(tgt_vocab, embedding_dim, dtype=dtype, seed=C.sub_seed(seed, 1))
        self.encoder = C.recurrent(cell, embedding_dim, hidden_size, dtype=dtype, seed=C.sub_seed(seed, 2))
        self.decoder = C.recurrent(cell, embedding_dim, hidden_size, dtype=dtype, seed=C.sub_seed(seed, 3))
        if self.attention:
            self.combine = Linear(2 * hidden_size, hidden_size, dtype=dtype, seed=C.sub_seed(seed, 4))
        self.out = Linear(hidden_size, tgt_vocab, dtype=dtype, seed=C.sub_seed(seed, 5))
        self._saved = None

    # -- pieces
    def _encode(self, src, src_lengths):
        enc_y, state = self.encoder(self.src_embedding(src), None, src_lengths)
        mask = None
        if src_lengths is not None:
            mask = np.arange(enc_y.shape[1])[None, :] < np.asarray(src_lengths)[:, None]  # (B, Ts)
        return enc_y, state, mask

    def _head(self, dec_y, enc_y, mask):
        """Logits from decoder outputs (B, Tt, H); returns (logits, cache for backward)."""
        if not self.attention:
            return self.out(dec_y), None
        scores = np.matmul(dec_y, enc_y.transpose(0, 2, 1))  # (B, Tt, Ts)
        if mask is not None:
            scores = np.where(mask[:, None, :], scores, self.dtype.type(_NEG))
        a = C.softmax(scores).astype(self.dtype, copy=False)
        ctx = np.matmul(a, enc_y)
        att = np.tanh(self.combine(np.concatenate([ctx, dec_y], axis=-1)))
        return self.out(att), (a, att)

    # -- training
    def forward(self, src, tgt_in, src_lengths=None):
        """src ids (B, Ts), tgt_in ids (B, Tt) (teacher forcing), src_lengths (B,) or None
        -> logits (B, Tt, tgt_vocab)."""
        tgt_in = np.asarray(tgt_in)
        if self.training and self.sampling_prob > 0 and tgt_in.shape[1] > 1:
            tgt_in = self._scheduled_inputs(src, tgt_in, src_lengths)
        enc_y, state, mask = self._encode(src, src_lengths)
        dec_y, _ = self.decoder(self.tgt_embedding(tgt_in), state)
        logits, cache = self._head(dec_y, enc_y, mask)
        self._saved = (enc_y, dec_y, cache) if self.training else None
        return logits

    def _scheduled_inputs(self, src, tgt_in, src_lengths):
        with C.eval_mode(self):
            guess = self.forward(src, tgt_in, src_lengths).argmax(axis=-1)
        mixed = tgt_in.copy()
        swap = self._rng.random(tgt_in[:, 1:].shape) < self.sampling_prob
        mixed[:, 1:] = np.where(swap, guess[:, :-1], tgt_in[:, 1:])
        return mixed

    def backward(self, dlogits):
        """dL/dlogits (B, Tt, tgt_vocab) -> None (accumulates every parameter's gradient)."""
        if self._saved is None:
            raise RuntimeError("Seq2Seq.backward needs a training-mode forward first")
        enc_y, dec_y, cache = self._saved
        datt = self.out.backward(dlogits)
        if self.attention:
            a, att = cache
            dcat = self.combine.backward(datt * (1 - att * att))   # att = tanh(combine(...))
            hidden = self.hidden_size
            dctx, ddec = dcat[..., :hidden], dcat[..., hidden:]
            da = np.matmul(dctx, enc_y.transpose(0, 2, 1))            # (B, Tt, Ts)
            dscores = a * (da - (da * a).sum(axis=-1, keepdims=True))
            ddec = ddec + np.matmul(dscores, enc_y)
            denc = np.matmul(a.transpose(0, 2, 1), dctx) + np.matmul(dscores.transpose(0, 2, 1), dec_y)
        else:
            ddec, denc = datt, np.zeros_like(enc_y)
        dx_dec, d_state = self.decoder.backward(np.ascontiguousarray(ddec, dtype=self.dtype))
        self.tgt_embedding.backward(dx_dec)
        dx_enc, _ = self.encoder.backward(np.ascontiguousarray(denc, dtype=self.dtype), d_state)
        self.src_embedding.backward(dx_enc)

    # -- inference
    def predict(self, src, max_len, src_lengths=None, batch_size=1024):
        """Greedy decoding: ids (B, max_len)."""
        src = np.asarray(src)
        with C.eval_mode(self):
            return C.batched(lambda s, l: self._greedy(s, max_len, l), len(src), batch_size, src, src_lengths)

    def _greedy(self, src, max_len, src_lengths):
        enc_y, state, mask = self._encode(src, src_lengths)
        batch = src.shape[0]
        token = np.full(batch, self.bos_id, np.int64)
        out = np.empty((batch, max_len), np.int64)
        done = np.zeros(batch, bool)
        for t in range(max_len):
            dec_y, state = self.decoder(self.tgt_embedding(token[:, None]), state)
            logits, _ = self._head(dec_y, enc_y, mask)
            token = logits[:, 0].argmax(axis=-1)
            if self.eos_id is not None:
                token = np.where(done, self.eos_id, token)
                done |= token == self.eos_id
            out[:, t] = token
            if self.eos_id is not None and done.all():
                out[:, t + 1:] = self.eos_id
                break
        return out
