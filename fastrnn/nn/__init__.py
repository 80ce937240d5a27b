"""Layers and the module system.

:class:`Module` / :class:`Parameter` (PyTorch-style registration, ``state_dict``,
``train``/``eval``), :class:`Sequential`, the feed-forward layers :class:`Linear`,
:class:`Embedding`, :class:`Dropout`, and pickle-free :func:`save` / :func:`load`
(one ``.npz`` with the weights and a JSON config).
"""
from .layers import Dropout, Embedding, Linear
from .module import IncompatibleKeys, Module, Parameter, Sequential, StateDictError, load, save
from .cells import GRUCell, LSTMCell, RNNCell
from .recurrent import GRU, LSTM, RNN
from .streaming import Stream

__all__ = ["Parameter", "Module", "Sequential", "Linear", "Embedding", "Dropout", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Stream",
           "save", "load",
           "StateDictError", "IncompatibleKeys"]
