"""Reconstruction-based anomaly detection: :class:`SequenceAutoencoder`, plus
:func:`make_windows` (series -> overlapping windows) and :func:`fold_scores`
(window scores -> one score per time step)."""
import numpy as np

from .. import _validate as check
from ..nn import Linear, Module
from . import _common as C

__all__ = ["SequenceAutoencoder", "fold_scores", "make_windows"]


def _dropout(value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"dropout must be a number in [0, 1), got {type(value).__name__} {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {value!r}")
    return float(value)


class SequenceAutoencoder(Module):
    """LSTM encoder-decoder that reconstructs fixed-length windows of a series; a
    window it reconstructs badly is unlike the (mostly normal) data it was trained on.

    ``SequenceAutoencoder(input_size=1, hidden_size=32, num_layers=1, dropout=0.0,
    dtype=np.float32, seed=None)``

    - Encoder: an LSTM (``num_layers`` layers, ``hidden_size`` units) reads the
      window; the top layer's final hidden state is the latent code z (B, hidden_size).
    - Decoder: an LSTM (same size, zero initial state) reads z repeated at every
      step and a ``Linear`` maps each of its outputs to ``input_size`` values.

    Why z repeated rather than teacher forcing (feeding the true previous value):
    a decoder that sees the true previous value can lean on it instead of the code,
    so reconstruction degrades into one-step-ahead prediction, which follows a
    level shift after one step and flags only its edges. With z as the only input
    every value must pass through the hidden_size-wide code.

    ``forward(x)``: x (B, W, input_size), or (B, W) when ``input_size == 1``, of the
    model's dtype (never cast). Returns the reconstruction, shaped like x. The
    window length W is free (any W >= 1, also different from the training one).
    ``backward(drecon)`` accumulates every parameter's gradient and returns dL/dx
    through the encoder (x's shape); train with :func:`fastrnn.train.fit`,
    :func:`fastrnn.losses.mse` and batches ``(windows, windows)``, e.g.
    ``BatchIterator(X, X, batch_size=64)``.

    Inference (evaluation mode, in batches): :meth:`encode` (z), :meth:`reconstruct`
    (alias :meth:`predict`), :meth:`anomaly_scores` (mean squared reconstruction
    error per window, or per window step). ``dropout`` applies between stacked LSTM
    layers (none with ``num_layers=1``). ``seed`` (int or None) makes the initial
    weights and dropout masks reproducible.
    """

    def __init__(self, input_size=1, hidden_size=32, num_layers=1, dropout=0.0, dtype=np.float32, seed=None):
        super().__init__()
        input_size = check.positive_int("input_size", input_size)
        hidden_size = check.positive_int("hidden_size", hidden_size)
        num_layers = check.positive_int("num_layers", num_layers)
        dropout = _dropout(dropout)
        dtype = check.float_dtype(dtype)
        if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None (it is saved with the model), got {type(seed).__name__}")
        self._config = {"input_size": input_size, "hidden_size": hidden_size, "num_layers": num_layers,
                        "dropout": dropout, "dtype": dtype, "seed": None if seed is None else int(seed)}
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.dtype = dtype
        # the recurrent layers drop out only between stacked layers: with one layer it would be a no-op
        inner = 0.0 if num_layers == 1 else dropout
        self.encoder = C.recurrent("lstm", input_size, hidden_size, num_layers, False, inner, dtype,
                                   C.sub_seed(seed, 1))
        self.decoder = C.recurrent("lstm", hidden_size, hidden_size, num_layers, False, inner, dtype,
                                   C.sub_seed(seed, 2))
        self.head = Linear(hidden_size, input_size, dtype=dtype, seed=C.sub_seed(seed, 3))
        self._saved = None

    def extra_repr(self):
        return (f"input_size={self.input_size}, hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
                f"dtype={self.dtype}")

    # -- shapes
    def _input(self, x, name="x"):
        """x as (B, W, F) of the model's dtype; also whether it came 2-D (univariate)."""
        x = check.floats(name, x, self.dtype, "the model")
        flat = x.ndim == 2
        if flat:
            if self.input_size != 1:
                raise ValueError(f"2-D {name} (B, W) is for a univariate model; this one has input_size "
                                 f"{self.input_size}: pass {name} (B, W, {self.input_size})")
            x = x[:, :, None]
        if x.ndim != 3:
            raise ValueError(f"{name} must be (B, W, input_size) or, univariate, (B, W); got shape {x.shape}")
        if x.shape[2] != self.input_size:
            raise ValueError(f"{name} must have input_size = {self.input_size} features in its last axis, "
                             f"got shape {x.shape}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{name} must hold at least one window of at least one step, got shape {x.shape}")
        return np.ascontiguousarray(x), flat

    # -- training
    def _latent(self, x):
        """Top encoder layer's final hidden state (B, H), contiguous."""
        _, (h_n, _) = self.encoder(x)
        return np.ascontiguousarray(h_n[-1])

    def forward(self, x):
        """x (B, W, F) or (B, W) -> reconstruction of the same shape and dtype."""
        x, flat = self._input(x)
        steps = x.shape[1]
        z = self._latent(x)
        dec_in = np.ascontiguousarray(np.broadcast_to(z[:, None, :], (len(z), steps, self.hidden_size)))
        dec_y, _ = self.decoder(dec_in)
        out = self.head(dec_y)
        self._saved = (x.shape, flat) if self.training else None
        return out[:, :, 0] if flat else out

    def backward(self, drecon):
        """dL/drecon (the forward output's shape) -> dL/dx (the forward input's shape).

        Accumulates the gradients of the encoder, decoder and head parameters."""
        if self._saved is None:
            raise RuntimeError("SequenceAutoencoder.backward needs a training-mode forward first")
        x_shape, flat = self._saved
        drecon = check.floats("drecon", drecon, self.dtype, "the model")
        out_shape = x_shape[:2] if flat else x_shape
        check.expect_shape("drecon", drecon, out_shape, "the forward output's shape")
        drecon = np.ascontiguousarray(drecon.reshape(x_shape))
        ddec_in, _ = self.decoder.backward(self.head.backward(drecon))
        dz = ddec_in.sum(axis=1)  # z was fed at every step: its gradient is the sum over steps
        dh = np.zeros((self.num_layers, x_shape[0], self.hidden_size), self.dtype)
        dh[-1] = dz
        dy = np.zeros((x_shape[0], x_shape[1], self.hidden_size), self.dtype)  # encoder outputs unused
        dx, _ = self.encoder.backward(dy, (dh, None))
        return dx[:, :, 0] if flat else dx

    # -- inference
    def encode(self, windows, batch_size=1024):
        """Latent codes z (N, hidden_size) of windows (N, W, F) or (N, W), in evaluation mode."""
        x, _ = self._input(windows, "windows")
        with C.eval_mode(self):
            return C.batched(self._latent, len(x), self._batch_size(batch_size), x)

    def reconstruct(self, windows, batch_size=1024):
        """Reconstructions of windows (N, W, F) or (N, W), same shape and dtype, in evaluation mode."""
        x, flat = self._input(windows, "windows")
        with C.eval_mode(self):
            out = C.batched(self.forward, len(x), self._batch_size(batch_size), x)
        return out[:, :, 0] if flat else out

    def predict(self, windows, batch_size=1024):
        """Same as :meth:`reconstruct` (the name every ready model shares)."""
        return self.reconstruct(windows, batch_size)

    def anomaly_scores(self, windows, per_step=False, batch_size=1024):
        """Reconstruction error of windows (N, W, F) or (N, W), in evaluation mode.

        Returns float64: (N,) the mean squared error over each window's steps and
        features, or with ``per_step=True`` (N, W) the squared error at each step
        (mean over features); :func:`fold_scores` turns either into one score per
        time step of the series. Larger means more anomalous."""
        check.flag("per_step", per_step)
        x, _ = self._input(windows, "windows")
        recon = self.reconstruct(x, batch_size)
        err = np.square(recon.astype(np.float64) - x.astype(np.float64)).mean(axis=2)
        return err if per_step else err.mean(axis=1)

    @staticmethod
    def _batch_size(batch_size):
        return None if batch_size is None else check.positive_int("batch_size", batch_size)


