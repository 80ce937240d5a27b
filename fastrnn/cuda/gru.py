"""GRU on CUDA (gates r, z, n), both reset forms; mirrors :mod:`fastrnn.kernels.gru`.

reset-after (PyTorch, cuDNN): the whole time loop is one launch
(:func:`gru_sequence_kernel`): per step the grid computes h W_hh^T (GEMM tiles shared
out among its blocks), meets at a barrier, applies :func:`gru_cell` to every (b, j)
and meets again; the backward mirrors it. reset-before (Cho et al. 2014): W_hn multiplies r * h, which
needs r first, so a step is GEMM (r, z rows) -> element-wise (r, z, r*h) -> GEMM
(n rows) -> element-wise (n, h'). Backward mirrors each. Device arrays of one
float dtype, C-contiguous, no kernel argument aliasing another; nothing is
allocated per step.
"""
import functools

from . import config
from ._device import cuda
from .activations import dsigmoid, dtanh, one_minus, sigmoid, tanh
from .common import (elementwise, empty, grid_barrier, input_and_weight_grads, item_blocks, persistent, rows,
                     sum_rows, thread_range)
from .gemm import gemm, grid_product, tile_count
from .lstm import Saved


@cuda.jit(device=True)
def gru_cell(t, b, j, gates, hp_r, hp_z, hp_n, b_ih, b_hh, h_prev, h_next, lengths, y, h_n_all, training):
    """Reset-after step t for one (b, j) of (B, H).

    gates (T, B, 3H): W_ih x_t of step t on entry, r, z, n on return (valid rows);
    hp_r, hp_z, hp_n: the (b, j) entries of the r, z and n blocks of h_{t-1} W_hh^T;
    b_ih, b_hh (3H,); h_next[b, j] (B, H) receives h_t (h_prev's value past the
    length); y (T, B, H) output (zero past the length); h_n_all (T, B, H):
    W_hn h + b_hn when ``training``.
    """
    hidden = h_prev.shape[1]
    if t < lengths[b]:
        r = sigmoid((gates[t, b, j] + hp_r) + (b_ih[j] + b_hh[j]))
        z = sigmoid((gates[t, b, hidden + j] + hp_z) + (b_ih[hidden + j] + b_hh[hidden + j]))
        hn = hp_n + b_hh[2 * hidden + j]
        n = tanh(gates[t, b, 2 * hidden + j] + b_ih[2 * hidden + j] + r * hn)
        h_new = n + z * (h_prev[b, j] - n)
        gates[t, b, j] = r
        gates[t, b, hidden + j] = z
        gates[t, b, 2 * hidden + j] = n
        y[t, b, j] = h_new
        h_next[b, j] = h_new
        if training:
            h_n_all[t, b, j] = hn
    else:
        y[t, b, j] = 0
        h_next[b, j] = h_prev[b, j]


@functools.lru_cache(maxsize=None)
def gru_sequence_kernel(tile, dtype):
    """The kernel running all T reset-after steps in one launch (see
    common.persistent), for one tile size and dtype:

    ``kernel(gates, b_ih, b_hh, w_hh, h, h_proj, lengths, y, h_n_all, training)``:
    per step the grid computes h_proj (B, 3H) = h W_hh^T (w_hh (3H, H)), meets at a
    barrier, applies :func:`gru_cell` to every (b, j) (h (B, H) in place: h0 on
    entry, h_T on return) and meets again.
    """
    grid_gemm = grid_product(tile, dtype)

    @cuda.jit
    def kernel(gates, b_ih, b_hh, w_hh, h, h_proj, lengths, y, h_n_all, training):
        grid = cuda.cg.this_grid()
        batch, hidden = h.shape
        first, stride = thread_range()
        for t in range(gates.shape[0]):
            grid_gemm(h, w_hh, h_proj, True, False)
            grid_barrier(grid)
            for idx in range(first, batch * hidden, stride):
                b = idx // hidden
                j = idx - b * hidden
                gru_cell(t, b, j, gates, h_proj[b, j], h_proj[b, hidden + j], h_proj[b, 2 * hidden + j], b_ih, b_hh,
                         h, h, lengths, y, h_n_all, training)
            grid_barrier(grid)

    return kernel


