"""LSTM on CUDA (gates i, f, g, o), optionally with a projection of the output;
mirrors :mod:`fastrnn.kernels.lstm` (same math, buffers and saved state).

The input projection of all steps is one GEMM. Without projection the time loop is
one launch (:func:`lstm_sequence_kernel`): per step the grid adds h_{t-1} W_hh^T
into the gates (GEMM tiles shared out among its blocks), meets at a barrier,
applies :func:`lstm_cell` to every (b, j) and meets again; the backward mirrors it
(:func:`lstm_backward_sequence_kernel`). With a
projection a step is launches: one GEMM adds W_hh h_{t-1}, one element-wise kernel
applies the gates, one GEMM writes y_t = m_t W_hr^T and a small kernel commits h
(backward: a small kernel and one GEMM for dL/dm, the element-wise gradients, one
GEMM through W_hh). Weight, input and bias gradients are single GEMMs /
fixed-order reductions over all steps at the end.

All arrays are device arrays of one float dtype, C-contiguous; no kernel argument
aliases another. Kernels allocate nothing; the drivers below allocate once per call
(nothing per step).
"""
import functools

from . import config
from ._device import cuda
from .activations import dsigmoid, dtanh, sigmoid, tanh
from .common import (elementwise, empty, grid_barrier, input_and_weight_grads, item_blocks, persistent, rows,
                     thread_range)
from .gemm import gemm, grid_product, tile_count


@cuda.jit(device=True)
def lstm_cell(t, b, j, gates, b_ih, b_hh, h_prev, h_next, c, lengths, m_out, m_index, c_all, training, projected):
    """Element-wise part of step t for one (b, j) of (B, H).

    gates (T, B, 4H): pre-activations W_ih x_t + W_hh h_{t-1} of step t on entry,
    activated i, f, g, o on return (rows of valid sequences); b_ih, b_hh (4H,);
    c (B, H): cell state, updated in place; without projection h_next[b, j] (B, H)
    receives h_t (m for valid rows, h_prev's value past the length); with projection
    h is left to the caller. m_out[m_index] (B, H) receives m = o * tanh(c) (zero
    past the length): y itself without projection, else m_all (training) or a
    scratch (1, B, H); c_all (T, B, H): cell state after step t when ``training``.
    """
    hidden = c.shape[1]
    if t < lengths[b]:
        gi = sigmoid(gates[t, b, j] + (b_ih[j] + b_hh[j]))
        gf = sigmoid(gates[t, b, hidden + j] + (b_ih[hidden + j] + b_hh[hidden + j]))
        gg = tanh(gates[t, b, 2 * hidden + j] + (b_ih[2 * hidden + j] + b_hh[2 * hidden + j]))
        go = sigmoid(gates[t, b, 3 * hidden + j] + (b_ih[3 * hidden + j] + b_hh[3 * hidden + j]))
        gates[t, b, j] = gi
        gates[t, b, hidden + j] = gf
        gates[t, b, 2 * hidden + j] = gg
        gates[t, b, 3 * hidden + j] = go
        c_new = gf * c[b, j] + gi * gg
        c[b, j] = c_new
        m = go * tanh(c_new)
        m_out[m_index, b, j] = m
        if not projected:
            h_next[b, j] = m
    else:
        m_out[m_index, b, j] = 0
        if not projected:
            h_next[b, j] = h_prev[b, j]
    if training:
        c_all[t, b, j] = c[b, j]


