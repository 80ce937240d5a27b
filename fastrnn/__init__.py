"""fastrnn: fused recurrent-network kernels (RNN, LSTM, GRU) for CPUs.

Whole sequences run forward and backward inside one compiled Numba call.
:mod:`fastrnn.functional` holds the kernels' entry points; ``fastrnn.LSTM`` /
``GRU`` / ``RNN`` are drop-ins for torch's layers; :mod:`fastrnn.optim`,
:mod:`fastrnn.losses`, :mod:`fastrnn.data` and :mod:`fastrnn.train` train them.
``python -m fastrnn.bench`` prints the benchmark report.
"""
from . import data, functional, init, losses, nn, optim, train
from ._finite import NonFiniteError
from .nn import GRU, LSTM, RNN, Dropout, Embedding, GRUCell, Linear, LSTMCell, RNNCell, Sequential

__version__ = "0.1.0"
__all__ = ["functional", "nn", "init", "optim", "losses", "data", "train",
           "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell",
           "Linear", "Embedding", "Dropout", "Sequential", "NonFiniteError", "__version__"]
