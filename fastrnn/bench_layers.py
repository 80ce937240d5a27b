"""Layer section of the benchmark report (``python -m fastrnn.bench``).

* layer overhead: ``fastrnn.LSTM``/``GRU`` forward against the functional kernel call
  it wraps, at S2;
* a 2-layer bidirectional layer with variable lengths (S2 sizes, lengths drawn in
  T/2..T) against ``torch.nn`` on the same padded batch through
  ``pack_padded_sequence`` (the correct torch path) and without packing (torch's
  fast path, which computes garbage past each length);
* streaming latency: one ``Stream.step`` at B=1, I=16, H=64 against one call of
  ``torch.nn.LSTMCell``/``GRUCell`` under ``no_grad``.

Same process, threads and inputs as the main table; medians after a warm-up call.
"""
import time

import numpy as np

import fastrnn
from fastrnn import functional as F

S2 = dict(steps=100, batch=32, inputs=64, hidden=128)
STREAM = dict(inputs=16, hidden=64)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _settled(measure):
    """``measure`` after a pause that lets other libraries' worker threads stop spinning."""
    from .bench import SETTLE_S

    def settled(fn, policy):
        time.sleep(SETTLE_S)
        return measure(fn, policy)
    return settled


def _median_us_per_call(fn, arg, calls, rounds=7):
    """Median over rounds of the mean time of ``fn(arg)`` (called directly, no lambda)."""
    from .bench import SETTLE_S
    time.sleep(SETTLE_S)
    fn(arg)
    per_round = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn(arg)
        per_round.append((time.perf_counter() - start) / calls)
    return float(np.median(per_round)) * 1e6


def layer_rows(measure, policy, seed=0):
    """Rows (label, fastrnn_ms, reference_ms, reference_label) for the layer cases."""
    torch = _torch()
    measure = _settled(measure)
    rng = np.random.default_rng([seed, 11])
    T, B, I, H = S2["steps"], S2["batch"], S2["inputs"], S2["hidden"]
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    lengths = np.sort(rng.integers(T // 2, T + 1, B))[::-1].copy()
    lengths[0] = T
    rows = []
    for cls, fn in (("LSTM", F.lstm), ("GRU", F.gru)):
        layer = getattr(fastrnn, cls)(I, H, seed=seed).eval()
        weights = [getattr(layer, n).data for n in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")]
        t_layer = measure(lambda: layer(x), policy).median_s
        t_fn = measure(lambda: fn(x, *weights), policy).median_s
        rows.append((f"{cls} layer fwd S2 (overhead vs functional)", t_layer, t_fn, "functional"))

        deep = getattr(fastrnn, cls)(I, H, num_layers=2, bidirectional=True, seed=seed)
        dy = np.ones((T, B, 2 * H), np.float32)

        def fastrnn_fwd_bwd():
            y, _ = deep(x, lengths=lengths)
            deep.backward(dy)

        deep.eval()
        t_fwd = measure(lambda: deep(x, lengths=lengths), policy).median_s
        deep.train()
        t_fb = measure(fastrnn_fwd_bwd, policy).median_s
        if torch is None:
            rows += [(f"{cls} 2-layer bidir lengths fwd", t_fwd, None, "torch packed"),
                     (f"{cls} 2-layer bidir lengths fwd+bwd", t_fb, None, "torch packed")]
            continue
        ref = getattr(torch.nn, cls)(I, H, num_layers=2, bidirectional=True)
        ref.load_state_dict({k: torch.from_numpy(v) for k, v in deep.state_dict().items()})
        xt, lt = torch.from_numpy(x), torch.from_numpy(lengths)
        xg = xt.clone().requires_grad_()
        dyt = torch.from_numpy(dy)

        def torch_packed(inp):
            packed = torch.nn.utils.rnn.pack_padded_sequence(inp, lt, enforce_sorted=False)
            return torch.nn.utils.rnn.pad_packed_sequence(ref(packed)[0], total_length=T)[0]

        def torch_packed_fwd():
            with torch.no_grad():
                torch_packed(xt)

        def torch_packed_fwd_bwd():
            torch_packed(xg).backward(dyt)

        def torch_padded_fwd():
            with torch.no_grad():
                ref(xt)

        rows += [(f"{cls} 2-layer bidir lengths fwd", t_fwd, measure(torch_packed_fwd, policy).median_s,
                  "torch packed"),
                 (f"{cls} 2-layer bidir lengths fwd", t_fwd, measure(torch_padded_fwd, policy).median_s,
                  "torch padded (no lengths)"),
                 (f"{cls} 2-layer bidir lengths fwd+bwd", t_fb, measure(torch_packed_fwd_bwd, policy).median_s,
                  "torch packed")]
    return rows


def stream_rows(seed=0, calls=5000):
    """Rows (label, step_us, torch_cell_us) for Stream.step at B=1, I=16, H=64, float32."""
    torch = _torch()
    I, H = STREAM["inputs"], STREAM["hidden"]
    x = np.random.default_rng([seed, 12]).standard_normal((1, I)).astype(np.float32)
    rows = []
    for cls in ("LSTM", "GRU", "RNN"):
        stream = getattr(fastrnn, cls)(I, H, seed=seed).stream(1)
        ours = _median_us_per_call(stream.step, x, calls)
        theirs = None
        if torch is not None:
            cell = getattr(torch.nn, cls + "Cell")(I, H)
            xt = torch.from_numpy(x)
            with torch.no_grad():
                theirs = _median_us_per_call(cell, xt, calls)
        rows.append((f"{cls} stream step B=1 I=16 H=64", ours, theirs))
    return rows


def format_layer_section(layer, stream):
    lines = ["layers (S2 T=100 B=32 I=64 H=128 unless said; float32)",
             f"{'case':44s} {'fastrnn ms':>10s} {'other ms':>10s} {'ratio':>7s}  other",
             "-" * 100]
    for label, ours, other, other_label in layer:
        ratio = f"{other / ours:6.2f}x" if other else "      -"
        other_ms = f"{other * 1e3:10.3f}" if other else f"{'-':>10s}"
        lines.append(f"{label:44s} {ours * 1e3:10.3f} {other_ms} {ratio}  {other_label}")
    lines.append("ratio = other time / fastrnn time (above 1x: fastrnn is faster); for the overhead row,"
                 " below 1x means the layer costs more than the bare kernel call.")
    lines += ["", f"{'streaming':44s} {'step us':>10s} {'torch us':>10s} {'ratio':>7s}  torch cell, no_grad", "-" * 100]
    for label, ours, theirs in stream:
        ratio = f"{theirs / ours:6.2f}x" if theirs else "      -"
        theirs_us = f"{theirs:10.2f}" if theirs else f"{'-':>10s}"
        lines.append(f"{label:44s} {ours:10.2f} {theirs_us} {ratio}")
    return "\n".join(lines)
