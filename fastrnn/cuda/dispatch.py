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
