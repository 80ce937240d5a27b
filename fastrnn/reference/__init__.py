"""Plain-NumPy reference implementations of the RNN, LSTM and GRU.

The oracle the tests compare the fused kernels with (in float64) and the NumPy
baseline of the benchmarks. Written for clarity: a Python loop over time steps,
one input-projection matmul for all steps, one recurrent matmul per step.
Computes in the dtype of ``x`` (float32 or float64) and imports nothing from
the rest of :mod:`fastrnn`.

Shared conventions: time-major ``x (T, B, I)``; PyTorch weight layout
``w_ih (G*H, I)``, ``w_hh (G*H, H)``, ``b_ih``/``b_hh (G*H,)`` or None;
``h0``/``c0 (B, H)`` or None (zeros); ``lengths (B,)`` in ``1..T`` or None, with
packed-sequence semantics (state frozen and output zero past a sequence's end).
Gate orders: LSTM i, f, g, o; GRU r, z, n.

Backward functions return the gradients of
``L = sum(dy * y) + sum(dh_n * h_n) (+ sum(dc_n * c_n))``.
"""
from .gru import gru_backward, gru_forward
from .gru_variants import gru_variants_backward, gru_variants_forward
from .lstm import lstm_backward, lstm_forward
from .lstm_variants import lstm_variants_backward, lstm_variants_forward
from .rnn import rnn_backward, rnn_forward

__all__ = [
    "lstm_forward", "lstm_backward",
    "lstm_variants_forward", "lstm_variants_backward",
    "gru_forward", "gru_backward",
    "gru_variants_forward", "gru_variants_backward",
    "rnn_forward", "rnn_backward",
]
