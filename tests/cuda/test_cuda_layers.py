"""layer.to("cuda"): the same stacked, bidirectional layer with lengths gives the
same outputs and gradients on the CUDA kernels (simulated) as on the CPU."""
import numpy as np
import pytest

import fastrnn


@pytest.mark.parametrize("cls,extra", [("LSTM", {"proj_size": 2}), ("GRU", {}), ("RNN", {"nonlinearity": "relu"})])
def test_layer_to_cuda_matches_cpu(cls, extra):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 2, 3))
    lengths = np.array([3, 1])
    cpu = getattr(fastrnn, cls)(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=1, **extra)
    gpu = getattr(fastrnn, cls)(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=1, **extra)
    assert gpu.to("cuda") is gpu and gpu.device == "cuda"
    y_cpu, _ = cpu(x, lengths=lengths)
    y_gpu, _ = gpu(x, lengths=lengths)
    assert isinstance(y_gpu, np.ndarray)
    np.testing.assert_allclose(y_gpu, y_cpu, rtol=1e-10, atol=1e-12)
    dy = rng.uniform(-1, 1, y_cpu.shape)
    dx_cpu, _ = cpu.backward(dy)
    dx_gpu, _ = gpu.backward(dy)
    np.testing.assert_allclose(dx_gpu, dx_cpu, rtol=1e-10, atol=1e-12)
    for (name, p_cpu), (_, p_gpu) in zip(cpu.named_parameters(), gpu.named_parameters()):
        np.testing.assert_allclose(p_gpu.grad, p_cpu.grad, rtol=1e-10, atol=1e-12, err_msg=name)
    assert gpu.to("cpu").device == "cpu"


def test_to_rejects_unknown_devices():
    with pytest.raises(ValueError, match="device must be one of 'cpu', 'cuda'"):
        fastrnn.GRU(2, 3).to("tpu")
