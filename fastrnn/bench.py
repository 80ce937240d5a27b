"""Benchmark report: fastrnn against the NumPy baseline and PyTorch on one machine.

Run ``python -m fastrnn.bench`` (``--help`` lists the options). In one process, with
one thread count for every library, the report times LSTM, GRU and RNN-tanh at four
sizes, inference forward ("fwd") and training forward + backward ("fwd+bwd"), for

* ``fastrnn``: :mod:`fastrnn.functional` (the fused Numba kernels),
* ``numpy``: :mod:`fastrnn.reference` (plain NumPy loops, the baseline),
* ``torch``: ``torch.nn.LSTM``/``GRU``/``RNN`` with the same weights (skipped when
  torch is not installed),

all on the same seeded float32 inputs. It prints medians, the speedups of fastrnn
(other time / fastrnn time), fastrnn's achieved GFLOP/s and that as a fraction of
one GEMM of the same shape (the roofline), then the kernels' compile times (cold,
and from the on-disk cache).

The case definitions here (:data:`SIZES`, :data:`CELLS`, :data:`MODES`,
:data:`IMPLS`, :func:`make_inputs`, :func:`make_runner`) are shared with the
pytest-benchmark suite in ``bench/``.
"""
import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

#: Environment variables that, on some machines, halve OpenBLAS GEMM speed. The
#: report removes them from its own process (and its children) only.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

#: Set by the re-executed process to the names it removed (see :func:`_reexec_without_overrides`).
_REEXEC_MARK = "FASTRNN_BENCH_REMOVED_ENV"


# --------------------------------------------------------------------------- cases

@dataclass(frozen=True)
class Size:
    """One problem size: T steps, batch B, input features I, hidden units H."""
    name: str
    steps: int
    batch: int
    inputs: int
    hidden: int

    def __str__(self):
        return f"{self.name} T={self.steps} B={self.batch} I={self.inputs} H={self.hidden}"


@dataclass(frozen=True)
class Cell:
    """A recurrent cell: its fastrnn name, gate count G and torch.nn class name."""
    name: str
    gates: int
    torch_class: str


SIZES: dict[str, Size] = {s.name: s for s in (
    Size("S1", 200, 1, 16, 64),
    Size("S2", 100, 32, 64, 128),
    Size("S3", 50, 64, 256, 512),
    Size("S4", 20, 128, 1024, 1024),
)}

CELLS: dict[str, Cell] = {c.name: c for c in (
    Cell("lstm", 4, "LSTM"),
    Cell("gru", 3, "GRU"),
    Cell("rnn", 1, "RNN"),  # tanh
)}

#: "fwd": inference forward; "fwd+bwd": training forward then backward of y.
MODES = ("fwd", "fwd+bwd")

IMPLS = ("fastrnn", "numpy", "torch")

#: A tiny shape for the compile-time probe.
TINY = Size("tiny", 3, 2, 4, 5)


def flops(cell: Cell, size: Size, mode: str) -> int:
    """Nominal flops of one call: 2*T*B*G*H*(I+H) forward, three times that for fwd+bwd."""
    forward = 2 * size.steps * size.batch * cell.gates * size.hidden * (size.inputs + size.hidden)
    return forward if mode == "fwd" else 3 * forward


@dataclass
class Inputs:
    """Arrays shared by every implementation for one (cell, size): PyTorch layout, time-major."""
    x: np.ndarray      # (T, B, I)
    w_ih: np.ndarray   # (G*H, I)
    w_hh: np.ndarray   # (G*H, H)
    b_ih: np.ndarray   # (G*H,)
    b_hh: np.ndarray   # (G*H,)
    dy: np.ndarray     # (T, B, H), the gradient fed to the backward


def make_inputs(cell: Cell, size: Size, seed: int = 0, dtype=np.float32) -> Inputs:
    """Seeded random inputs; weights uniform in +-1/sqrt(H) as torch initialises them."""
    rng = np.random.default_rng([seed, cell.gates, size.steps, size.batch, size.inputs, size.hidden])
    rows, scale = cell.gates * size.hidden, 1.0 / math.sqrt(size.hidden)

    def uniform(*shape, bound=scale):
        return rng.uniform(-bound, bound, shape).astype(dtype)

    return Inputs(
        x=rng.standard_normal((size.steps, size.batch, size.inputs)).astype(dtype),
        w_ih=uniform(rows, size.inputs), w_hh=uniform(rows, size.hidden),
        b_ih=uniform(rows), b_hh=uniform(rows),
        dy=rng.standard_normal((size.steps, size.batch, size.hidden)).astype(dtype),
    )


