"""fastrnn: fused recurrent-network kernels (RNN, LSTM, GRU) for CPUs.

Whole sequences run forward and backward inside one compiled Numba call. Start
with :mod:`fastrnn.functional`; ``python -m fastrnn.bench`` prints the benchmark
report.
"""
from . import functional, nn
from .nn import GRU, LSTM, RNN, Dropout, Embedding, GRUCell, Linear, LSTMCell, RNNCell, Sequential

__version__ = "0.1.0"
__all__ = ["functional", "nn", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Linear", "Embedding", "Dropout", "Sequential", "__version__"]