@cuda.jit(device=True)
def gru_cell_backward(t, b, j, gates, h_n_all, h0, y, lengths, dy, dh, dg_x, dg_h):
    """Backward of reset-after step t for one (b, j).

    dh (B, H): dL/dh_t before adding dy[t]; on return z * dL/dh_t for valid rows
    (dh += dg_h[t] W_hh completes dL/dh_{t-1}), unchanged past the length.
    Writes dg_x[t], dg_h[t] (B, 3H): gradients of W_ih x + b_ih and of W_hh h + b_hh
    (they differ in the n block); zero past the length.
    """
    hidden = h0.shape[1]
    if t < lengths[b]:
        r = gates[t, b, j]
        z = gates[t, b, hidden + j]
        n = gates[t, b, 2 * hidden + j]
        h_prev = y[t - 1, b, j] if t > 0 else h0[b, j]
        dh_t = dh[b, j] + dy[t, b, j]
        d_n = dh_t * one_minus(z) * dtanh(n)
        d_z = dh_t * (h_prev - n) * dsigmoid(z)
        d_r = d_n * h_n_all[t, b, j] * dsigmoid(r)
        dg_x[t, b, j] = d_r
        dg_x[t, b, hidden + j] = d_z
        dg_x[t, b, 2 * hidden + j] = d_n
        dg_h[t, b, j] = d_r
        dg_h[t, b, hidden + j] = d_z
        dg_h[t, b, 2 * hidden + j] = d_n * r
        dh[b, j] = dh_t * z
    else:
        for k in range(3):
            dg_x[t, b, k * hidden + j] = 0
            dg_h[t, b, k * hidden + j] = 0


@functools.lru_cache(maxsize=None)
def gru_backward_sequence_kernel(tile, dtype):
    """The kernel running the backward of all T reset-after steps in one launch:

    ``kernel(gates, h_n_all, h0, y, lengths, dy, dh, dg_x, dg_h, w_hh)``: per step
    (descending) :func:`gru_cell_backward` for every (b, j), a grid barrier,
    dh += dg_h[t] W_hh by the whole grid, a barrier (as the LSTM's).
    """
    grid_gemm = grid_product(tile, dtype)

    @cuda.jit
    def kernel(gates, h_n_all, h0, y, lengths, dy, dh, dg_x, dg_h, w_hh):
        grid = cuda.cg.this_grid()
        batch, hidden = h0.shape
        first, stride = thread_range()
        for t in range(gates.shape[0] - 1, -1, -1):
            for idx in range(first, batch * hidden, stride):
                b = idx // hidden
                gru_cell_backward(t, b, idx - b * hidden, gates, h_n_all, h0, y, lengths, dy, dh, dg_x, dg_h)
            grid_barrier(grid)
            grid_gemm(dg_h[t], w_hh, dh, False, True)
            grid_barrier(grid)

    return kernel


@cuda.jit
def gru_reset_before_gates_kernel(t, gates, b_ih, b_hh, h, reset_h):
    """Reset-before step t, first half: r, z = sigmoid(. + b) in place in gates[t]
    (which hold W_i x + W_h{r,z} h) and reset_h (B, H) = r * h. One thread per (b, j);
    every row (padded ones are ignored later)."""
    idx = cuda.grid(1)
    hidden = h.shape[1]
    if idx >= h.shape[0] * hidden:
        return
    b = idx // hidden
    j = idx - b * hidden
    r = sigmoid(gates[t, b, j] + (b_ih[j] + b_hh[j]))
    gates[t, b, j] = r
    gates[t, b, hidden + j] = sigmoid(gates[t, b, hidden + j] + (b_ih[hidden + j] + b_hh[hidden + j]))
    reset_h[b, j] = r * h[b, j]


