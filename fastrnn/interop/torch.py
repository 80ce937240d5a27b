"""PyTorch drop-ins: ``torch.nn.LSTM``/``GRU``/``RNN`` running fastrnn's fused CPU kernels.

:class:`LSTM`, :class:`GRU` and :class:`RNN` subclass their ``torch.nn``
counterparts and override only ``forward``: the constructor, parameters and their
names, ``state_dict``/``load_state_dict``, ``repr``, ``.to()``, hooks and the call
signature are torch's own. The call takes and returns tensors exactly as torch's
does (``batch_first``, ``hx``, unbatched 2-D input, ``PackedSequence`` in and out,
``proj_size`` for the LSTM, dropout between layers in training mode).

Each (layer, direction) runs as one ``torch.autograd.Function`` whose forward calls
:func:`fastrnn.functional.lstm`/``gru``/``rnn`` and whose backward calls the
matching ``*_backward``: the whole sequence forward and backward in one fused
kernel call each. Tensors cross into NumPy without copies (``.numpy()`` views of
contiguous CPU tensors) and gradients come back as tensors wrapping the kernels'
arrays. Tensors on any device other than the CPU (CUDA, meta, ...) raise
``RuntimeError``; use ``torch.nn``'s modules there.

Differences from torch worth knowing: double backward is not supported (the
backward is ``once_differentiable``); dropout masks between layers come from
torch's RNG through ``torch.nn.functional.dropout`` but in a different order than
torch's fused kernels draw them; float16/bfloat16 are refused (float32 and
float64 only, as everywhere in fastrnn); an empty batch (B = 0), which torch
answers with empty outputs, raises ``ValueError`` as every fastrnn entry point does.

:func:`convert` turns every ``torch.nn.LSTM``/``GRU``/``RNN`` of a model into the
fastrnn version in place, keeping the very same parameter tensors (optimizers
built before the conversion keep working); :func:`revert` undoes it.
"""
import copy

import numpy as np

try:
    import torch
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("fastrnn.torch needs PyTorch: pip install 'fastrnn[torch]'") from exc
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .. import functional as F

__all__ = ["LSTM", "GRU", "RNN", "convert", "revert", "recurrent_function"]

_FLOAT_DTYPES = (torch.float32, torch.float64)


def _reverse_within_lengths(a, lengths):
    """Reverse the time axis of a (T, B, F) array within each sequence's length.

    Positions past a sequence's length stay where they are; the map is its own inverse.
    Returns a new C-contiguous array.
    """
    if lengths is None:
        # a copy, not ascontiguousarray: at T = 1 numpy calls a[::-1] contiguous and
        # returns the view, whose negative stride torch.from_numpy refuses
        return a[::-1].copy()
    t = np.arange(a.shape[0])[:, None]
    source = np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
    return np.take_along_axis(a, source[:, :, None], axis=0)


def _array(t):
    """Zero-copy NumPy view of a CPU tensor (a contiguous copy first when it is not contiguous)."""
    if t is None:
        return None
    return t.detach().contiguous().numpy()


def _tensor(a):
    return None if a is None else torch.from_numpy(a)


class _Spec:
    """The non-tensor arguments of one (layer, direction) call."""

    __slots__ = ("cell", "options", "lengths", "reverse", "training")

    def __init__(self, cell, options, lengths, reverse, training):
        self.cell, self.options, self.lengths = cell, options, lengths
        self.reverse, self.training = reverse, training


