"""The one place that decides how fastrnn compiles its kernels.

Every CPU kernel is decorated with :func:`kernel`. Compilation is lazy (on first
call, per dtype); results are cached on disk (``cache=True``) so a machine compiles
each kernel once. Set ``FASTRNN_DISABLE_CACHE=1`` to compile in memory only (useful
when the cache directory is read-only or while editing kernels).

``error_model="numpy"`` matters for speed: Python's error model inserts division by
zero checks that stop LLVM from vectorizing the pointwise loops. ``fastmath`` stays
off: the tolerance tests compare against float64 references and reassociation would
make results depend on the vector width.
"""
import os

import numba

CACHE = os.environ.get("FASTRNN_DISABLE_CACHE", "").strip().lower() not in ("1", "true", "yes")

_OPTIONS = dict(cache=CACHE, error_model="numpy", fastmath={"contract"}, nogil=True)


def kernel(fn):
    """Compile ``fn`` with fastrnn's Numba policy (lazy, cached, vectorizable)."""
    return numba.njit(**_OPTIONS)(fn)


def reduction_kernel(fn):
    """Like :func:`kernel` but LLVM may reassociate floating-point adds, so sums over a
    row vectorize (strict left-to-right order keeps them scalar: one add per ~4
    cycles). Only for helpers whose sums feed a tolerance-tested result (layer norm);
    the result then depends on the vector width in the last bits."""
    return numba.njit(**{**_OPTIONS, "fastmath": {"contract", "reassoc"}})(fn)


def inline_kernel(fn):
    """Like :func:`kernel` but always inlined into its caller (small scalar helpers)."""
    return numba.njit(inline="always", **_OPTIONS)(fn)