# --------------------------------------------------------------------------- windows <-> time steps

def _n_windows(n_steps, window, stride):
    return (n_steps - window) // stride + 1


def make_windows(series, window, stride=1):
    """Overlapping windows of a series (time on axis 0), for :class:`SequenceAutoencoder`.

    series (T,) or (T, F), any dtype (kept). Window i is ``series[i*stride :
    i*stride + window]``. Returns a copy: (N, window) for a 1-D series, (N, window, F)
    for a 2-D one, with ``N = (T - window) // stride + 1``; with ``stride > 1`` the
    last ``(T - window) % stride`` steps belong to no window. Raises ``ValueError``
    for a series shorter than ``window`` or of another rank, ``TypeError`` for a
    non-integer window or stride."""
    series = np.asarray(series)
    if series.ndim not in (1, 2):
        raise ValueError(f"series must be (T,) or (T, F), got shape {series.shape}")
    window = check.positive_int("window", window)
    stride = check.positive_int("stride", stride)
    if series.shape[0] < window:
        raise ValueError(f"series has {series.shape[0]} steps, fewer than window = {window}")
    starts = np.arange(_n_windows(series.shape[0], window, stride)) * stride
    return series[starts[:, None] + np.arange(window)[None, :]]  # fancy indexing: a copy


