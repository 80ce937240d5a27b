"""Layer normalization of one row, forward and backward, for the variant kernels.

    LN(v) = (v - mean(v)) / sqrt(var(v) + eps)      mean, biased var over the row

The forward leaves the gain and bias to the caller (they fold into the gate
assembly); the backward takes the gain and accumulates its gradient. The row is
short (G*H <= a few thousand), so the passes over it stay in L1; the sums are
compiled with reassociation (``_jit.reduction_kernel``) so that they vectorize.
"""
import numpy as np

from .._jit import reduction_kernel

EPS = 1e-5  # torch.nn.LayerNorm's default


@reduction_kernel
def normalize_row(v, out):
    """out (N,) = LN(v (N,)); returns rstd = 1 / sqrt(var + eps).

    out may alias v, but then LLVM's runtime alias check fails and the loops run
    scalar (about 2x slower, measured): pass a separate row.
    """
    n = v.shape[0]
    inv_n = v.dtype.type(1) / v.dtype.type(n)  # stays in v's dtype (int / float32 is float64)
    total = v.dtype.type(0)
    for j in range(n):
        total += v[j]
    mean = total * inv_n
    sq = v.dtype.type(0)
    for j in range(n):
        d = v[j] - mean
        sq += d * d
    rstd = v.dtype.type(1) / np.sqrt(sq * inv_n + v.dtype.type(EPS))
    for j in range(n):
        out[j] = (v[j] - mean) * rstd
    return rstd


@reduction_kernel
def normalize_row_backward(d_hat, v_hat, rstd, d_v):
    """d_v (N,) = dL/dv given d_hat = dL/dLN(v) (N,), v_hat = LN(v) and its rstd.

    d_v = rstd * (d_hat - mean(d_hat) - v_hat * mean(d_hat * v_hat)). d_v may alias
    d_hat, at the cost noted in :func:`normalize_row`.
    """
    n = d_hat.shape[0]
    inv_n = d_hat.dtype.type(1) / d_hat.dtype.type(n)
    s1 = d_hat.dtype.type(0)
    s2 = d_hat.dtype.type(0)
    for j in range(n):
        s1 += d_hat[j]
        s2 += d_hat[j] * v_hat[j]
    m1 = s1 * inv_n
    m2 = s2 * inv_n
    for j in range(n):
        d_v[j] = rstd * (d_hat[j] - m1 - v_hat[j] * m2)


@reduction_kernel
def affine_norm_backward(d_out, gain, v_hat, rstd, d_gain, d_v):
    """Backward of out = LN(v) * gain (+ bias) for one row, gain gradient included.

    d_out, gain, v_hat = LN(v) (N,), rstd its inverse deviation. Accumulates
    d_gain (N,) += d_out * v_hat and writes d_v (N,) = dL/dv =
    rstd * (d_hat - mean(d_hat) - v_hat * mean(d_hat * v_hat)) with d_hat = d_out * gain.
    Two passes (the gain gradient and both sums of the Jacobian in one, d_v in the
    other). d_v must not alias the inputs (LLVM's alias check would fail and the
    loops run scalar, as in :func:`normalize_row`).
    """
    n = d_out.shape[0]
    inv_n = d_out.dtype.type(1) / d_out.dtype.type(n)
    s1 = d_out.dtype.type(0)
    s2 = d_out.dtype.type(0)
    for j in range(n):
        d_gain[j] += d_out[j] * v_hat[j]
        d_hat = d_out[j] * gain[j]
        s1 += d_hat
        s2 += d_hat * v_hat[j]
    m1 = s1 * inv_n
    m2 = s2 * inv_n
    for j in range(n):
        d_v[j] = rstd * (d_out[j] * gain[j] - m1 - v_hat[j] * m2)