class Unavailable(Exception):
    """An implementation cannot run here (torch not installed, reference missing)."""


def make_runner(impl: str, cell: Cell, mode: str, inputs: Inputs) -> Callable[[], object]:
    """A zero-argument callable running one case; raises :class:`Unavailable` if it cannot."""
    builders = {"fastrnn": _fastrnn_runner, "numpy": _numpy_runner, "torch": _torch_runner}
    if impl not in builders or mode not in MODES:
        raise ValueError(f"unknown impl {impl!r} or mode {mode!r}; expected one of {IMPLS} and {MODES}")
    return builders[impl](cell, mode, inputs)


def _fastrnn_runner(cell, mode, a):
    from . import functional as F

    forward, backward = getattr(F, cell.name), getattr(F, cell.name + "_backward")
    training = mode == "fwd+bwd"

    def run():
        out = forward(a.x, a.w_ih, a.w_hh, a.b_ih, a.b_hh, training=training)
        return backward(out[-1], a.dy) if training else out[0]
    return run


def _numpy_runner(cell, mode, a):
    try:
        from . import reference
        forward = getattr(reference, cell.name + "_forward")
        backward = getattr(reference, cell.name + "_backward")
    except (ImportError, AttributeError) as exc:
        raise Unavailable(f"fastrnn.reference has no {cell.name} baseline yet ({exc})") from None

    def run():  # the reference forward always keeps its cache: "fwd" includes that cost
        out = forward(a.x, a.w_ih, a.w_hh, a.b_ih, a.b_hh)
        return backward(out[-1], a.dy) if mode == "fwd+bwd" else out[0]
    return run


def _import_torch():
    try:
        import torch
    except ImportError as exc:
        raise Unavailable(f"torch is not importable ({exc})") from None
    return torch


def _torch_runner(cell, mode, a):
    torch = _import_torch()
    hidden, n_in = a.w_hh.shape[1], a.w_ih.shape[1]
    module = getattr(torch.nn, cell.torch_class)(n_in, hidden)
    with torch.no_grad():
        for name, value in (("weight_ih_l0", a.w_ih), ("weight_hh_l0", a.w_hh),
                            ("bias_ih_l0", a.b_ih), ("bias_hh_l0", a.b_hh)):
            getattr(module, name).copy_(torch.from_numpy(value))
    x = torch.from_numpy(a.x.copy())
    if mode == "fwd":
        def run():
            with torch.no_grad():
                return module(x)[0]
        return run

    x.requires_grad_(True)
    dy = torch.from_numpy(a.dy)

    def run():
        x.grad = None
        module.zero_grad(set_to_none=True)
        y = module(x)[0]
        y.backward(dy)
        return x.grad
    return run


# --------------------------------------------------------------------------- timing

@dataclass(frozen=True)
class RepeatPolicy:
    """How many timed calls a case gets, from the duration of its first timed call.

    ``ceil(budget_s / first_call)`` clamped to [min_repeats, max_repeats]; calls
    slower than ``slow_call_s`` (the NumPy baseline at S4) need only ``slow_min_repeats``.
    """
    budget_s: float
    min_repeats: int
    max_repeats: int
    slow_call_s: float
    slow_min_repeats: int

    def describe(self) -> str:
        """One line for the report header."""
        return (f"about {self.budget_s:g} s per case, {self.min_repeats}-{self.max_repeats} timed calls "
                f"({self.slow_min_repeats} if a call takes over {self.slow_call_s:g} s)")

    def repeats(self, first_call_s: float) -> int:
        low = self.slow_min_repeats if first_call_s >= self.slow_call_s else self.min_repeats
        wanted = math.ceil(self.budget_s / max(first_call_s, 1e-9))
        return max(low, min(self.max_repeats, wanted))


DEFAULT_POLICY = RepeatPolicy(budget_s=1.0, min_repeats=3, max_repeats=50, slow_call_s=0.5, slow_min_repeats=2)
QUICK_POLICY = RepeatPolicy(budget_s=0.15, min_repeats=1, max_repeats=5, slow_call_s=0.1, slow_min_repeats=1)


#: pause before timing each implementation: the previous library's worker threads
#: (torch's OpenMP pool, numpy's and scipy's OpenBLAS) spin-wait after their last call
#: (OpenBLAS for up to ~2^28 cycles, about 0.1 s) and would otherwise steal one of the
#: two cores from the next implementation.
SETTLE_S = 0.3


