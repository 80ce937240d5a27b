"""Time-series forecasting: :class:`Forecaster`."""
import numpy as np

from .. import _validate as check
from ..nn import Dropout, Linear, Module
from . import _common as C

__all__ = ["Forecaster"]


class Forecaster(Module):
    """A window of past values -> the next ``horizon`` steps (direct multi-output).

    ``Forecaster(input_size=1, hidden_size=64, horizon=1, output_size=None, cell="gru",
    num_layers=1, dropout=0.0, dtype=np.float32, seed=None)``

    ``forward(x)``: x (B, W, input_size), or (B, W) for a univariate series (as
    :func:`fastrnn.data.sliding_windows` gives). The recurrent layer reads the
    window, its last hidden state goes through ``Dropout`` and one ``Linear`` to all
    ``horizon * output_size`` values at once. Returns (B, horizon, output_size), or
    (B, horizon) for 2-D input with ``output_size == 1``. ``output_size`` defaults
    to ``input_size``. ``backward(dpred)`` returns dL/dx.

    :meth:`predict` forecasts directly; :meth:`predict_recursive` rolls a model
    forward ``steps`` steps by feeding its own predictions back (needs
    ``output_size == input_size``).
    """

    def __init__(self, input_size=1, hidden_size=64, horizon=1, output_size=None, cell="gru", num_layers=1,
                 dropout=0.0, dtype=np.float32, seed=None):
        super().__init__()
        output_size = input_size if output_size is None else output_size
        self._config = {"input_size": input_size, "hidden_size": hidden_size, "horizon": horizon,
                            "output_size": output_size, "cell": cell, "num_layers": num_layers, "dropout": dropout,
                            "dtype": np.dtype(dtype), "seed": seed}
        self.cell = C.check_cell(cell)
        self.dtype = np.dtype(dtype)
        self.input_size, self.horizon, self.output_size = int(input_size), int(horizon), int(output_size)
        self.rnn = C.recurrent(cell, input_size, hidden_size, num_layers, False,
                               0.0 if num_layers == 1 else dropout, dtype, C.sub_seed(seed, 1))
        self.dropout = Dropout(dropout, seed=C.sub_seed(seed, 2))
        self.head = Linear(hidden_size, self.horizon * self.output_size, dtype=dtype, seed=C.sub_seed(seed, 3))
        self._saved = None

    def _input(self, x):
        x = np.asarray(x)
        flat = x.ndim == 2
        if flat:
            if self.input_size != 1:
                raise ValueError(f"2-D x (B, W) is for a univariate model; this one has input_size "
                                 f"{self.input_size}: pass x (B, W, {self.input_size})")
            x = x[:, :, None]
        return C.check_dense("x", x, self.dtype), flat

    def forward(self, x):
        """x (B, W, F) or (B, W) -> predictions (B, horizon, output_size) or (B, horizon)."""
        x, flat = self._input(x)
        _, state = self.rnn(x)
        h = C.hidden_of(self.cell, state)
        out = self.head(self.dropout(np.ascontiguousarray(h[-1])))
        self._saved = (h.shape, x.shape[1], flat) if self.training else None
        out = out.reshape(len(x), self.horizon, self.output_size)
        return out[:, :, 0] if flat and self.output_size == 1 else out

    def backward(self, dpred):
        """dL/dpred (the forward output's shape) -> dL/dx (the forward input's shape)."""
        if self._saved is None:
            raise RuntimeError("Forecaster.backward needs a training-mode forward first")
        h_shape, steps, flat = self._saved
        dpred = np.asarray(dpred)
        expected = (h_shape[1], self.horizon) + (() if flat and self.output_size == 1 else (self.output_size,))
        if dpred.shape != expected:
            raise ValueError(f"dpred must have the forward output's shape {expected}, got shape {dpred.shape}")
        dpred = dpred.reshape(h_shape[1], self.horizon * self.output_size)
        dfeat = self.dropout.backward(self.head.backward(np.ascontiguousarray(dpred)))
        dh = np.zeros(h_shape, self.dtype)
        dh[-1] = dfeat
        dy = np.zeros((h_shape[1], steps, h_shape[2]), self.dtype)
        dx, _ = self.rnn.backward(dy, C.state_grad(self.cell, dh))
        return dx[:, :, 0] if flat else dx

    def predict(self, x, batch_size=4096):
        """Direct forecast of the next ``horizon`` steps, in evaluation mode."""
        with C.eval_mode(self):
            return C.batched(self.forward, len(x), batch_size, np.asarray(x))

    def predict_recursive(self, x, steps):
        """Forecast ``steps`` steps ahead by feeding the first predicted step back as input.

        x (B, W[, F]) -> (B, steps[, F]). Needs ``output_size == input_size``."""
        if self.output_size != self.input_size:
            raise ValueError("predict_recursive needs output_size == input_size")
        steps = check.positive_int("steps", steps)
        window = np.array(x, copy=True)
        out = []
        with C.eval_mode(self):
            for _ in range(steps):
                nxt = self.forward(window)[:, :1]
                out.append(nxt)
                window = np.concatenate([window[:, 1:], nxt], axis=1)
        return np.concatenate(out, axis=1)
