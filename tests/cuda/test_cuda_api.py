"""device="cuda" in fastrnn.functional: device-array inputs and outputs, validation,
the availability check and its error, and that `import fastrnn` stays CUDA-free."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastrnn.cuda
from fastrnn import functional as F
from fastrnn.cuda import _device
from fastrnn.cuda._device import cuda

from cases import make_inputs

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))


def _on_device(args):
    return {k: (cuda.to_device(v) if isinstance(v, np.ndarray) else v) for k, v in args.items()}


def test_is_available():
    assert fastrnn.cuda.is_available()
    assert fastrnn.cuda.unavailable_reason() is None
    fastrnn.cuda.require()


@pytest.mark.parametrize("case,cell", [("lstm", "lstm"), ("gru", "gru"), ("rnn_tanh", "rnn")])
def test_device_arrays_in_device_arrays_out(case, cell):
    args, grads = make_inputs(case, 3, 3, 4, 5, np.float32, seed=1)
    forward, backward = getattr(F, cell), getattr(F, cell + "_backward")
    *host_out, host_ctx = forward(**args, training=True, device="cuda")
    host_g = backward(host_ctx, **grads)
    *dev_out, dev_ctx = forward(**_on_device(args), training=True, device="cuda")
    dev_g = backward(dev_ctx, **_on_device(grads))
    for got, want in zip(dev_out, host_out):
        assert not isinstance(got, np.ndarray) and hasattr(got, "copy_to_host")
        np.testing.assert_array_equal(got.copy_to_host(), want)
    for got, want in zip(dev_g, host_g):
        assert not isinstance(got, np.ndarray)
        np.testing.assert_array_equal(got.copy_to_host(), want)
    # A device forward's context with a NumPy dy gives NumPy gradients.
    np.testing.assert_array_equal(backward(dev_ctx, **grads).dx, host_g.dx)


def test_mixed_host_and_device_arguments():
    args, grads = make_inputs("lstm", 3, 2, 4, 5, np.float64, seed=3)
    y, h_n, c_n, _ = F.lstm(**args, device="cuda")
    mixed = dict(args, x=cuda.to_device(args["x"]), lengths=cuda.to_device(args["lengths"]))
    y_dev, h_dev, c_dev, _ = F.lstm(**mixed, device="cuda")
    np.testing.assert_array_equal(y_dev.copy_to_host(), y)
    np.testing.assert_array_equal(c_dev.copy_to_host(), c_n)


def test_device_arrays_are_validated_like_host_arrays():
    args, _ = make_inputs("gru", 3, 2, 4, 5, np.float32, seed=3)
    bad_dtype = dict(args, x=cuda.to_device(args["x"].astype(np.float64)))
    with pytest.raises(TypeError, match="w_hh has dtype float32 but x has dtype float64"):
        F.gru(**bad_dtype, device="cuda")
    with pytest.raises(TypeError, match="x must have dtype float32 or float64, got dtype int32"):
        F.gru(**dict(args, x=cuda.to_device(np.ones((3, 2, 4), np.int32))), device="cuda")
    with pytest.raises(ValueError, match=r"h0 must have shape \(B, H\) = \(2, 5\), got shape \(2, 4\)"):
        F.gru(**dict(args, h0=cuda.to_device(np.zeros((2, 4), np.float32))), device="cuda")
    with pytest.raises(ValueError, match="lengths must lie in 1..T"):
        F.gru(**dict(args, lengths=cuda.to_device(np.array([4, 1]))), device="cuda")
    strided = cuda.to_device(np.zeros((3, 2, 8), np.float32))[:, :, ::2]
    with pytest.raises(ValueError, match="x is a device array .* not C-contiguous"):
        F.gru(**dict(args, x=strided), device="cuda")


def test_bad_device_and_device_arrays_on_cpu():
    args, grads = make_inputs("rnn_tanh", 2, 2, 3, 4, np.float64)
    with pytest.raises(ValueError, match="device must be one of 'cpu', 'cuda'; got 'gpu'"):
        F.rnn(**args, device="gpu")
    with pytest.raises(TypeError, match="x is a CUDA device array but device='cpu'"):
        F.rnn(**dict(args, x=cuda.to_device(args["x"])))
    _, _, ctx = F.rnn(**args, training=True)
    # the backward has no device keyword: it runs where the forward ran
    with pytest.raises(TypeError, match="dy is a CUDA device array but the forward ran on the CPU; copy it"):
        F.rnn_backward(ctx, dy=cuda.to_device(grads["dy"]))


def test_unusable_cuda_raises_one_clear_error(monkeypatch):
    monkeypatch.setattr(_device, "cuda", None)
    monkeypatch.setattr(_device, "_import_error", "numba-cuda is not installed (install it with ...)")
    assert not fastrnn.cuda.is_available()
    args, _ = make_inputs("lstm", 2, 1, 3, 4, np.float64)
    with pytest.raises(RuntimeError, match="device='cuda' was requested but CUDA is unusable: "
                                           "numba-cuda is not installed.*NUMBA_ENABLE_CUDASIM=1"):
        F.lstm(**args, device="cuda")


def _python(code, **env_changes):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.no_cuda_needed
def test_import_fastrnn_imports_nothing_cuda():
    result = _python("""
        import sys
        import numpy as np
        import fastrnn, fastrnn.cuda, fastrnn.cuda.config
        from fastrnn import functional as F
        F.rnn(np.ones((2, 1, 3)), np.ones((4, 3)), np.ones((4, 4)))
        bad = [m for m in sys.modules if m.startswith(("numba.cuda", "numba_cuda", "cuda"))]
        print("CUDA MODULES:", bad)
        assert not bad
    """)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.no_cuda_needed
def test_without_simulator_or_gpu_the_error_says_how_to_simulate():
    result = _python("""
        import numpy as np
        import fastrnn.cuda
        if fastrnn.cuda.is_available():
            print("GPU PRESENT")
            raise SystemExit(0)
        from fastrnn import functional as F
        try:
            F.lstm(np.ones((2, 1, 3)), np.ones((16, 3)), np.ones((16, 4)), device="cuda")
        except RuntimeError as exc:
            print("ERROR:", exc)
    """)
    assert result.returncode == 0, result.stdout + result.stderr
    if "GPU PRESENT" in result.stdout:
        pytest.skip("a usable GPU is present")
    assert "ERROR: fastrnn: device='cuda' was requested but CUDA is unusable" in result.stdout
    assert "NUMBA_ENABLE_CUDASIM=1" in result.stdout