class _RecurrentFunction(torch.autograd.Function):
    """One fused recurrent layer direction: forward and backward in one kernel call each.

    apply(spec, x (T, B, I), h0 (B, P) or None, c0 (B, H) or None (LSTM only),
    w_ih, w_hh, b_ih or None, b_hh or None, w_hr or None (LSTM projection only))
    returns (y (T, B, P), h_n) or, for the LSTM, (y, h_n, c_n).
    """

    @staticmethod
    def forward(ctx, spec, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr):
        ctx.set_materialize_grads(False)
        lengths = spec.lengths
        x_np = _array(x)
        if spec.reverse:
            x_np = _reverse_within_lengths(x_np, lengths)
        weights = [_array(w) for w in (w_ih, w_hh, b_ih, b_hh)]
        h0_np = _array(h0)
        if spec.cell == "lstm":
            y, h_n, c_n, fctx = F.lstm(x_np, *weights, h0_np, _array(c0), lengths, spec.training, w_hr=_array(w_hr))
            finals = (h_n, c_n)
        elif spec.cell == "gru":
            y, h_n, fctx = F.gru(x_np, *weights, h0_np, lengths, spec.training, **spec.options)
            finals = (h_n,)
        else:
            y, h_n, fctx = F.rnn(x_np, *weights, h0_np, lengths, spec.training, **spec.options)
            finals = (h_n,)
        y_out = torch.from_numpy(_reverse_within_lengths(y, lengths) if spec.reverse else y)
        outputs = (y_out, *(torch.from_numpy(f) for f in finals))
        if spec.training:
            ctx.spec, ctx.fctx = spec, fctx
            ctx.has_h0, ctx.has_c0 = h0 is not None, c0 is not None
            # The kernel context keeps NumPy views of these tensors (and of y when it is
            # returned unreversed): saving them lets autograd's version counters catch
            # in-place changes made before the backward.
            saved = [x, w_ih, w_hh] + [t for t in (h0, c0, b_ih, b_hh, w_hr) if t is not None]
            if not spec.reverse:
                saved.append(y_out)
            ctx.save_for_backward(*saved)
        return outputs

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh_n, dc_n=None):
        spec = getattr(ctx, "spec", None)
        if spec is None:
            raise RuntimeError("fastrnn.torch: this forward ran without autograd (no input required a gradient)")
        ctx.saved_tensors  # noqa: B018  (raises if a saved tensor was modified in place)
        fctx, lengths = ctx.fctx, spec.lengths
        if dy is None:
            dy_np = np.zeros((fctx.steps, fctx.batch, fctx.width), fctx.dtype)
        else:
            dy_np = _array(dy)
            if spec.reverse:
                dy_np = _reverse_within_lengths(dy_np, lengths)
        if spec.cell == "lstm":
            grads = F.lstm_backward(fctx, dy_np, _array(dh_n), _array(dc_n))
            dc0 = grads.dc0 if ctx.has_c0 else None
            dw_hr = getattr(grads, "dw_hr", None)
        else:
            backward = F.gru_backward if spec.cell == "gru" else F.rnn_backward
            grads = backward(fctx, dy_np, _array(dh_n))
            dc0 = dw_hr = None
        dx = _reverse_within_lengths(grads.dx, lengths) if spec.reverse else grads.dx
        dh0 = grads.dh0 if ctx.has_h0 else None
        result = [dx, dh0, dc0, grads.dw_ih, grads.dw_hh, grads.db_ih, grads.db_hh, dw_hr]
        needs = ctx.needs_input_grad[1:]
        return (None, *(_tensor(g) if need else None for g, need in zip(result, needs)))


def recurrent_function(cell, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None, lengths=None,
                       reverse=False, **options):
    """One fused layer direction on tensors, differentiable through autograd.

    cell: "lstm", "gru" or "rnn"; x (T, B, I) time-major; h0 (B, P), c0 (B, H)
    (LSTM only; None elsewhere) or None for zeros; weights in torch layout;
    lengths (B,) ints or None; ``reverse`` runs the sequence backwards within each
    length; options: ``reset_after`` (GRU), ``nonlinearity`` (RNN).
    Returns ``(y, h_n)`` or, for the LSTM, ``(y, h_n, c_n)``.
    """
    if cell not in ("lstm", "gru", "rnn"):
        raise ValueError(f"cell must be 'lstm', 'gru' or 'rnn', got {cell!r}")
    tensors = [t for t in (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr) if t is not None]
    _check_devices("fastrnn.torch.recurrent_function", tensors)
    if lengths is not None:
        lengths = np.ascontiguousarray(torch.as_tensor(lengths).cpu().numpy(), dtype=np.int64)
    training = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    spec = _Spec(cell, options, lengths, bool(reverse), training)
    return _RecurrentFunction.apply(spec, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr)