@functools.lru_cache(maxsize=None)
def lstm_sequence_kernel(tile, dtype):
    """The kernel running all T steps of an LSTM without projection in one launch
    (see common.persistent), for one tile size and dtype:

    ``kernel(gates, b_ih, b_hh, w_hh, h, c, lengths, y, c_all, training)``: gates
    (T, B, 4H) hold W_ih x_t on entry; w_hh (4H, H); h (B, H) = h0 on entry, h_T on
    return; c (B, H) likewise; y (T, B, H); c_all as in :func:`lstm_cell`. Per step
    the grid adds h W_hh^T into gates[t], meets at a barrier, applies
    :func:`lstm_cell` to every (b, j) and meets again before the next product reads h.
    """
    grid_gemm = grid_product(tile, dtype)

    @cuda.jit
    def kernel(gates, b_ih, b_hh, w_hh, h, c, lengths, y, c_all, training):
        grid = cuda.cg.this_grid()
        batch, hidden = c.shape
        first, stride = thread_range()
        for t in range(gates.shape[0]):
            grid_gemm(h, w_hh, gates[t], True, True)
            grid_barrier(grid)
            for idx in range(first, batch * hidden, stride):
                b = idx // hidden
                lstm_cell(t, b, idx - b * hidden, gates, b_ih, b_hh, h, h, c, lengths, y, t, c_all, training, False)
            grid_barrier(grid)

    return kernel


@cuda.jit
def lstm_step_kernel(t, gates, b_ih, b_hh, h, c, lengths, m_out, m_index, c_all, training):
    """Step t of an LSTM with projection, after the GEMM gates[t] += h W_hh^T: the
    element-wise part (:func:`lstm_cell`), one thread per (b, j) of (B, H)."""
    idx = cuda.grid(1)
    hidden = c.shape[1]
    if idx < c.shape[0] * hidden:
        b = idx // hidden
        lstm_cell(t, b, idx - b * hidden, gates, b_ih, b_hh, h, h, c, lengths, m_out, m_index, c_all, training, True)


@cuda.jit
def lstm_commit_projection_kernel(t, y, h, lengths):
    """With projection, after y[t] = m_t W_hr^T: h[b] = y[t, b] for valid b, and y[t, b]
    set to exactly zero past the length. One thread per (b, p) of (B, P)."""
    idx = cuda.grid(1)
    width = h.shape[1]
    if idx >= h.shape[0] * width:
        return
    b = idx // width
    p = idx - b * width
    if t < lengths[b]:
        h[b, p] = y[t, b, p]
    else:
        y[t, b, p] = 0


@cuda.jit(device=True)
def lstm_cell_backward(t, b, j, gates, c_all, c0, lengths, dy, dh, dc, dm, dgates, projected):
    """Element-wise part of the backward of step t for one (b, j) of (B, H).

    gates, c_all: as the training forward left them; c0 (B, H); dy (T, B, P).
    dh (B, P), dc (B, H): dL/dh_t (without projection, before adding dy[t]) and
    dL/dc_t on entry; on return dc holds dL/dc_{t-1} and dh is zeroed for valid
    rows, to be refilled by dh += dgates[t] W_hh. With projection dm (B, H) holds
    dL/dm_t (computed from dh by the caller, which also zeroed dh); without
    projection dm is not read (the callers pass dh there).
    Writes dgates[t] (B, 4H): pre-activation gradients (zero past the length).
    """
    hidden = c0.shape[1]
    if t < lengths[b]:
        if projected:
            dm_v = dm[b, j]
        else:
            dm_v = dh[b, j] + dy[t, b, j]
            dh[b, j] = 0
        gi = gates[t, b, j]
        gf = gates[t, b, hidden + j]
        gg = gates[t, b, 2 * hidden + j]
        go = gates[t, b, 3 * hidden + j]
        c_prev = c_all[t - 1, b, j] if t > 0 else c0[b, j]
        tanh_c = tanh(c_all[t, b, j])
        dgates[t, b, 3 * hidden + j] = dm_v * tanh_c * dsigmoid(go)
        dc_t = dc[b, j] + dm_v * go * dtanh(tanh_c)
        dgates[t, b, j] = dc_t * gg * dsigmoid(gi)
        dgates[t, b, hidden + j] = dc_t * c_prev * dsigmoid(gf)
        dgates[t, b, 2 * hidden + j] = dc_t * gi * dtanh(gg)
        dc[b, j] = dc_t * gf
    else:  # frozen state: dh and dc pass through unchanged
        dgates[t, b, j] = 0
        dgates[t, b, hidden + j] = 0
        dgates[t, b, 2 * hidden + j] = 0
        dgates[t, b, 3 * hidden + j] = 0


