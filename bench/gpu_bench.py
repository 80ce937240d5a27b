"""GPU benchmark: fastrnn's CUDA kernels against torch's cuDNN LSTM/GRU.

    python bench/gpu_bench.py                    # S1-S4, LSTM and GRU, float32
    python bench/gpu_bench.py --sizes S3,S4 --cells lstm --repeats 20

Times, on one GPU and the same device-resident inputs, the inference forward and
the training forward + backward of fastrnn (``device="cuda"``) and of
``torch.nn.LSTM``/``GRU`` (cuDNN), and prints the medians and the ratio
fastrnn / torch (below 1: fastrnn is faster). Both run in the same precision:
TF32 tensor cores are off for torch unless ``--tf32`` is given (fastrnn computes in
true float32). Every timed call ends with a device synchronisation.

Without a usable GPU (no numba-cuda, no driver, or Numba's CUDA simulator active)
it says so and exits with status 0. Without torch, or torch without CUDA, it times
fastrnn alone.
"""
import argparse
import dataclasses
import os
import statistics
import sys
import time

import numpy as np

# Small sizes launch few blocks by design; Numba would warn at every such launch.
os.environ.setdefault("NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS", "0")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from fastrnn.bench import SIZES  # noqa: E402  (the sizes of the CPU report: S1-S4)

TORCH_CLASSES = {"lstm": "LSTM", "gru": "GRU"}
GATES = {"lstm": 4, "gru": 3}


def _gpu_or_reason():
    """None when a real GPU can run the CUDA kernels, else why not."""
    import fastrnn.cuda
    from fastrnn.cuda import _device
    reason = fastrnn.cuda.unavailable_reason()
    if reason is None and _device.simulated():
        reason = "Numba's CUDA simulator is active (NUMBA_ENABLE_CUDASIM=1): it is not a GPU; unset it"
    return reason


def _median_seconds(fn, sync, repeats, warmup):
    for _ in range(warmup):  # compiles, allocator warm-up
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _inputs(cell, size, dtype, seed=0):
    rng = np.random.default_rng(seed)
    gates, hidden = GATES[cell], size.hidden
    scale = 1.0 / np.sqrt(hidden)

    def draw(*shape, s=1.0):
        return (rng.uniform(-1, 1, shape) * s).astype(dtype)

    args = dict(x=draw(size.steps, size.batch, size.inputs), w_ih=draw(gates * hidden, size.inputs, s=scale),
                w_hh=draw(gates * hidden, hidden, s=scale), b_ih=draw(gates * hidden, s=scale),
                b_hh=draw(gates * hidden, s=scale), h0=draw(size.batch, hidden))
    if cell == "lstm":
        args["c0"] = draw(size.batch, hidden)
    grads = dict(dy=draw(size.steps, size.batch, hidden))
    return args, grads


def _fastrnn_timings(cell, args, grads, repeats, warmup):
    from fastrnn import functional as F
    from fastrnn.cuda._device import cuda
    on_device = {k: cuda.to_device(v) for k, v in args.items()}
    dy = cuda.to_device(grads["dy"])
    forward, backward = getattr(F, cell), getattr(F, cell + "_backward")

    def infer():
        forward(**on_device, device="cuda")

    def train():
        ctx = forward(**on_device, training=True, device="cuda")[-1]
        backward(ctx, dy)

    sync = cuda.synchronize
    return _median_seconds(infer, sync, repeats, warmup), _median_seconds(train, sync, repeats, warmup)


