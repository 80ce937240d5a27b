"""pytest-benchmark suite: the variant section of ``python -m fastrnn.bench``.

Forward+backward at S2 of every variant of fastrnn.functional.lstm/gru (group
"<cell>-variants-S2", the plain kernel included as the baseline) and the layer-norm
LSTM against torch.nn.LSTM and a torch LayerNorm loop (group "ln-lstm-S2")::

    pytest bench/test_bench_variants.py --benchmark-only
"""
import numpy as np
import pytest

from fastrnn import bench_variants as V

T, B, I, H = V.S2["steps"], V.S2["batch"], V.S2["inputs"], V.S2["hidden"]
CASES = [(cell, name) for cell in ("lstm", "gru") for name in V.variant_cases(cell, 2, 1, 1, 1)]


def _inputs():
    rng = np.random.default_rng([0, 22])
    return (rng.standard_normal((T, B, I)).astype(np.float32), rng.standard_normal((T, B, H)).astype(np.float32))


@pytest.mark.parametrize("cell, name", CASES, ids=["-".join(c) for c in CASES])
def test_variant(benchmark, cell, name):
    x, dy = _inputs()
    weights, keywords = V.variant_cases(cell, T, B, I, H)[name]
    run = V.fused_fwd_bwd(cell, x, dy, weights, keywords)
    benchmark.group = f"{cell}-variants-S2"
    if benchmark.disabled:
        benchmark(run)
        return
    run()
    benchmark.pedantic(run, rounds=15, iterations=1)


@pytest.mark.parametrize("impl", ["fastrnn layer-norm LSTM", "torch.nn.LSTM", "torch layer-norm loop"])
def test_layer_norm_lstm_against_torch(benchmark, impl):
    x, dy = _inputs()
    (w_ih, w_hh, b_ih, b_hh), keywords = V.variant_cases("lstm", T, B, I, H)["layer_norm"]
    if impl == "fastrnn layer-norm LSTM":
        run = V.fused_fwd_bwd("lstm", x, dy, (w_ih, w_hh, b_ih, b_hh), keywords)
    else:
        torch = pytest.importorskip("torch")
        xg, dyt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)
        if impl == "torch.nn.LSTM":
            model = torch.nn.LSTM(I, H)
            run = lambda: model(xg)[0].backward(dyt)  # noqa: E731
        else:
            model = V.TorchLayerNormLSTM(torch, w_ih, w_hh, b_ih, b_hh, keywords["layer_norm"])
            run = lambda: model(xg).backward(dyt)  # noqa: E731
    benchmark.group = "ln-lstm-S2"
    if benchmark.disabled:
        benchmark(run)
        return
    run()
    benchmark.pedantic(run, rounds=15, iterations=1)
