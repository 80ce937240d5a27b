"""Single-step recurrent cells: drop-ins for ``torch.nn.RNNCell``, ``LSTMCell`` and ``GRUCell``.

Same constructor arguments, parameter names and shapes (``weight_ih (G*H, I)``,
``weight_hh (G*H, H)``, ``bias_ih``, ``bias_hh`` with G = 1, 4, 3), initialisation
U(-1/sqrt(H), 1/sqrt(H)) drawn in torch's registration order, and call signatures:

    h1 = rnn_cell(x, h=None)            x (B, I) or unbatched (I,); h (B, H) or (H,)
    h1, c1 = lstm_cell(x, hx=None)      hx = (h, c) or None (zeros)
    h1 = gru_cell(x, h=None)

Each call runs the fused kernel of :mod:`fastrnn.functional` for one time step. After a
call in training mode, ``backward`` gives the gradients of the input and the previous
state and accumulates ``.grad`` on every parameter:

    dx, dh0 = rnn_cell.backward(dh1)
    dx, (dh0, dc0) = lstm_cell.backward(dh1, dc1=None)

The forward keeps references to its inputs for the backward (not copies): do not
modify them in place in between. To run a cell over a whole sequence, use the layer
(``fastrnn.LSTM`` ...) instead: one fused call over all T steps is much faster than T
cell calls; for step-by-step inference use ``layer.stream()`` (:mod:`fastrnn.nn.streaming`).
"""
import numpy as np

from .. import _validate as check
from .. import functional as F
from .module import Module, Parameter

__all__ = ["RNNCell", "LSTMCell", "GRUCell"]


class _CellBase(Module, register=False):
    """Shared by the three cells: parameters, input checks, the one-step call and its backward."""

    _gates = 1
    _cell = None  # "rnn" | "lstm" | "gru"

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32, seed=None, **cell_options):
        super().__init__()
        self.input_size = check.positive_int("input_size", input_size)
        self.hidden_size = check.positive_int("hidden_size", hidden_size)
        self.bias = check.flag("bias", bias)
        self.dtype = check.float_dtype(dtype)
        self.seed = check.seed(seed, generator_ok=False)
        self.cell_options = cell_options
        self._saved = None
        rng = np.random.default_rng(self.seed)
        bound = 1.0 / np.sqrt(self.hidden_size)
        width = self._gates * self.hidden_size
        shapes = [("weight_ih", (width, self.input_size)), ("weight_hh", (width, self.hidden_size))]
        if self.bias:
            shapes += [("bias_ih", (width,)), ("bias_hh", (width,))]
        for name, shape in shapes:  # torch's registration order and U(-1/sqrt(H), 1/sqrt(H))
            self.register_parameter(name, Parameter(rng.uniform(-bound, bound, shape).astype(self.dtype)))
        if not self.bias:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def config(self):
        return dict(input_size=self.input_size, hidden_size=self.hidden_size, bias=self.bias,
                    **self.cell_options, dtype=self.dtype, seed=self.seed)

    def extra_repr(self):
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        for name, value in self.cell_options.items():
            text += f", {name}={value!r}"
        return text + f", dtype={self.dtype}"

    # -- shapes in and out
    def _input(self, x):
        x = check.floats("x", x, self.dtype, "the cell")
        x = check.float_array("x", x, x.ndim if x.ndim in (1, 2) else 2, self.dtype, "the cell")
        unbatched = x.ndim == 1
        if unbatched:
            x = x[None]
        if x.shape[1] != self.input_size:
            raise ValueError(f"x must have {self.input_size} features (input_size) in its last axis, "
                             f"got shape {tuple(x.shape[1:] if unbatched else x.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"x must hold at least one sample, got shape {tuple(x.shape)}")
        return x, unbatched

    def _state(self, name, value, batch, unbatched):
        """A (B, H) state (or its gradient) from the user's (B, H) / unbatched (H,); None is zeros."""
        if value is None:
            return np.zeros((batch, self.hidden_size), self.dtype)
        value = check.float_array(name, value, 1 if unbatched else 2, self.dtype, "the cell")
        if unbatched:
            check.expect_shape(name, value, (self.hidden_size,), "(H,) for an unbatched x")
            return value[None]
        check.expect_shape(name, value, (batch, self.hidden_size), "(B, H)")
        return value

    @staticmethod
    def _out(value, unbatched):
        return value[0] if unbatched else value

    def _params(self):
        return (self.weight_ih.data, self.weight_hh.data,
                None if self.bias_ih is None else self.bias_ih.data,
                None if self.bias_hh is None else self.bias_hh.data)

    def _remember(self, ctx, batch, unbatched):
        self._saved = (ctx, batch, unbatched) if self.training else None

    def _context(self):
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a forward call in training mode first "
                               "(call .train() before the forward; eval() keeps nothing for backward)")
        return self._saved

    def _accumulate(self, grads):
        for param, grad in ((self.weight_ih, grads.dw_ih), (self.weight_hh, grads.dw_hh),
                            (self.bias_ih, grads.db_ih), (self.bias_hh, grads.db_hh)):
            if param is not None:
                param.accumulate_grad(grad, copy=False)