def _check_devices(owner, tensors):
    for t in tensors:
        if t.device.type != "cpu":
            raise RuntimeError(
                f"{owner} runs fastrnn's fused CPU kernels and needs CPU tensors, got a tensor on device "
                f"'{t.device}'. Move the module and its inputs to the CPU (.cpu()), or use torch.nn's own "
                f"module for '{t.device.type}' tensors (fastrnn.torch.revert(model) swaps it back).")
    for t in tensors:
        if t.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"{owner} supports float32 and float64 tensors only, got {t.dtype} "
                            "(convert with .float() or .double())")


class _FastRecurrentMixin:
    """forward() shared by the three drop-ins; the rest of the module is torch's."""

    _fastrnn_cell = None

    def _cell_options(self):
        return {}

    def forward(self, input, hx=None):  # noqa: A002 (torch's argument name)
        name = f"fastrnn.torch.{type(self).__name__}"
        cell = self._fastrnn_cell
        lstm = cell == "lstm"
        packed = isinstance(input, PackedSequence)
        num_directions = 2 if self.bidirectional else 1
        if hasattr(self, "_update_flat_weights"):
            self._update_flat_weights()
        if packed:
            batch_sizes = input.batch_sizes
            if hx is not None:
                self.check_forward_args(input.data, hx, batch_sizes)
            else:
                self.check_input(input.data, batch_sizes)
            _check_devices(name, [input.data, *self._tensors_of(hx), *self.parameters()])
            x, lengths_t = pad_packed_sequence(input)  # (T, B, I), original batch order
            lengths = np.ascontiguousarray(lengths_t.numpy(), dtype=np.int64)
            if lengths.min() == x.shape[0]:
                lengths = None
            batched = True
        else:
            if input.dim() not in (2, 3):
                raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.dim()}D instead")
            batched = input.dim() == 3
            batch_dim = 0 if self.batch_first else 1
            x = input if batched else input.unsqueeze(batch_dim)
            if hx is not None:
                hx = self._shape_hx(hx, batched)
                self.check_forward_args(x, hx, None)
            else:
                self.check_input(x, None)
            _check_devices(name, [x, *self._tensors_of(hx), *self.parameters()])
            if self.batch_first:
                x = x.transpose(0, 1)
            lengths = None
        states = ([None, None] if lstm else [None]) if hx is None else (list(hx) if lstm else [hx])
        params = [x, *[s for s in states if s is not None], *self.parameters()]
        training = torch.is_grad_enabled() and any(t.requires_grad for t in params)
        options = self._cell_options()

        layer_input = x
        finals = [[] for _ in states]
        for layer in range(self.num_layers):
            if layer > 0 and self.training and self.dropout > 0:
                layer_input = nn.functional.dropout(layer_input, self.dropout, True)
            outputs = []
            for direction in range(num_directions):
                index = layer * num_directions + direction
                suffix = "_reverse" if direction else ""
                weights = [self._param(f"weight_ih_l{layer}{suffix}"), self._param(f"weight_hh_l{layer}{suffix}"),
                           self._param(f"bias_ih_l{layer}{suffix}"), self._param(f"bias_hh_l{layer}{suffix}"),
                           self._param(f"weight_hr_l{layer}{suffix}")]
                layer_states = [None if s is None else s[index] for s in states]
                h0 = layer_states[0]
                c0 = layer_states[1] if lstm else None
                spec = _Spec(cell, options, lengths, direction == 1, training)
                result = _RecurrentFunction.apply(spec, layer_input, h0, c0, *weights)
                outputs.append(result[0])
                for store, value in zip(finals, result[1:]):
                    store.append(value)
            layer_input = outputs[0] if num_directions == 1 else torch.cat(outputs, 2)
        y = layer_input
        hidden = [torch.stack(f) for f in finals]

        if packed:
            sorted_lengths = lengths_t
            if input.sorted_indices is not None:
                y = y.index_select(1, input.sorted_indices)
                sorted_lengths = lengths_t.index_select(0, input.sorted_indices.cpu())
            data = pack_padded_sequence(y, sorted_lengths, enforce_sorted=True).data
            output = PackedSequence(data, input.batch_sizes, input.sorted_indices, input.unsorted_indices)
        else:
            output = y.transpose(0, 1) if self.batch_first else y
            if not batched:
                output = output.squeeze(batch_dim)
                hidden = [h.squeeze(1) for h in hidden]
        return (output, tuple(hidden)) if lstm else (output, hidden[0])

    def _param(self, name):
        return getattr(self, name, None)

    @staticmethod
    def _tensors_of(hx):
        if hx is None:
            return []
        return list(hx) if isinstance(hx, (tuple, list)) else [hx]