@functools.lru_cache(maxsize=None)
def lstm_backward_sequence_kernel(tile, dtype):
    """The kernel running the backward of all T steps of an LSTM without projection
    in one launch, for one tile size and dtype:

    ``kernel(gates, c_all, c0, lengths, dy, dh, dc, dgates, w_hh)``: per step t
    (descending) :func:`lstm_cell_backward` for every (b, j) (dgates[t], dc, and dh
    zeroed for valid rows), a grid barrier, dh += dgates[t] W_hh (w_hh (4H, H)) by
    the whole grid, a barrier. dh, dc (B, H) hold dL/dh_T, dL/dc_T on entry and
    dL/dh0, dL/dc0 on return.
    """
    grid_gemm = grid_product(tile, dtype)

    @cuda.jit
    def kernel(gates, c_all, c0, lengths, dy, dh, dc, dgates, w_hh):
        grid = cuda.cg.this_grid()
        batch, hidden = c0.shape
        first, stride = thread_range()
        for t in range(gates.shape[0] - 1, -1, -1):
            for idx in range(first, batch * hidden, stride):
                b = idx // hidden
                lstm_cell_backward(t, b, idx - b * hidden, gates, c_all, c0, lengths, dy, dh, dc, dh, dgates, False)
            grid_barrier(grid)
            grid_gemm(dgates[t], w_hh, dh, False, True)
            grid_barrier(grid)

    return kernel


@cuda.jit
def lstm_backward_step_kernel(t, gates, c_all, c0, lengths, dy, dh, dc, dm, dgates):
    """Backward of step t of an LSTM with projection (:func:`lstm_cell_backward`),
    one thread per (b, j) of (B, H); the GEMM dh += dgates[t] W_hh follows."""
    idx = cuda.grid(1)
    hidden = c0.shape[1]
    if idx < c0.shape[0] * hidden:
        b = idx // hidden
        lstm_cell_backward(t, b, idx - b * hidden, gates, c_all, c0, lengths, dy, dh, dc, dm, dgates, True)


@cuda.jit
def lstm_projection_grad_kernel(t, lengths, dy, dh, dh_all):
    """With projection: dh_all[t, b] = dh[b] + dy[t, b] (dL/dh_t) and dh[b] = 0 for valid
    b; dh_all[t, b] = 0 past the length (dh passes through). One thread per (b, p)."""
    idx = cuda.grid(1)
    width = dh.shape[1]
    if idx >= dh.shape[0] * width:
        return
    b = idx // width
    p = idx - b * width
    if t < lengths[b]:
        dh_all[t, b, p] = dh[b, p] + dy[t, b, p]
        dh[b, p] = 0
    else:
        dh_all[t, b, p] = 0


class Saved:
    """What a CUDA training forward keeps for its backward (device arrays)."""

    device = "cuda"
    __slots__ = ("arrays",)

    def __init__(self, *arrays):
        self.arrays = arrays


