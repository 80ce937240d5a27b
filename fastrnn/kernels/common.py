"""Helpers shared by the cell kernels: clipping, end-of-sequence gradient GEMMs."""
import numpy as np

from .._jit import inline_kernel, kernel
from .blas import gemm


def bound_in(dtype, value):
    """A clipping bound as a scalar of ``dtype``; one beyond the dtype's range becomes
    inf (nothing can exceed it: no clipping), without numpy's overflow warning."""
    with np.errstate(over="ignore"):
        return np.dtype(dtype).type(value)


@inline_kernel
def clipped(v, bound):
    """v clipped to [-bound, bound]; the comparisons let NaN fall through unchanged."""
    return bound if v > bound else (-bound if v < -bound else v)


@inline_kernel
def clip_row(row, bound):
    """Clip ``row`` elementwise to [-bound, bound] in place (NaN stays NaN)."""
    for j in range(row.shape[0]):
        row[j] = clipped(row[j], bound)


@inline_kernel
def total_hidden_grad(dh_b, dy_tb, clip, trace, t, b):
    """At a valid step: dh_b (dL/dh_t from step t+1) += dy_tb, so it holds the total
    dL/dh_t; then clipped to [-clip, clip] when clip is finite and recorded in
    trace[t, b] when trace is not empty (the backward kernels' per-step safety)."""
    for j in range(dh_b.shape[0]):
        dh_b[j] += dy_tb[j]
    if clip < np.inf:
        clip_row(dh_b, clip)
    if trace.shape[0] > 0:
        trace[t, b] = dh_b


@kernel
def sum_rows(a, out):
    """out (N,) = sum of the rows of a (M, N), in a's dtype."""
    out[:] = 0
    for r in range(a.shape[0]):
        out += a[r]


@kernel
def input_and_weight_grads(x, h0, y, dg_x, dg_h, w_ih, dx, dw_ih, dw_hh, db_ih, db_hh):
    """Input, weight and bias gradients after the backward time loop.

    x (T, B, I); h0 (B, H); y (T, B, H) forward outputs; w_ih (G*H, I).
    dg_x (T*B, G*H): gradient of the input pre-activations W_ih x_t + b_ih;
    dg_h (T*B, W): gradient of the recurrent pre-activations W_hh h_{t-1} + b_hh for
    the W rows of W_hh whose input is h_{t-1} (may be dg_x itself, or a column slice).
    The recurrent input h_{t-1} is h0 at t = 0 and y[t-1] after: padded rows of y
    are zero, but so are their gradients, so no copy of the states is needed.
    Writes dx (T, B, I) = dg_x W_ih, dw_ih (G*H, I) = dg_x^T x,
    dw_hh (W, H) = sum_t dg_h[t]^T h_{t-1}, db_ih (G*H,), db_hh (W,) = column sums
    (db_ih may alias db_hh when dg_x is dg_h).
    """
    steps, batch, n_in = x.shape
    hidden = h0.shape[1]
    x_2d = x.reshape(steps * batch, n_in)
    gemm(False, False, 1.0, dg_x, w_ih, 0.0, dx.reshape(steps * batch, n_in))
    gemm(True, False, 1.0, dg_x, x_2d, 0.0, dw_ih)
    gemm(True, False, 1.0, dg_h[:batch], h0, 0.0, dw_hh)
    if steps > 1:
        h_prev = y.reshape(steps * batch, hidden)[:(steps - 1) * batch]
        gemm(True, False, 1.0, dg_h[batch:], h_prev, 1.0, dw_hh)
    sum_rows(dg_x, db_ih)
    if dg_h.ctypes.data == dg_x.ctypes.data and dg_h.shape == dg_x.shape:
        db_hh[:] = db_ih  # one pre-activation sum: both biases get the same gradient
    else:
        sum_rows(dg_h, db_hh)