class RNN(_FastRecurrentMixin, nn.RNN):
    """``torch.nn.RNN`` (tanh or relu) running fastrnn's fused kernels; see the module docs."""

    _fastrnn_cell = "rnn"

    def _cell_options(self):
        return {"nonlinearity": self.nonlinearity}

    def _shape_hx(self, hx, batched):
        return _single_hx(hx, batched)


class GRU(_FastRecurrentMixin, nn.GRU):
    """``torch.nn.GRU`` (torch's reset-after form) running fastrnn's fused kernels; see the module docs."""

    _fastrnn_cell = "gru"

    def _cell_options(self):
        return {"reset_after": True}

    def _shape_hx(self, hx, batched):
        return _single_hx(hx, batched)


class LSTM(_FastRecurrentMixin, nn.LSTM):
    """``torch.nn.LSTM`` (with ``proj_size``) running fastrnn's fused kernels; see the module docs."""

    _fastrnn_cell = "lstm"

    def _shape_hx(self, hx, batched):
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"LSTM: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        h, c = hx
        want = 3 if batched else 2
        if h.dim() != want or c.dim() != want:
            kind = "batched 3-D" if batched else "unbatched 2-D"
            raise RuntimeError(f"For {kind} input, hx and cx should also be {want}-D but got "
                               f"({h.dim()}-D, {c.dim()}-D) tensors")
        return (h, c) if batched else (h.unsqueeze(1), c.unsqueeze(1))


def _single_hx(hx, batched):
    if not isinstance(hx, torch.Tensor):
        raise TypeError(f"hx must be a Tensor, got {type(hx).__name__}")
    if batched and hx.dim() != 3:
        raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got {hx.dim()}-D tensor")
    if not batched:
        if hx.dim() != 2:
            raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got {hx.dim()}-D tensor")
        hx = hx.unsqueeze(1)
    return hx


_TO_FAST = {nn.LSTM: LSTM, nn.GRU: GRU, nn.RNN: RNN}
_TO_TORCH = {fast: base for base, fast in _TO_FAST.items()}


def convert(model, inplace=True):
    """Make every ``torch.nn.LSTM``/``GRU``/``RNN`` in ``model`` (itself included) run fastrnn.

    The modules keep their identity, parameters (the very same tensors, so an
    optimizer built earlier keeps working), buffers, hooks and training mode: only
    their class changes to :class:`LSTM`/:class:`GRU`/:class:`RNN`, which add no
    state. Subclasses of the torch layers are left alone (they may override
    ``forward``). With ``inplace=False`` a deep copy is converted and the original
    is untouched. Returns the (converted) model.
    """
    return _swap(model, _TO_FAST, inplace)


def revert(model, inplace=True):
    """Undo :func:`convert`: fastrnn.torch modules become ``torch.nn`` modules again. Returns the model."""
    return _swap(model, _TO_TORCH, inplace)


def _swap(model, table, inplace):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)
    for module in model.modules():
        target = table.get(type(module))
        if target is not None:
            module.__class__ = target
    return model