def fold_scores(scores, n_steps, window, stride=1, reduction="mean"):
    """One score per time step from window scores (the inverse map of :func:`make_windows`).

    scores: (N,) one per window (each counts for all of its ``window`` steps) or
    (N, window) one per step of each window (e.g. ``anomaly_scores(...,
    per_step=True)``), for the windows ``make_windows(series, window, stride)`` of a
    series of ``n_steps`` steps. Each step's score is the ``reduction`` ("mean" or
    "max") of the scores given to it by the windows covering it. Returns (n_steps,)
    float64; steps no window covers (the tail left over with ``stride > 1``) are NaN.
    Raises ``ValueError`` when N does not match ``n_steps``, ``window`` and ``stride``."""
    reduction = check.choice("reduction", reduction, ("mean", "max"))
    window = check.positive_int("window", window)
    stride = check.positive_int("stride", stride)
    n_steps = check.positive_int("n_steps", n_steps)
    if n_steps < window:
        raise ValueError(f"n_steps ({n_steps}) must be at least window ({window})")
    scores = np.asarray(scores, dtype=np.float64)
    expected = _n_windows(n_steps, window, stride)
    if scores.shape not in ((expected,), (expected, window)):
        raise ValueError(f"scores must have shape (N,) or (N, window) with N = (n_steps - window) // stride + 1 "
                         f"= {expected} and window = {window}, got shape {scores.shape}")
    if scores.ndim == 1:
        scores = np.repeat(scores[:, None], window, axis=1)
    index = (np.arange(expected) * stride)[:, None] + np.arange(window)[None, :]
    count = np.bincount(index.ravel(), minlength=n_steps)
    if reduction == "mean":
        folded = np.bincount(index.ravel(), weights=scores.ravel(), minlength=n_steps)
        with np.errstate(invalid="ignore", divide="ignore"):  # uncovered steps: 0/0 -> NaN, wanted
            return folded / count
    folded = np.full(n_steps, -np.inf)
    np.maximum.at(folded, index.ravel(), scores.ravel())
    folded[count == 0] = np.nan
    return folded
