"""``fastrnn.torch``: the public name of :mod:`fastrnn.interop.torch` (see its documentation)."""
from .interop.torch import *  # noqa: F401,F403
from .interop.torch import __all__, __doc__  # noqa: F401
