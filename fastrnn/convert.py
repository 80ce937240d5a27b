"""``fastrnn.convert``: the public name of :mod:`fastrnn.interop.convert` (see its documentation)."""
from .interop.convert import *  # noqa: F401,F403
from .interop.convert import __all__, __doc__  # noqa: F401
