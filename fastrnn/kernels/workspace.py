"""Reusable scratch buffers for the drivers.

A backward pass needs (T, B, G*H) workspaces that nobody sees after the call. Fresh
multi-megabyte arrays are often new memory mappings (glibc's allocator returns large
blocks to the system on free), and touching them first costs page faults: measured
here at S2 (T=100, B=32, H=128), LSTM forward+backward took 25-31 ms with fresh
workspaces and 20 ms with these, the layer-norm LSTM forward 12-14 ms against 10. Each thread keeps the last buffer per name and reuses it when the next call
asks for the same shape and dtype; a different shape replaces it, so memory held is
at most one buffer per name and thread.

Only for arrays that are neither returned nor kept in a context: the next call
overwrites them. :func:`carve` serves the arrays a forward keeps for its backward.
"""
import threading

import numpy as np

_local = threading.local()


def reused(name, shape, dtype):
    """An uninitialized array of ``shape`` and ``dtype``, reused across calls of this
    thread that ask for the same ``name`` (its contents are whatever the last user left)."""
    cache = getattr(_local, "buffers", None)
    if cache is None:
        cache = _local.buffers = {}
    shape, dtype = tuple(shape), np.dtype(dtype)
    array = cache.get(name)
    if array is None or array.shape != shape or array.dtype != dtype:
        array = cache[name] = np.empty(shape, dtype)
    return array


def carve(dtype, shapes):
    """Arrays of the given shapes, all views of one fresh allocation.

    For what a training forward keeps for its backward: freed together (when the
    context goes), one large block tends to stay in the allocator's heap, where several
    multi-megabyte arrays are each unmapped and page-faulted back on the next call.
    """
    sizes = [int(np.prod(shape)) for shape in shapes]
    block = np.empty(sum(sizes), dtype)
    out, start = [], 0
    for shape, size in zip(shapes, sizes):
        out.append(block[start:start + size].reshape(shape))
        start += size
    return out


def clear():
    """Release this thread's reused buffers (the next calls allocate afresh)."""
    _local.buffers = {}
