"""Shared helpers for kernel tests: one description per cell, random inputs, and
calls into the fused functional API and the NumPy reference with the same arguments."""
import importlib.util
import pathlib

import numpy as np

from fastrnn import functional as F
from fastrnn import reference as R

#: name -> (gates, functional forward, functional backward, reference forward,
#:          reference backward, extra keyword arguments, has cell state)
CELLS = {
    "lstm": (4, F.lstm, F.lstm_backward, R.lstm_forward, R.lstm_backward, {}, True),
    "gru": (3, F.gru, F.gru_backward, R.gru_forward, R.gru_backward, {"reset_after": True}, False),
    "gru_reset_before": (3, F.gru, F.gru_backward, R.gru_forward, R.gru_backward, {"reset_after": False}, False),
    "rnn_tanh": (1, F.rnn, F.rnn_backward, R.rnn_forward, R.rnn_backward, {"nonlinearity": "tanh"}, False),
    "rnn_relu": (1, F.rnn, F.rnn_backward, R.rnn_forward, R.rnn_backward, {"nonlinearity": "relu"}, False),
}

GRAD_NAMES = ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh")


def make_inputs(cell, steps, batch, n_in, hidden, dtype, *, seed=0, bias=True, initial_state=True, lengths="mixed"):
    """Random, never-zero inputs. lengths: None, "mixed" (includes 1 and T) or an array."""
    gates, *_, has_c = CELLS[cell]
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(hidden)

    def draw(*shape, s=1.0):
        return (rng.uniform(-1, 1, shape) * s).astype(dtype)

    args = dict(x=draw(steps, batch, n_in), w_ih=draw(gates * hidden, n_in, s=2 * scale),
                w_hh=draw(gates * hidden, hidden, s=2 * scale))
    if bias:
        args.update(b_ih=draw(gates * hidden, s=scale), b_hh=draw(gates * hidden, s=scale))
    if initial_state:
        args["h0"] = draw(batch, hidden)
        if has_c:
            args["c0"] = draw(batch, hidden)
    if isinstance(lengths, str):
        args["lengths"] = mixed_lengths(rng, steps, batch)
    elif lengths is not None:
        args["lengths"] = np.asarray(lengths)
    grads = dict(dy=draw(steps, batch, hidden), dh_n=draw(batch, hidden))
    if has_c:
        grads["dc_n"] = draw(batch, hidden)
    return args, grads


EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load_example(name):
    """The module examples/<name>.py, freshly imported."""
    spec = importlib.util.spec_from_file_location(f"fastrnn_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mixed_lengths(rng, steps, batch):
    """Lengths (B,) drawn from 1..T with T first and 1 second (when B > 1)."""
    values = rng.integers(1, steps + 1, batch)
    values[0] = steps
    if batch > 1:
        values[1] = 1
    return values


def difference_at(loss, array, index, eps=1e-6):
    """Central difference of the scalar ``loss()`` with respect to ``array[index]``
    (perturbed in place and restored)."""
    keep = array[index]
    array[index] = keep + eps
    up = loss()
    array[index] = keep - eps
    down = loss()
    array[index] = keep
    return (up - down) / (2 * eps)


def finite_difference(loss, array, eps=1e-6):
    """Central differences of the scalar ``loss()`` with respect to every entry of
    ``array`` (perturbed in place and restored)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        grad[index] = difference_at(loss, array, index, eps)
    return grad


def run_fused(cell, args, grads):
    """Forward + backward through fastrnn.functional. Returns (outputs dict, grads dict)."""
    _, forward, backward, _, _, extra, has_c = CELLS[cell]
    result = forward(**args, training=True, **extra)
    outputs = dict(zip(("y", "h_n", "c_n") if has_c else ("y", "h_n"), result[:-1]))
    g = backward(result[-1], **grads)
    return outputs, g._asdict()


def run_reference(cell, args, grads):
    """Forward + backward through fastrnn.reference. Returns (outputs dict, grads dict)."""
    _, _, _, forward, backward, extra, has_c = CELLS[cell]
    result = forward(**args, **extra)
    outputs = dict(zip(("y", "h_n", "c_n") if has_c else ("y", "h_n"), result[:-1]))
    return outputs, dict(backward(result[-1], **grads))


def assert_close(actual, expected, rtol, atol, what):
    for key, value in expected.items():
        if value is None:
            assert actual.get(key) is None, f"{what}: {key} should be None"
            continue
        got = actual[key]
        assert got.dtype == value.dtype, f"{what}: {key} dtype {got.dtype} != {value.dtype}"
        np.testing.assert_allclose(got, value, rtol=rtol, atol=atol, err_msg=f"{what}: {key}")


def tolerances(dtype):
    """(forward rtol, atol), (gradient rtol, atol).

    float64: both paths compute the same expressions in a different summation order,
    so agreement is to ~1e-15; 1e-10 leaves room for cancellation in long sums.
    float32: the fused kernels use a rational tanh with ~1e-7 absolute error and BLAS
    sums in float32 (eps 6e-8); errors compound through T steps and the gradient
    GEMMs, hence an absolute floor next to the relative bound.
    """
    if dtype == np.float64:
        return (1e-10, 1e-12), (1e-10, 1e-12)
    return (1e-5, 2e-6), (1e-4, 2e-5)


def check_layer_grads_by_finite_differences(layer, x, dy, lengths, names, mask_seed=9, eps=1e-6, rtol=1e-6):
    """Compare a float64 layer's parameter gradients (its backward, after one training
    forward) with central differences of L = sum(y * dy), at the first and last entry of
    each named parameter. The layer's generator is reseeded before every call, so
    stochastic regularizers draw the same masks each time."""
    def loss():
        layer._rng = np.random.default_rng(mask_seed)
        y, _ = layer(x, lengths=lengths)
        return float((y * dy).sum())

    layer.zero_grad()
    loss()
    layer.backward(dy)
    params = dict(layer.named_parameters())
    for name in names:
        param = params[name]
        for flat in (0, param.data.size - 1):
            k = np.unravel_index(flat, param.data.shape)
            old = param.data[k]
            param.data[k] = old + eps
            up = loss()
            param.data[k] = old - eps
            down = loss()
            param.data[k] = old
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - param.grad[k]) <= rtol * max(1.0, abs(param.grad[k])), (name, k, numeric)


class PoisonedNumpy:
    """Stands in for ``np`` in a driver module (monkeypatched): every fresh buffer
    starts as NaN, so an element a kernel forgets to write shows up in its results."""

    def __init__(self):
        self._np = np

    def __getattr__(self, name):
        return getattr(self._np, name)

    def empty(self, shape, dtype=float):
        return self._np.full(shape, self._np.nan, dtype)

    def empty_like(self, a):
        return self._np.full_like(a, self._np.nan)