def lstm_forward(x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, training, w_hr=None):
    """Driver: allocate outputs and workspace once, run all T steps.

    Device arrays: x (T, B, I); w_ih (4H, I); w_hh (4H, P); b_ih, b_hh (4H,) (zeros
    for a layer without bias); h0 (B, P); c0 (B, H); lengths (B,) int64 in 1..T;
    w_hr (P, H) or None (then P = H). h0 and c0 are read only.
    Returns (y (T, B, P), h_n (B, P), c_n (B, H), saved or None).
    """
    steps, batch, _ = x.shape
    hidden = c0.shape[1]
    width = h0.shape[1]
    dtype = x.dtype
    projected = w_hr is not None
    c = empty((batch, hidden), dtype)
    c.copy_to_device(c0)
    y = empty((steps, batch, width), dtype)
    gates = empty((steps, batch, 4 * hidden), dtype)
    c_all = empty((steps if training else 1, batch, hidden), dtype)
    gemm(rows(x), w_ih, rows(gates), trans_b=True)  # input projection of all steps
    if not projected:
        m_all = y
        h = empty((batch, hidden), dtype)
        h.copy_to_device(h0)
        blocks = max(tile_count(batch, 4 * hidden), item_blocks(batch * hidden))
        persistent(lstm_sequence_kernel(config.TILE, dtype), blocks, gates, b_ih, b_hh, w_hh, h, c, lengths, y,
                   c_all, training)
    else:
        h = empty((batch, width), dtype)
        h.copy_to_device(h0)
        m_all = empty((steps if training else 1, batch, hidden), dtype)
        step = elementwise(lstm_step_kernel, batch * hidden)
        commit = elementwise(lstm_commit_projection_kernel, batch * width)
        for t in range(steps):
            gemm(h, w_hh, gates[t], trans_b=True, accumulate=True)
            m_index = t if training else 0
            step(t, gates, b_ih, b_hh, h, c, lengths, m_all, m_index, c_all, training)
            gemm(m_all[m_index], w_hr, y[t], trans_b=True)
            commit(t, y, h, lengths)
    saved = Saved(x, w_ih, w_hh, w_hr, h0, c0, lengths, y, gates, c_all, m_all) if training else None
    return y, h, c, saved


def lstm_backward(saved, dy, dh_n, dc_n):
    """Driver: backpropagate through a training forward. dy (T, B, P); dh_n (B, P);
    dc_n (B, H) (read only). Returns (dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr or None);
    db is the gradient of b_ih and of b_hh alike."""
    x, w_ih, w_hh, w_hr, h0, c0, lengths, y, gates, c_all, m_all = saved.arrays
    steps, batch, _ = x.shape
    hidden = c0.shape[1]
    width = h0.shape[1]
    dtype = x.dtype
    projected = w_hr is not None
    dh, dc = empty((batch, width), dtype), empty((batch, hidden), dtype)
    dh.copy_to_device(dh_n)
    dc.copy_to_device(dc_n)
    dgates = empty(gates.shape, dtype)
    if not projected:
        blocks = max(tile_count(batch, hidden), item_blocks(batch * hidden))
        persistent(lstm_backward_sequence_kernel(config.TILE, dtype), blocks, gates, c_all, c0, lengths, dy, dh, dc,
                   dgates, w_hh)
    else:
        dh_all = empty((steps, batch, width), dtype)
        dm = empty((batch, hidden), dtype)
        project = elementwise(lstm_projection_grad_kernel, batch * width)
        step = elementwise(lstm_backward_step_kernel, batch * hidden)
        for t in range(steps - 1, -1, -1):
            project(t, lengths, dy, dh, dh_all)
            gemm(dh_all[t], w_hr, dm)  # dL/dm_t = dL/dh_t W_hr
            step(t, gates, c_all, c0, lengths, dy, dh, dc, dm, dgates)
            gemm(dgates[t], w_hh, dh, accumulate=True)
    dx = empty(x.shape, dtype)
    dw_ih, dw_hh = empty(w_ih.shape, dtype), empty(w_hh.shape, dtype)
    db = empty((4 * hidden,), dtype)
    dg = rows(dgates)
    input_and_weight_grads(x, h0, y, dg, dg, w_ih, dx, dw_ih, dw_hh, db, None)
    dw_hr = None
    if projected:
        dw_hr = empty(w_hr.shape, dtype)
        gemm(rows(dh_all), rows(m_all), dw_hr, trans_a=True)
    return dx, dh, dc, dw_ih, dw_hh, db, dw_hr
