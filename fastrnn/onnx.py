"""``fastrnn.onnx``: the public name of :mod:`fastrnn.interop.onnx` (see its documentation)."""
from .interop.onnx import *  # noqa: F401,F403
from .interop.onnx import __all__, __doc__  # noqa: F401
