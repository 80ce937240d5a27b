"""fastrnn.kernels.workspace: reused scratch buffers and carved blocks."""
import threading

import numpy as np

from fastrnn import functional as F
from fastrnn.kernels.workspace import carve, reused


def test_reused_per_name_shape_and_thread():
    a = reused("test.a", (3, 4), np.float32)
    assert reused("test.a", (3, 4), np.float32) is a
    assert reused("test.b", (3, 4), np.float32) is not a
    b = reused("test.a", (4, 3), np.float32)
    assert b is not a and b.shape == (4, 3)
    assert reused("test.a", (4, 3), np.float64).dtype == np.float64
    other = []
    thread = threading.Thread(target=lambda: other.append(reused("test.a", (4, 3), np.float64)))
    thread.start()
    thread.join()
    assert other[0] is not reused("test.a", (4, 3), np.float64)


def test_carve_gives_disjoint_views_of_one_block():
    parts = carve(np.float64, [(2, 3), (0, 5), (4,), (1, 1, 2)])
    assert [p.shape for p in parts] == [(2, 3), (0, 5), (4,), (1, 1, 2)]
    for k, p in enumerate(parts):
        p[...] = k
    assert parts[0].base is parts[2].base
    np.testing.assert_array_equal(parts[0], 0)
    np.testing.assert_array_equal(parts[2], 2)
    np.testing.assert_array_equal(parts[3], 3)


def test_backward_twice_and_interleaved_contexts_agree():
    """Workspaces are reused between calls: two contexts backpropagated in any order
    give the same results as alone, and results are never views of a workspace."""
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 5, 3, 4))
    w = (0.3 * rng.standard_normal((20, 4)), 0.3 * rng.standard_normal((20, 5)))
    ln = (np.ones(20), np.ones(20), np.ones(5), np.zeros(5))
    dy = rng.standard_normal((5, 3, 5))
    ctx1 = F.lstm(x1, *w, training=True, layer_norm=ln)[-1]
    ctx2 = F.lstm(x2, *w, training=True, layer_norm=ln)[-1]
    first = F.lstm_backward(ctx1, dy)
    F.lstm_backward(ctx2, dy)
    again = F.lstm_backward(ctx1, dy)
    for a, b in zip(first[:7], again[:7]):
        np.testing.assert_array_equal(a, b)
    assert first.dx.base is None or first.dx.base is not again.dx.base


def test_named_carve_reuses_a_block_only_when_nothing_holds_it():
    first = carve(np.float32, [(2, 3), (4,)], name="test.block")
    address = first[0].ctypes.data
    del first
    again = carve(np.float32, [(2, 3), (4,)], name="test.block")
    # nothing held the old views: the same block (a new one would be allocated while
    # the cached one is still alive, so it could not have the same address)
    assert again[0].ctypes.data == address
    held = again
    other = carve(np.float32, [(2, 3), (4,)], name="test.block")
    assert other[0].base is not held[0].base  # a live view (a context) keeps its block
    assert carve(np.float32, [(3, 3)], name="test.block")[0].base is not other[0].base  # other size