class _SingleStateCell(_CellBase, register=False):
    """RNNCell and GRUCell: one state h."""

    def forward(self, x, h=None):
        """One step. x (B, I) or unbatched (I,); h (B, H) / (H,) or None (zeros).

        Returns h' (B, H) (or (H,)) in the cell's dtype."""
        x, unbatched = self._input(x)
        batch = x.shape[0]
        h = self._state("h", h, batch, unbatched)
        _, h_n, ctx = self._function(x[None], *self._params(), h, None, self.training, **self.cell_options)
        self._remember(ctx, batch, unbatched)
        return self._out(h_n, unbatched)

    def backward(self, dh):
        """Gradients for the last training-mode forward, given dL/dh' (shaped like h').

        Returns ``(dx, dh_prev)`` shaped like x and h; accumulates ``.grad`` on every parameter."""
        ctx, batch, unbatched = self._context()
        dh = self._state("dh", dh, batch, unbatched)
        grads = self._backward_function(ctx, dh[None], None)
        self._accumulate(grads)
        return self._out(grads.dx[0], unbatched), self._out(grads.dh0, unbatched)


class RNNCell(_SingleStateCell):
    """Elman cell, ``torch.nn.RNNCell``'s drop-in: h' = act(W_ih x + b_ih + W_hh h + b_hh).

    ``nonlinearity`` "tanh" or "relu". Extra arguments beyond torch's: ``dtype``
    (float32 or float64) and ``seed`` (initialisation).
    """

    _cell, _gates = "rnn", 1
    _function, _backward_function = staticmethod(F.rnn), staticmethod(F.rnn_backward)

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype=np.float32, seed=None):
        check.choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__(input_size, hidden_size, bias, dtype, seed, nonlinearity=nonlinearity)


class GRUCell(_SingleStateCell):
    """GRU cell, ``torch.nn.GRUCell``'s drop-in (gates r, z, n).

    ``reset_after=False`` switches to the Cho et al. 2014 form,
    n = tanh(W_in x + b_in + W_hn (r * h) + b_hn), which torch does not have; the
    default is torch's. Extra arguments: ``dtype``, ``seed``.
    """

    _cell, _gates = "gru", 3
    _function, _backward_function = staticmethod(F.gru), staticmethod(F.gru_backward)

    def __init__(self, input_size, hidden_size, bias=True, reset_after=True, dtype=np.float32, seed=None):
        super().__init__(input_size, hidden_size, bias, dtype, seed,
                         reset_after=check.flag("reset_after", reset_after))


class LSTMCell(_CellBase):
    """LSTM cell, ``torch.nn.LSTMCell``'s drop-in (gates i, f, g, o).

    ``h1, c1 = cell(x, hx=None)`` with ``hx = (h, c)``. Extra arguments: ``dtype``, ``seed``.
    """

    _cell, _gates = "lstm", 4

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float32, seed=None):
        super().__init__(input_size, hidden_size, bias, dtype, seed)

    @staticmethod
    def _pair(name, value):
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"{name} must be a pair (h, c) or None, got {type(value).__name__}")
        return value

    def forward(self, x, hx=None):
        """One step. x (B, I) or unbatched (I,); hx = (h, c), each (B, H) / (H,), or None (zeros).

        Returns ``(h', c')`` shaped like h and c."""
        x, unbatched = self._input(x)
        batch = x.shape[0]
        h, c = (None, None) if hx is None else self._pair("hx", hx)
        h = self._state("h", h, batch, unbatched)
        c = self._state("c", c, batch, unbatched)
        _, h_n, c_n, ctx = F.lstm(x[None], *self._params(), h, c, None, self.training)
        self._remember(ctx, batch, unbatched)
        return self._out(h_n, unbatched), self._out(c_n, unbatched)

    def backward(self, dh, dc=None):
        """Gradients for the last training-mode forward, given dL/dh' and dL/dc' (either may
        be None: zeros). Returns ``(dx, (dh_prev, dc_prev))``; accumulates ``.grad`` on every
        parameter."""
        ctx, batch, unbatched = self._context()
        dh = self._state("dh", dh, batch, unbatched)
        dc = self._state("dc", dc, batch, unbatched)
        grads = F.lstm_backward(ctx, dh[None], None, dc)
        self._accumulate(grads)
        return self._out(grads.dx[0], unbatched), (self._out(grads.dh0, unbatched), self._out(grads.dc0, unbatched))
