"""Interop benchmark: fastrnn.torch inside a torch training loop, and onnxruntime vs fastrnn.

Run ``python bench/torch_training_bench.py [--threads 2] [--repeats 30]``. In one
process, with the same thread count for every library (torch.set_num_threads,
threadpoolctl for scipy's OpenBLAS that fastrnn's kernels call, onnxruntime's
intra-op threads), it prints:

1. a torch training step (forward + backward + Adam) of a 2-layer model at S2
   (T=100, B=32, I=64, H=128: GRU or LSTM stack, then a Linear head and a
   cross-entropy loss over every step), with ``torch.nn.GRU``/``LSTM`` and with
   ``fastrnn.torch.GRU``/``LSTM`` on the same weights and data: medians and the ratio
   (torch time / fastrnn time; > 1 means fastrnn is faster);
2. inference of one layer at S1 and S2 for LSTM, GRU and RNN-tanh: onnxruntime on the
   exported model (``fastrnn.onnx.export``) beside fastrnn, with the max abs error
   between them (full-length and variable-length batches).

The two implementations of each row are timed alternately, step by step, so a
change in machine load hits both. Needs torch, onnx and onnxruntime.
"""
import os
import sys

# OpenBLAS reads these when it loads; they halve its GEMM speed on some machines
# (see fastrnn.bench). Remove them for this process before numpy is imported.
for _name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_name, None)

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    parser.add_argument("--repeats", type=int, default=30, help="timed training steps per implementation")
    parser.add_argument("--infer-seconds", type=float, default=1.5,
                        help="time budget per inference measurement (default 1.5 s)")
    return parser.parse_args(argv)


def _median_ms(samples):
    return 1e3 * statistics.median(samples)


# --------------------------------------------------------------------------- training step

def training_rows(torch, ft, cell, repeats, size):
    nn = torch.nn
    steps, batch, inputs, hidden = size.steps, size.batch, size.inputs, size.hidden
    classes = 10

    class Model(nn.Module):
        def __init__(self, rnn):
            super().__init__()
            self.rnn = rnn
            self.head = nn.Linear(hidden, classes)

        def forward(self, x):
            y, _ = self.rnn(x)
            return self.head(y)

    torch.manual_seed(0)
    torch_cls = {"GRU": nn.GRU, "LSTM": nn.LSTM}[cell]
    fast_cls = {"GRU": ft.GRU, "LSTM": ft.LSTM}[cell]
    reference = Model(torch_cls(inputs, hidden, num_layers=2))
    fast = Model(fast_cls(inputs, hidden, num_layers=2))
    fast.load_state_dict(reference.state_dict())
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(steps, batch, inputs, generator=gen)
    target = torch.randint(0, classes, (steps * batch,), generator=gen)
    models = {"torch.nn": reference, "fastrnn.torch": fast}
    optimizers = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    losses = {k: [] for k in models}

    def step(name):
        model, opt = models[name], optimizers[name]
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x).reshape(-1, classes), target)
        loss.backward()
        opt.step()
        elapsed = time.perf_counter() - start
        losses[name].append(loss.item())
        return elapsed

    for _ in range(3):  # warm-up: compilation / cache load, allocator, oneDNN primitives
        for name in models:
            step(name)
    times = {k: [] for k in models}
    for _ in range(repeats):
        for name in models:
            times[name].append(step(name))
    drift = max(abs(a - b) / abs(a) for a, b in zip(losses["torch.nn"], losses["fastrnn.torch"]))
    return times, drift


# --------------------------------------------------------------------------- inference

def _time_fn(fn, budget):
    fn()
    first = time.perf_counter()
    fn()
    once = max(time.perf_counter() - first, 1e-6)
    reps = int(min(200, max(5, budget / once)))
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def inference_rows(fastrnn, fonnx, ort, threads, size, budget):
    rows = []
    rng = np.random.default_rng(0)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    for name, cls in (("LSTM", fastrnn.LSTM), ("GRU", fastrnn.GRU), ("RNN", fastrnn.RNN)):
        layer = cls(size.inputs, size.hidden, seed=0).eval()
        x = rng.standard_normal((size.steps, size.batch, size.inputs)).astype(np.float32)
        lengths = rng.integers(1, size.steps + 1, size.batch)
        lengths[0] = size.steps
        session = ort.InferenceSession(fonnx.export(layer, lengths=True).SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        full = np.full(size.batch, size.steps)
        errors = []
        for lens in (full, lengths):
            got = session.run(None, {"x": x, "lengths": lens})
            want = layer(x, lengths=lens)
            want = [want[0], *want[1]] if isinstance(want[1], tuple) else list(want)
            errors.append(max(float(np.abs(g - w).max()) for g, w in zip(got, want)))
        t_ort = _time_fn(lambda: session.run(None, {"x": x, "lengths": full}), budget)
        t_fast = _time_fn(lambda: layer(x), budget)
        rows.append((name, size.name, _median_ms(t_ort), _median_ms(t_fast), errors[0], errors[1]))
    return rows


# --------------------------------------------------------------------------- main

def main(argv=None):
    args = parse_args(argv)
    import torch

    import fastrnn
    import fastrnn.onnx as fonnx
    import fastrnn.torch as ft
    from fastrnn.bench import SIZES, limit_threads
    import onnxruntime as ort

    limiter = limit_threads(args.threads)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print("fastrnn interop benchmark")
    print(f"  python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
          f"onnxruntime {ort.__version__}, fastrnn {fastrnn.__version__}")
    print(f"  threads {args.threads} for every library (torch.set_num_threads, threadpoolctl"
          f"{'' if limiter is not None else ' UNAVAILABLE'}, onnxruntime intra-op); "
          f"torch reports {torch.get_num_threads()}; load average {load}")
    size = SIZES["S2"]
    print(f"\n1. training step (forward + backward + Adam), 2-layer model at {size}, float32, "
          f"median of {args.repeats} steps each")
    print(f"   {'cell':<5} {'torch.nn ms':>12} {'fastrnn.torch ms':>17} {'ratio torch/fastrnn':>20} "
          f"{'max rel. loss diff':>19}")
    for cell in ("GRU", "LSTM"):
        times, drift = training_rows(torch, ft, cell, args.repeats, size)
        t_torch, t_fast = _median_ms(times["torch.nn"]), _median_ms(times["fastrnn.torch"])
        print(f"   {cell:<5} {t_torch:12.2f} {t_fast:17.2f} {t_torch / t_fast:19.2f}x {drift:19.1e}")

    print("\n2. inference, one layer, float32: onnxruntime (exported graph) vs fastrnn "
          "(max abs error: full lengths / variable lengths)")
    print(f"   {'cell':<5} {'size':<4} {'onnxruntime ms':>15} {'fastrnn ms':>11} {'ratio ort/fastrnn':>18} "
          f"{'max err full':>13} {'max err lengths':>16}")
    for size_name in ("S1", "S2"):
        for name, sname, t_ort, t_fast, err_full, err_len in inference_rows(
                fastrnn, fonnx, ort, args.threads, SIZES[size_name], args.infer_seconds):
            print(f"   {name:<5} {sname:<4} {t_ort:15.3f} {t_fast:11.3f} {t_ort / t_fast:17.2f}x "
                  f"{err_full:13.1e} {err_len:16.1e}")
    print("\nsizes: " + "; ".join(str(SIZES[n]) for n in ("S1", "S2")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
