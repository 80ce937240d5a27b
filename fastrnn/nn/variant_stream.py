"""Step-by-step inference for layers with variant options (peephole, layer norm, ...).

:class:`fastrnn.nn.Stream` runs the plain cells through one compiled per-step driver
over pre-packed buffers (~3 us a step). The variant cells have no such driver yet:
:class:`VariantStream` gives them the same interface by running an eval-mode copy of
the layer (the fused variant kernels) on each step or chunk, carrying the state. A
step costs a layer call (tens of microseconds) and returns a new array; outputs equal
one call of the layer in ``eval()`` over the concatenated chunks.
"""
import numpy as np

from .. import _validate as check
from .streaming import checked_state, refuse_bidirectional


class VariantStream:
    """``layer.stream(batch_size)`` for an LSTM/GRU layer with variant options.

    Same interface as :class:`fastrnn.nn.Stream`: ``step(x)`` / ``stream(x)`` with x
    (B, I), (I,) when ``batch_size == 1``, or a chunk (T, B, I) ((B, T, I) with
    ``batch_first``); ``state`` (get/set; h (num_layers, B, H), and (h, c) for the
    LSTM); ``reset()``; ``refresh()`` re-reads the layer's weights (they are
    snapshotted when the stream is built). Eval semantics: no dropout, zoneout's
    expectation.
    """

    def __init__(self, layer, batch_size=1):
        refuse_bidirectional(layer)
        self._layer, self._batch = layer, check.positive_int("batch_size", batch_size)
        self._lstm = layer._cell == "lstm"
        self._dtype = np.dtype(layer.dtype)
        self.refresh()
        self.reset()

    @property
    def layer(self):
        return self._layer

    @property
    def batch_size(self):
        return self._batch

    @property
    def dtype(self):
        return self._dtype

    def refresh(self):
        """Snapshot the layer's current weights (an eval-mode copy). Returns self."""
        layer = self._layer
        copy = type(layer).from_config(layer.config())
        copy.load_state_dict(layer.state_dict())
        copy.batch_first = False
        self._copy = copy.eval()
        return self

    def reset(self):
        """Zero the state. Returns self."""
        shape = (self._layer.num_layers, self._batch, self._layer.hidden_size)
        self._h = np.zeros(shape, self._dtype)
        self._c = np.zeros(shape, self._dtype) if self._lstm else None
        return self

    @property
    def state(self):
        """Copies of h (num_layers, B, H), and (h, c) for an LSTM; assign the same shapes
        (or None to reset)."""
        return (self._h.copy(), self._c.copy()) if self._lstm else self._h.copy()

    @state.setter
    def state(self, value):
        if value is None:
            self.reset()
            return
        arrays = checked_state(value, [self._h.shape] * (2 if self._lstm else 1), self._dtype)
        self._h = arrays[0].copy()
        if self._lstm:
            self._c = arrays[1].copy()

    def step(self, x):
        """Advance by one step (x (B, I) or (I,)) or a chunk (x (T, B, I)); returns y
        shaped like x with the layer's output width (a new array)."""
        ndim = np.ndim(x)
        x = check.float_array("x", x, ndim if ndim in (1, 2, 3) else 2, self._dtype, "the stream")
        n_in = self._layer.input_size
        if x.ndim == 1:
            if self._batch != 1:
                raise ValueError(f"x of shape {x.shape} is one unbatched step, but this stream has batch_size="
                                 f"{self._batch}: pass x with shape (B, I) = ({self._batch}, {n_in})")
            return self.step(x[None])[0]
        if x.ndim == 2:
            check.expect_shape("x", x, (self._batch, n_in), "(batch_size, input_size)")
            return self._run(x[None])[0]
        batch_first = bool(self._layer.batch_first)
        chunk = x.transpose(1, 0, 2) if batch_first else x
        check.expect_shape("x", chunk, (chunk.shape[0], self._batch, n_in),
                           "(B, T, I) (batch_first)" if batch_first else "(T, B, I)")
        if chunk.shape[0] == 0:
            return np.empty(x.shape[:2] + (self._layer.hidden_size,), self._dtype)
        y = self._run(np.ascontiguousarray(chunk))
        return np.ascontiguousarray(y.transpose(1, 0, 2)) if batch_first else y

    __call__ = step

    def _run(self, chunk):
        if self._lstm:
            y, (self._h, self._c) = self._copy(chunk, (self._h, self._c))
        else:
            y, self._h = self._copy(chunk, self._h)
        return y

    def __repr__(self):
        return f"VariantStream({self._layer!r}, batch_size={self._batch})"