def _torch_timings(torch, cell, args, grads, repeats, warmup):
    device = torch.device("cuda")
    dtype = torch.float32 if args["x"].dtype == np.float32 else torch.float64
    _, _, n_in = args["x"].shape
    hidden = args["w_hh"].shape[1]
    module = getattr(torch.nn, TORCH_CLASSES[cell])(n_in, hidden).to(device=device, dtype=dtype)
    with torch.no_grad():
        for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
            getattr(module, name.replace("w_", "weight_").replace("b_", "bias_") + "_l0").copy_(
                torch.from_numpy(args[name]))
    x = torch.from_numpy(args["x"]).to(device)
    h0 = torch.from_numpy(args["h0"]).to(device)[None]
    state = (h0, torch.from_numpy(args["c0"]).to(device)[None]) if cell == "lstm" else h0
    dy = torch.from_numpy(grads["dy"]).to(device)
    x_train = x.clone().requires_grad_(True)

    def infer():
        with torch.no_grad():
            module(x, state)

    def train():
        y, _ = module(x_train, state)
        y.backward(dy)

    sync = torch.cuda.synchronize
    return _median_seconds(infer, sync, repeats, warmup), _median_seconds(train, sync, repeats, warmup)


def _load_torch(allow_tf32):
    try:
        import torch
    except ImportError:
        return None, "torch is not installed"
    if not torch.cuda.is_available():
        return None, "torch has no CUDA"
    if not torch.backends.cudnn.is_available():
        return None, "torch has no cuDNN"
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    return torch, None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="S1,S2,S3,S4", help="comma-separated subset of " + ",".join(SIZES))
    parser.add_argument("--cells", default="lstm,gru", help="comma-separated subset of lstm,gru")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--tf32", action="store_true", help="let torch/cuDNN use TF32 tensor cores")
    parser.add_argument("--tile", type=int, default=None,
                        help="fastrnn.cuda.config.TILE for this run (blocks of TILE x TILE threads)")
    parser.add_argument("--steps", type=int, default=None,
                        help="replace every size's T (e.g. 1: the fixed cost of a call)")
    args = parser.parse_args(argv)
    sizes = [SIZES[name.strip()] for name in args.sizes.split(",")]
    if args.steps is not None:
        sizes = [dataclasses.replace(size, steps=args.steps) for size in sizes]
    cells = [name.strip() for name in args.cells.split(",")]
    for name in cells:
        if name not in GATES:
            parser.error(f"unknown cell {name!r}; choose from {', '.join(GATES)}")

    reason = _gpu_or_reason()
    if reason is not None:
        print(f"gpu_bench: no GPU to benchmark on: {reason}. Nothing timed.")
        return 0
    from fastrnn.cuda import config
    from fastrnn.cuda._device import cuda
    if args.tile is not None:
        config.TILE = args.tile
    torch, torch_reason = _load_torch(args.tf32)
    device = cuda.get_current_device()
    print(f"GPU: {device.name.decode() if isinstance(device.name, bytes) else device.name}; "
          f"fastrnn.cuda TILE={config.TILE}; dtype {args.dtype}; median of {args.repeats}")
    if torch is None:
        print(f"torch comparison skipped: {torch_reason}")
    else:
        print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, TF32 {'on' if args.tf32 else 'off'}")
    header = f"{'size':<4} {'cell':<5} {'mode':<6} {'fastrnn ms':>11} {'torch ms':>10} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for size in sizes:
        for cell in cells:
            inputs, grads = _inputs(cell, size, np.dtype(args.dtype))
            ours = _fastrnn_timings(cell, inputs, grads, args.repeats, args.warmup)
            theirs = (None, None) if torch is None else _torch_timings(torch, cell, inputs, grads, args.repeats,
                                                                         args.warmup)
            for mode, mine, other in zip(("infer", "train"), ours, theirs):
                other_ms = "-" if other is None else f"{other * 1e3:10.3f}"
                ratio = "-" if other is None else f"{mine / other:7.2f}"
                print(f"{size.name:<4} {cell:<5} {mode:<6} {mine * 1e3:11.3f} {other_ms:>10} {ratio:>7}",
                      flush=True)
    print("ratio = fastrnn time / torch time (below 1: fastrnn faster). "
          + "; ".join(str(s) for s in sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