@cuda.jit
def gru_reset_before_output_kernel(t, gates, b_ih, b_hh, h, lengths, y):
    """Reset-before step t, second half: n = tanh(W_in x + W_hn (r h) + b_n) in place,
    h' = n + z (h - n) into h and y (y zero past the length). One thread per (b, j)."""
    idx = cuda.grid(1)
    hidden = h.shape[1]
    if idx >= h.shape[0] * hidden:
        return
    b = idx // hidden
    j = idx - b * hidden
    if t < lengths[b]:
        n = tanh(gates[t, b, 2 * hidden + j] + (b_ih[2 * hidden + j] + b_hh[2 * hidden + j]))
        z = gates[t, b, hidden + j]
        h_new = n + z * (h[b, j] - n)
        gates[t, b, 2 * hidden + j] = n
        y[t, b, j] = h_new
        h[b, j] = h_new
    else:
        y[t, b, j] = 0


@cuda.jit
def gru_reset_before_backward_gates_kernel(t, gates, h0, y, lengths, dy, dh, dgates, reset_h_all):
    """Backward of reset-before step t, first half, one thread per (b, j): dgates[t]
    z and n blocks, reset_h_all[t] = r * h_{t-1} (recomputed), dh = z * dL/dh_t for
    valid rows; zeros past the length (dh unchanged there)."""
    idx = cuda.grid(1)
    hidden = h0.shape[1]
    if idx >= h0.shape[0] * hidden:
        return
    b = idx // hidden
    j = idx - b * hidden
    if t < lengths[b]:
        r = gates[t, b, j]
        z = gates[t, b, hidden + j]
        n = gates[t, b, 2 * hidden + j]
        h_prev = y[t - 1, b, j] if t > 0 else h0[b, j]
        dh_t = dh[b, j] + dy[t, b, j]
        dgates[t, b, 2 * hidden + j] = dh_t * one_minus(z) * dtanh(n)
        dgates[t, b, hidden + j] = dh_t * (h_prev - n) * dsigmoid(z)
        reset_h_all[t, b, j] = r * h_prev
        dh[b, j] = dh_t * z
    else:
        for k in range(3):
            dgates[t, b, k * hidden + j] = 0
        reset_h_all[t, b, j] = 0


@cuda.jit
def gru_reset_before_backward_reset_kernel(t, gates, h0, y, lengths, d_reset_h, dh, dgates):
    """Backward of reset-before step t, second half, after d_reset_h = dn W_hn:
    dgates[t] r block and dh += d(r h)/dh for valid rows. One thread per (b, j)."""
    idx = cuda.grid(1)
    hidden = h0.shape[1]
    if idx >= h0.shape[0] * hidden:
        return
    b = idx // hidden
    j = idx - b * hidden
    if t < lengths[b]:
        r = gates[t, b, j]
        h_prev = y[t - 1, b, j] if t > 0 else h0[b, j]
        drh = d_reset_h[b, j]
        dgates[t, b, j] = drh * h_prev * dsigmoid(r)
        dh[b, j] += drh * r


def gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, training, reset_after):
    """Driver for either form. Device arrays: x (T, B, I); w_ih (3H, I); w_hh (3H, H);
    b_ih, b_hh (3H,) (zeros for no bias); h0 (B, H) read only; lengths (B,) int64.
    Returns (y, h_n, saved or None)."""
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    dtype = x.dtype
    y = empty((steps, batch, hidden), dtype)
    gates = empty((steps, batch, 3 * hidden), dtype)
    gemm(rows(x), w_ih, rows(gates), trans_b=True)
    if reset_after:
        h_n_all = empty((steps if training else 1, batch, hidden), dtype)
        h = empty((batch, hidden), dtype)
        h.copy_to_device(h0)
        h_proj = empty((batch, 3 * hidden), dtype)
        blocks = max(tile_count(batch, 3 * hidden), item_blocks(batch * hidden))
        persistent(gru_sequence_kernel(config.TILE, dtype), blocks, gates, b_ih, b_hh, w_hh, h, h_proj, lengths, y,
                   h_n_all, training)
        saved = Saved(True, x, w_ih, w_hh, h0, lengths, y, gates, h_n_all)
    else:
        h = empty((batch, hidden), dtype)
        h.copy_to_device(h0)
        reset_h = empty((batch, hidden), dtype)
        w_rz, w_n = w_hh[:2 * hidden], w_hh[2 * hidden:]
        first = elementwise(gru_reset_before_gates_kernel, batch * hidden)
        second = elementwise(gru_reset_before_output_kernel, batch * hidden)
        for t in range(steps):
            gates_t = gates[t]
            gemm(h, w_rz, gates_t[:, :2 * hidden], trans_b=True, accumulate=True)
            first(t, gates, b_ih, b_hh, h, reset_h)
            gemm(reset_h, w_n, gates_t[:, 2 * hidden:], trans_b=True, accumulate=True)
            second(t, gates, b_ih, b_hh, h, lengths, y)
        saved = Saved(False, x, w_ih, w_hh, h0, lengths, y, gates, None)
    return y, h, (saved if training else None)


def gru_backward(saved, dy, dh_n):
    """Driver: returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh); in the reset-before
    form db_ih and db_hh are equal (both biases enter the same sums)."""
    reset_after, x, w_ih, w_hh, h0, lengths, y, gates, h_n_all = saved.arrays
    steps, batch, _ = x.shape
    hidden = h0.shape[1]
    dtype = x.dtype
    dh = empty((batch, hidden), dtype)
    dh.copy_to_device(dh_n)
    dx = empty(x.shape, dtype)
    dw_ih, dw_hh = empty(w_ih.shape, dtype), empty(w_hh.shape, dtype)
    db_ih, db_hh = empty((3 * hidden,), dtype), empty((3 * hidden,), dtype)
    if reset_after:
        dg_x, dg_h = empty(gates.shape, dtype), empty(gates.shape, dtype)
        blocks = max(tile_count(batch, hidden), item_blocks(batch * hidden))
        persistent(gru_backward_sequence_kernel(config.TILE, dtype), blocks, gates, h_n_all, h0, y, lengths, dy, dh,
                   dg_x, dg_h, w_hh)
        input_and_weight_grads(x, h0, y, rows(dg_x), rows(dg_h), w_ih, dx, dw_ih, dw_hh, db_ih, db_hh)
    else:
        dgates = empty(gates.shape, dtype)
        reset_h_all = empty(y.shape, dtype)
        d_reset_h = empty((batch, hidden), dtype)
        w_rz, w_n = w_hh[:2 * hidden], w_hh[2 * hidden:]
        first = elementwise(gru_reset_before_backward_gates_kernel, batch * hidden)
        second = elementwise(gru_reset_before_backward_reset_kernel, batch * hidden)
        for t in range(steps - 1, -1, -1):
            dg_t = dgates[t]
            first(t, gates, h0, y, lengths, dy, dh, dgates, reset_h_all)
            gemm(dg_t[:, 2 * hidden:], w_n, d_reset_h)
            second(t, gates, h0, y, lengths, d_reset_h, dh, dgates)
            gemm(dg_t[:, :2 * hidden], w_rz, dh, accumulate=True)
        dg = rows(dgates)
        input_and_weight_grads(x, h0, y, dg, dg[:, :2 * hidden], w_ih, dx, dw_ih, dw_hh[:2 * hidden], db_ih, None)
        gemm(dg[:, 2 * hidden:], rows(reset_h_all), dw_hh[2 * hidden:], trans_a=True)
        sum_rows(dg, db_hh)  # equal to db_ih (same fixed order): both biases enter the same sums
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh
