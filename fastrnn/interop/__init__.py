"""Interoperability: PyTorch drop-in modules, ONNX export, weight converters.

Submodules (import each explicitly; ``import fastrnn`` imports none of them, and
nothing here imports torch or onnx until its own submodule is imported):

- :mod:`fastrnn.interop.torch` (also ``fastrnn.torch``; extra ``torch``):
  ``LSTM``/``GRU``/``RNN`` as ``torch.nn`` modules running fastrnn's fused CPU
  kernels forward and backward, and ``convert(model)``.
- :mod:`fastrnn.interop.onnx` (also ``fastrnn.onnx``; extra ``onnx``):
  ``export(layer_or_model, path)`` to standard ONNX ``LSTM``/``GRU``/``RNN`` nodes.
- :mod:`fastrnn.interop.convert` (also ``fastrnn.convert``; NumPy only): weights
  to and from Keras and haste layouts.
"""
__all__ = ["torch", "onnx", "convert"]
