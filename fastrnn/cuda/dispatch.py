"""Placing one :mod:`fastrnn.functional` call on CUDA.

The functional API validates its arguments with the same NumPy-based checks for
both devices. For an argument that is already on the device (anything with
``__cuda_array_interface__``), :class:`Placement` hands those checks an
uninitialised host array of the same shape and dtype (a *stand-in*: never read,
and untouched pages cost no memory), then maps the validated stand-ins back to the
device arrays (no copy) and copies the host arguments to the device. Outputs are
NumPy arrays when the leading argument (x in a forward, dy in a backward) was a
NumPy array, else device arrays.
"""
import numpy as np

from . import _device


def is_device_array(value):
    """True for Numba device arrays and any object with ``__cuda_array_interface__``."""
    return bool(getattr(value, "__cuda_ndarray__", False)) or hasattr(value, "__cuda_array_interface__")


class Placement:
    """One call's arguments: ``stand_ins`` (in the order given) to validate, then the
    forward/backward methods run the CUDA drivers on the validated values."""

    def __init__(self, arrays):
        self.cuda = _device.require()  # the one clear error, before any kernel module loads
        self._on_device = []  # (stand-in, device array) pairs
        stand_ins = []
        for name, value in arrays.items():
            if value is not None and is_device_array(value):
                if name == "lengths":  # (B,) ints whose values are checked: read them back
                    value = self._as_device(name, value).copy_to_host()
                else:
                    device_value = self._as_device(name, value)
                    value = np.empty(device_value.shape, device_value.dtype)
                    self._on_device.append((value, device_value))
            stand_ins.append(value)
        self.stand_ins = tuple(stand_ins)
        leading = next(iter(arrays.values()))
        self.to_host = not is_device_array(leading)

    def _as_device(self, name, value):
        array = value if getattr(value, "__cuda_ndarray__", False) else self.cuda.as_cuda_array(value)
        if not array.is_c_contiguous():
            raise ValueError(f"{name} is a device array with shape {tuple(array.shape)} that is not "
                             "C-contiguous; fastrnn's CUDA kernels take C-contiguous device arrays "
                             "(make a contiguous copy first)")
        return array

    def device(self, value):
        """The device array for a validated argument (None stays None)."""
        if value is None:
            return None
        for stand_in, device_value in self._on_device:
            if value is stand_in or value.base is stand_in:
                return device_value
        return self.cuda.to_device(np.ascontiguousarray(value))

    def _bias(self, value, size, dtype):
        if value is None:
            from .common import zeros
            return zeros((size,), dtype)
        return self.device(value)

    def _out(self, *arrays):
        if not self.to_host:
            return arrays
        return tuple(None if a is None else a.copy_to_host() for a in arrays)

    @staticmethod
    def _twin(array):
        """A separate device copy (so the two bias gradients are distinct arrays)."""
        from .common import empty
        copy = empty(array.shape, array.dtype)
        copy.copy_to_device(array)
        return copy

    # forwards: validated arguments in, (outputs..., saved) out --------------------

    def lstm_forward(self, x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, training, w_hr):
        from .lstm import lstm_forward
        gates = w_ih.shape[0]
        y, h_n, c_n, saved = lstm_forward(
            self.device(x), self.device(w_ih), self.device(w_hh), self._bias(b_ih, gates, x.dtype),
            self._bias(b_hh, gates, x.dtype), self.device(h0), self.device(c0), self.device(lengths),
            training, self.device(w_hr))
        return (*self._out(y, h_n, c_n), saved)

    def gru_forward(self, x, w_ih, w_hh, b_ih, b_hh, h0, lengths, training, reset_after):
        from .gru import gru_forward
        gates = w_ih.shape[0]
        y, h_n, saved = gru_forward(
            self.device(x), self.device(w_ih), self.device(w_hh), self._bias(b_ih, gates, x.dtype),
            self._bias(b_hh, gates, x.dtype), self.device(h0), self.device(lengths), training, reset_after)
        return (*self._out(y, h_n), saved)

    def rnn_forward(self, x, w_ih, w_hh, b_ih, b_hh, h0, lengths, training, use_relu):
        from .rnn import rnn_forward
        gates = w_ih.shape[0]
        y, h_n, saved = rnn_forward(
            self.device(x), self.device(w_ih), self.device(w_hh), self._bias(b_ih, gates, x.dtype),
            self._bias(b_hh, gates, x.dtype), self.device(h0), self.device(lengths), training, use_relu)
        return (*self._out(y, h_n), saved)

    # backwards: validated gradients in, gradient tuple out (both bias gradients) ---

    def lstm_backward(self, saved, dy, dh_n, dc_n):
        """Returns (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr or None)."""
        from .lstm import lstm_backward
        dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr = lstm_backward(saved, self.device(dy), self.device(dh_n),
                                                              self.device(dc_n))
        return self._out(dx, dh0, dc0, dw_ih, dw_hh, db, self._twin(db), dw_hr)

    def gru_backward(self, saved, dy, dh_n):
        """Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh)."""
        from .gru import gru_backward
        return self._out(*gru_backward(saved, self.device(dy), self.device(dh_n)))

    def rnn_backward(self, saved, dy, dh_n):
        """Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh)."""
        from .rnn import rnn_backward
        dx, dh0, dw_ih, dw_hh, db = rnn_backward(saved, self.device(dy), self.device(dh_n))
        return self._out(dx, dh0, dw_ih, dw_hh, db, self._twin(db))

    # variants (fastrnn._variants): options are validated host arrays ---------------

    def _masked_input(self, value, mask):
        """(value * mask on the device, the device mask): x (T, B, I) with an input mask
        (B, I), or W_hh with a DropConnect mask; (the device value, None) without one."""
        value = self.device(value)
        if mask is None:
            return value, None
        from .common import empty, rows
        from .lstm_variants import masked
        mask = self.device(mask)
        out = empty(value.shape, value.dtype)
        masked(rows(value), mask, rows(out))
        return out, mask

    @staticmethod
    def _unmask(array, mask):
        """array *= mask in place (dx with the input mask, dW_hh with DropConnect's)."""
        if mask is not None:
            from .common import rows
            from .lstm_variants import masked
            masked(rows(array), mask, rows(array))

    def lstm_variants_forward(self, x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, training, options):
        """options: a fastrnn._variants.LSTMOptions. Returns (y, h_n, c_n, saved or None,
        (input mask, DropConnect mask) on the device, None where off)."""
        from .common import empty
        from .lstm_variants import add, lstm_variants_forward
        width = w_ih.shape[0]
        x_in, input_mask = self._masked_input(x, options.input_mask)
        w_hh_in, weight_hh_mask = self._masked_input(w_hh, options.weight_hh_mask)
        bias = empty((width,), x.dtype)
        add(self._bias(b_ih, width, x.dtype), self._bias(b_hh, width, x.dtype), bias)
        layer_norm = None if options.layer_norm is None else tuple(self.device(a) for a in options.layer_norm)
        y, h_n, c_n, saved = lstm_variants_forward(
            x_in, self.device(w_ih), w_hh_in, bias, self.device(h0), self.device(c0), self.device(lengths), training,
            self.device(options.peephole), layer_norm, self.device(options.recurrent_mask),
            self.device(options.zoneout_h), self.device(options.zoneout_c), options.cell_clip)
        return (*self._out(y, h_n, c_n), saved, (input_mask, weight_hh_mask))

    def lstm_variants_backward(self, saved, dy, dh_n, dc_n):
        """saved: the fastrnn._variants.VariantSaved of a CUDA forward. Returns (dx, dh0,
        dc0, dw_ih, dw_hh, db_ih, db_hh, dpeephole (w_ci or None, w_cf, w_co) or None,
        dlayer_norm (4 arrays) or None)."""
        from .lstm_variants import lstm_variants_backward
        dx, dh0, dc0, dw_ih, dw_hh, db, dpeep, dln = lstm_variants_backward(
            saved.kernel_saved, self.device(dy), self.device(dh_n), self.device(dc_n))
        self._unmask(dx, saved.input_mask)
        self._unmask(dw_hh, saved.weight_hh_mask)
        flat = self._out(dx, dh0, dc0, dw_ih, dw_hh, db, self._twin(db))
        if dpeep is not None:
            dpeep = self._out(None if saved.peephole_coupled else dpeep[0], dpeep[1], dpeep[2])
        if dln is not None:
            dln = self._out(*dln)
        return (*flat, dpeep, dln)

    def gru_variants_forward(self, x, w_ih, w_hh, b_ih, b_hh, h0, lengths, training, reset_after, options):
        """options: a fastrnn._variants.GRUOptions. Input dropout and DropConnect alone run
        on the plain kernels (either reset form), the rest on .gru_variants. Returns
        (y, h_n, saved or None, (input mask, DropConnect mask) on the device)."""
        gates = w_ih.shape[0]
        x_in, input_mask = self._masked_input(x, options.input_mask)
        w_hh_in, weight_hh_mask = self._masked_input(w_hh, options.weight_hh_mask)
        args = (x_in, self.device(w_ih), w_hh_in, self._bias(b_ih, gates, x.dtype), self._bias(b_hh, gates, x.dtype),
                self.device(h0), self.device(lengths), training)
        if options.layer_norm is None and options.recurrent_mask is None and options.zoneout_h is None:
            from .gru import gru_forward
            y, h_n, saved = gru_forward(*args, reset_after)
            kind = "plain"
        else:
            from .gru_variants import gru_variants_forward
            ln_ih, ln_hh = (None, None) if options.layer_norm is None else options.layer_norm
            y, h_n, saved = gru_variants_forward(*args, self.device(ln_ih), self.device(ln_hh),
                                                 self.device(options.recurrent_mask), self.device(options.zoneout_h))
            kind = "variants"
        return (*self._out(y, h_n), (kind, saved) if training else None, (input_mask, weight_hh_mask))

    def gru_variants_backward(self, saved, dy, dh_n):
        """Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dlayer_norm (d ln_ih, d ln_hh) or None)."""
        kind, kernel_saved = saved.kernel_saved
        if kind == "plain":
            from .gru import gru_backward
            dx, dh0, dw_ih, dw_hh, db_ih, db_hh = gru_backward(kernel_saved, self.device(dy), self.device(dh_n))
            dln_ih = dln_hh = None
        else:
            from .gru_variants import gru_variants_backward
            dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dln_ih, dln_hh = gru_variants_backward(
                kernel_saved, self.device(dy), self.device(dh_n))
        self._unmask(dx, saved.input_mask)
        self._unmask(dw_hh, saved.weight_hh_mask)
        dln = None if dln_ih is None else self._out(dln_ih, dln_hh)
        return (*self._out(dx, dh0, dw_ih, dw_hh, db_ih, db_hh), dln)