def time_once(fn: Callable[[], object]) -> float:
    """Seconds taken by one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class Timing:
    """Median of the timed calls (the warm-up call is not among them)."""
    median_s: float
    samples_s: list[float]


def measure(fn: Callable[[], object], policy: RepeatPolicy) -> Timing:
    """Warm up (compiles, fills caches), then time ``policy.repeats`` calls with the GC paused."""
    fn()
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        samples = [time_once(fn)]
        samples += [time_once(fn) for _ in range(policy.repeats(samples[0]) - 1)]
    finally:
        if was_enabled:
            gc.enable()
    return Timing(statistics.median(samples), samples)


def gemm_runner(cell: Cell, size: Size, seed: int = 0) -> Callable[[], object]:
    """One numpy float32 GEMM (T*B, I+H) @ (I+H, G*H) into a preallocated output."""
    rng = np.random.default_rng([seed, 7])
    a = rng.standard_normal((size.steps * size.batch, size.inputs + size.hidden)).astype(np.float32)
    b = rng.standard_normal((size.inputs + size.hidden, cell.gates * size.hidden)).astype(np.float32)
    out = np.empty((a.shape[0], b.shape[1]), np.float32)
    return lambda: np.matmul(a, b, out=out)


# --------------------------------------------------------------------------- threads & machine

def limit_threads(threads: int):
    """Give every library ``threads`` threads; returns the threadpoolctl limiter (or None).

    scipy.linalg is imported first: its OpenBLAS (the one fastrnn's kernels call) is
    only visible to threadpoolctl once loaded. threadpoolctl cannot see torch's own
    pool, hence ``torch.set_num_threads``. Numba's thread count is deliberately left
    alone: fastrnn's kernels are serial, and ``numba.set_num_threads`` would launch
    Numba's OpenMP pool next to torch's, which made torch's RNN 60x slower on 2 cores.
    """
    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS)
    try:
        torch = _import_torch()
        torch.set_num_threads(threads)
    except Unavailable:
        pass
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("warning: threadpoolctl is not installed; BLAS thread counts are not limited "
              "(pip install fastrnn[bench])", file=sys.stderr)
        return None
    return threadpool_limits(limits=threads)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in present]
    except OSError:
        pass
    return []


def _blas_libraries() -> list[str]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["(threadpoolctl not installed)"]
    return [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')} "
            f"[{i.get('prefix')}] threads={i.get('num_threads')}"
            for i in threadpool_info() if i.get("user_api") == "blas"]


def _torch_info() -> str | None:
    try:
        torch = _import_torch()
    except Unavailable:
        return None
    blas = next((part.split("=", 1)[1] for part in torch.__config__.show().replace(",", " ").split()
                 if part.startswith("BLAS_INFO=")), "?")
    return (f"{torch.__version__} (BLAS {blas}, oneDNN {torch.backends.mkldnn.is_available()}, "
            f"threads={torch.get_num_threads()})")


def machine_info(threads: int, removed_env: list[str]) -> dict:
    """CPU, library versions, BLAS and thread settings, for the header and the JSON."""
    import numba
    import scipy
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(), "cpu_flags": _cpu_flags(), "cpus": os.cpu_count(), "cpus_usable": affinity,
        "threads": threads, "python": platform.python_version(), "numpy": np.__version__,
        "scipy": scipy.__version__, "numba": numba.__version__, "torch": _torch_info(),
        "blas": _blas_libraries(), "removed_env": removed_env,
        "kept_env": {k: os.environ[k] for k in OPENBLAS_OVERRIDES if k in os.environ},
        "load_average": _load_average(),
    }


def _load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages: other work on the cores skews multi-threaded timings."""
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def format_header(info: dict, sizes: list[Size]) -> str:
    """The lines printed above the table."""
    lines = [
        "fastrnn benchmark report",
        (f"CPU      {info['cpu']} ({', '.join(info['cpu_flags']) or 'no AVX2'}), "
         f"{info['cpus_usable']} usable of {info['cpus']} CPUs"),
        (f"threads  {info['threads']} for every library (threadpoolctl, torch.set_num_threads; "
         "fastrnn's kernels are serial around BLAS)"),
        (f"python {info['python']}  numpy {info['numpy']}  scipy {info['scipy']}  numba {info['numba']}  "
         f"torch {info['torch'] or 'not installed'}"),
    ]
    lines += [f"BLAS     {lib}" for lib in info["blas"]]
    if info["load_average"] is not None:
        lines.append(f"load     {info['load_average']} (1/5/15 min) at start: timings assume idle cores")
    if info["removed_env"]:
        lines.append(f"env      removed {', '.join(info['removed_env'])} from this process (they slow OpenBLAS)")
    if info["kept_env"]:
        lines.append(f"env      WARNING still set: {info['kept_env']} (OpenBLAS may run at half speed)")
    lines.append("sizes    " + "; ".join(str(s) for s in sizes) + "  (float32, time-major)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- report rows

@dataclass
class Row:
    """One (cell, size, mode): timings per implementation plus the derived numbers."""
    cell: str
    size: str
    mode: str
    flops: int
    gemm_gflops: float
    timings: dict[str, Timing] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def speedup(self, other: str) -> float | None:
        """other's median / fastrnn's median (above 1: fastrnn is faster)."""
        if "fastrnn" in self.timings and other in self.timings:
            return self.timings[other].median_s / self.timings["fastrnn"].median_s
        return None

    @property
    def gflops(self) -> float | None:
        """fastrnn's achieved GFLOP/s by the nominal flop count."""
        t = self.timings.get("fastrnn")
        return self.flops / t.median_s / 1e9 if t else None

    @property
    def roofline(self) -> float | None:
        """Achieved GFLOP/s as a fraction of the same-shape GEMM's."""
        return self.gflops / self.gemm_gflops if self.gflops is not None else None

    def to_json(self) -> dict:
        return {
            "cell": self.cell, "size": self.size, "mode": self.mode, "flops": self.flops,
            "median_s": {k: t.median_s for k, t in self.timings.items()},
            "samples_s": {k: t.samples_s for k, t in self.timings.items()},
            "skipped": self.skipped, "speedup_vs_torch": self.speedup("torch"),
            "speedup_vs_numpy": self.speedup("numpy"), "gflops": self.gflops,
            "gemm_gflops": self.gemm_gflops, "roofline_fraction": self.roofline,
        }


_COLUMNS = [  # (title, width, alignment)
    ("cell", 4, "<"), ("size", 4, "<"), ("mode", 7, "<"),
    ("fastrnn ms", 10, ">"), ("numpy ms", 10, ">"), ("torch ms", 10, ">"),
    ("vs torch", 8, ">"), ("vs numpy", 8, ">"), ("GFLOP/s", 7, ">"), ("GEMM GF/s", 9, ">"),
    ("of GEMM", 7, ">"),
]


def _cells(values) -> str:
    return "  ".join(f"{v:{align}{width}}" for v, (_, width, align) in zip(values, _COLUMNS))


def table_header() -> str:
    """Column titles and a rule."""
    titles = _cells([title for title, _, _ in _COLUMNS])
    return titles + "\n" + "-" * len(titles)


def _fmt(value, spec, suffix=""):
    return "-" if value is None else f"{value:{spec}}{suffix}"


def format_row(row: Row) -> str:
    """One fixed-width table line; '-' where an implementation was skipped."""
    ms = [_fmt(row.timings[i].median_s * 1e3 if i in row.timings else None, ".3f") for i in IMPLS]
    roof = row.roofline
    return _cells([row.cell, row.size, row.mode, *ms,
                   _fmt(row.speedup("torch"), ".2f", "x"), _fmt(row.speedup("numpy"), ".1f", "x"),
                   _fmt(row.gflops, ".1f"), f"{row.gemm_gflops:.1f}", _fmt(roof and 100 * roof, ".0f", "%")])


TABLE_NOTES = """\
medians of timed calls after one warm-up call; '-' = not run (reason below).
vs torch / vs numpy = that time / fastrnn time (above 1x: fastrnn is faster).
numpy = fastrnn.reference, plain NumPy loops; its forward always keeps the backward cache.
torch fwd runs under torch.no_grad(); fwd+bwd = forward + y.backward(dy) with x.requires_grad.
GFLOP/s = fastrnn's, counting 2*T*B*G*H*(I+H) flops per forward, 3x that for fwd+bwd.
GEMM GF/s = one numpy float32 GEMM (T*B, I+H) @ (I+H, G*H), same process and threads;
of GEMM = GFLOP/s / GEMM GF/s (the recurrence cannot batch all T steps: 100% is an upper bound)."""


def run_row(cell: Cell, size: Size, mode: str, impls, inputs: Inputs, gemm_gflops: float,
            policy: RepeatPolicy) -> Row:
    """Time every requested implementation on one case."""
    row = Row(cell.name, size.name, mode, flops(cell, size, mode), gemm_gflops)
    for impl in impls:
        try:
            runner = make_runner(impl, cell, mode, inputs)
        except Unavailable as exc:
            row.skipped[impl] = str(exc)
            continue
        time.sleep(SETTLE_S)
        row.timings[impl] = measure(runner, policy)
    return row


def run_table(cells: list[Cell], sizes: list[Size], impls, policy: RepeatPolicy, seed: int, out) -> list[Row]:
    """Time all cases, printing each row as soon as it is done."""
    print(table_header(), file=out, flush=True)
    rows = []
    for cell in cells:
        for size in sizes:
            inputs = make_inputs(cell, size, seed)
            gemm_s = measure(gemm_runner(cell, size, seed), policy).median_s
            gemm_gflops = flops(cell, size, "fwd") / gemm_s / 1e9
            for mode in MODES:
                row = run_row(cell, size, mode, impls, inputs, gemm_gflops, policy)
                rows.append(row)
                print(format_row(row), file=out, flush=True)
    return rows


# --------------------------------------------------------------------------- compile time

_COMPILE_PROBE = textwrap.dedent("""\
    import json, sys, time
    start = time.perf_counter()
    from fastrnn import bench
    import fastrnn.functional
    result = {"import_s": time.perf_counter() - start, "first_call_s": {}}
    for name in sys.argv[1:]:
        cell = bench.CELLS[name]
        run = bench.make_runner("fastrnn", cell, "fwd+bwd", bench.make_inputs(cell, bench.TINY))
        result["first_call_s"][name] = bench.time_once(run)
    print(json.dumps(result))
""")


def _probe_compile(cell_names: list[str], cache_dir: str) -> dict:
    """First-call times of fwd+bwd at a tiny shape in a fresh interpreter using ``cache_dir``."""
    env = {k: v for k, v in os.environ.items() if k != "FASTRNN_DISABLE_CACHE"}
    env["NUMBA_CACHE_DIR"] = cache_dir
    done = subprocess.run([sys.executable, "-c", _COMPILE_PROBE, *cell_names], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"compile probe failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compile_times(cell_names: list[str]) -> dict:
    """Cold (empty NUMBA_CACHE_DIR, compiles and fills it) and cached (second process) first calls.

    Cells compile in the given order in one process, so helpers they share are
    counted in the first cell's time.
    """
    with tempfile.TemporaryDirectory(prefix="fastrnn-bench-numba-") as cache_dir:
        cold = _probe_compile(cell_names, cache_dir)
        cached = _probe_compile(cell_names, cache_dir)
    return {"cells": cell_names, "shape": str(TINY), "cold": cold, "cached": cached}


def format_compile(result: dict) -> str:
    """A small table: first call per cell and in total, cold and from the cache."""
    names = result["cells"]
    lines = [f"compile time: first fwd+bwd call in a fresh process ({result['shape']}), seconds",
             f"{'':8}" + "".join(f"{n:>8}" for n in names) + f"{'total':>8}{'import':>8}"]
    for kind in ("cold", "cached"):
        calls = result[kind]["first_call_s"]
        lines.append(f"{kind:8}" + "".join(f"{calls[n]:8.2f}" for n in names)
                     + f"{sum(calls.values()):8.2f}{result[kind]['import_s']:8.2f}")
    lines.append("cold = empty temporary NUMBA_CACHE_DIR (compiles and fills it); cached = a second\n"
                 "process reusing it. Cells run in this order in one process: shared helpers count in the first.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line

def _choices(text: str, known: dict, what: str) -> list:
    picked = []
    for name in (part.strip() for part in text.split(",") if part.strip()):
        key = next((k for k in known if k.lower() == name.lower()), None)
        if key is None:
            raise argparse.ArgumentTypeError(f"unknown {what} {name!r}; choose from {', '.join(known)}")
        picked.append(known[key])
    if not picked:
        raise argparse.ArgumentTypeError(f"no {what} given")
    return picked


def parse_args(argv=None) -> argparse.Namespace:
    """The command line of ``python -m fastrnn.bench``."""
    p = argparse.ArgumentParser(prog="python -m fastrnn.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few repeats (smoke runs); numbers are noisier")
    p.add_argument("--cells", default="lstm,gru,rnn", type=lambda s: _choices(s, CELLS, "cell"),
                   help="comma-separated subset of: lstm,gru,rnn (default all)")
    p.add_argument("--sizes", default="S1,S2,S3,S4", type=lambda s: _choices(s, SIZES, "size"),
                   help="comma-separated subset of: " + "; ".join(str(s) for s in SIZES.values()))
    p.add_argument("--impls", default=",".join(IMPLS),
                   type=lambda s: [i for i in _choices(s, {i: i for i in IMPLS}, "impl")],
                   help="comma-separated subset of: fastrnn,numpy,torch (default all)")
    p.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--no-compile-time", dest="compile_time", action="store_false",
                   help="skip the cold/cached compile-time measurement (two subprocesses)")
    p.add_argument("--no-layers", dest="layers", action="store_false",
                   help="skip the layer section (layer overhead, 2-layer bidirectional with lengths vs "
                        "torch's packed path, streaming step latency)")
    p.add_argument("--no-variants", dest="variants", action="store_false",
                   help="skip the variant section (peephole, coupled gates, layer norm, dropouts, zoneout "
                        "against the plain kernel at S2; layer-norm LSTM against torch)")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be at least 1")
    if args.seed < 0:
        p.error(f"--seed must be a non-negative int, got {args.seed}")
    if args.json:  # find out now, not after the whole run, that the results cannot be written
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            p.error(f"--json {args.json}: folder {folder} does not exist or is not writable")
    return args


def main(argv=None, out=None) -> dict:
    """Run the report, printing to ``out`` (default stdout); returns what ``--json`` writes."""
    started = time.perf_counter()
    out = sys.stdout if out is None else out
    args = parse_args(argv)
    removed = [v for v in os.environ.pop(_REEXEC_MARK, "").split(",") if v]
    limiter = limit_threads(args.threads)  # noqa: F841  (keeps the limits referenced)
    info = machine_info(args.threads, removed)
    policy = QUICK_POLICY if args.quick else DEFAULT_POLICY
    print(format_header(info, args.sizes), file=out)
    print(f"repeats  {'quick' if args.quick else 'default'}: {policy.describe()}\n", file=out, flush=True)

    rows = run_table(args.cells, args.sizes, args.impls, policy, args.seed, out)
    print(file=out)
    skipped = sorted({f"{impl}: {why}" for row in rows for impl, why in row.skipped.items()})
    print("\n".join([*TABLE_NOTES.splitlines(), *("not run: " + s for s in skipped)]), file=out)

    layers = None
    if args.layers:
        from .bench_layers import format_layer_section, layer_rows, stream_rows
        layer, stream = layer_rows(measure, policy, args.seed), stream_rows(args.seed, 500 if args.quick else 5000)
        print("\n" + format_layer_section(layer, stream), file=out, flush=True)
        layers = {"layer": [list(r) for r in layer], "stream": [list(r) for r in stream]}

    variants = None
    if args.variants:
        from .bench_variants import format_variant_section, variant_rows
        rows_v, torch_v = variant_rows(rounds=3 if args.quick else 15, seed=args.seed)
        print("\n" + format_variant_section(rows_v, torch_v), file=out, flush=True)
        variants = {"variants": [list(r) for r in rows_v], "torch": [list(r) for r in torch_v]}

    compiled = None
    if args.compile_time:
        names = [c.name for c in args.cells] if not args.quick else [args.cells[0].name]
        compiled = compile_times(names)
        print("\n" + format_compile(compiled), file=out)

    wall = time.perf_counter() - started
    load = _load_average()
    print(f"\ntotal wall time {wall:.1f} s; load average at end {load}", file=out, flush=True)
    report = {"machine": info, "policy": vars(policy), "quick": args.quick,
              "sizes": {s.name: vars(s) for s in args.sizes}, "rows": [r.to_json() for r in rows], "layers": layers,
              "variants": variants, "compile": compiled, "wall_s": wall, "load_average_end": load}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return report


def _reexec_without_overrides():
    """Re-run this very command without OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE, if either is set.

    OpenBLAS reads them when it loads, and ``python -m fastrnn.bench`` has loaded numpy
    (through the package's ``__init__``) before this module runs, so unsetting them
    in place would be too late. Only this process and its children are affected.
    """
    present = [name for name in OPENBLAS_OVERRIDES if name in os.environ]
    if not present or _REEXEC_MARK in os.environ:
        return
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_OVERRIDES}
    env[_REEXEC_MARK] = ",".join(present)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


if __name__ == "__main__":
    _reexec_without_overrides()
    main()
