"""Variant section of the benchmark report (``python -m fastrnn.bench``).

Forward+backward at S2 (T=100, B=32, I=64, H=128, float32) of every cell variant
of ``fastrnn.functional.lstm``/``gru`` against the plain fused kernel (issue target:
each within 1.3x), and the layer-norm LSTM against ``torch.nn.LSTM`` (plain, fused
oneDNN) and against the layer-norm LSTM a torch user writes: a Python loop over
time steps with ``torch.nn.LayerNorm`` (:class:`TorchLayerNormLSTM`, input side
projected and normalized for all steps at once).

fastrnn's cases are measured round-robin (one call of each case per round, medians
over the rounds), so that load changes on a shared machine hit every case alike.
torch's cases are measured apart, after a pause (``bench.SETTLE_S``): OpenBLAS's
worker threads spin for up to ~0.1 s after fastrnn's last GEMM and would steal a core
from torch if its calls were interleaved with fastrnn's.
"""
import time

import numpy as np

from fastrnn import functional as F

S2 = dict(steps=100, batch=32, inputs=64, hidden=128)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def variant_cases(cell, steps, batch, inputs, hidden, seed=0, dtype=np.float32):
    """{name: (weights, keywords)} for :func:`fastrnn.functional.lstm`/``gru`` at one size.

    Masks are drawn as a layer draws them in training (keep 0.75; zoneout p = 0.1).
    """
    rng = np.random.default_rng([seed, 21])
    gates = 4 if cell == "lstm" else 3

    def weights(g):
        bound = 1.0 / np.sqrt(hidden)
        shapes = ((g * hidden, inputs), (g * hidden, hidden), (g * hidden,), (g * hidden,))
        return tuple(rng.uniform(-bound, bound, s).astype(dtype) for s in shapes)

    def keep(*shape):
        return ((rng.random(shape) < 0.75) / 0.75).astype(dtype)

    def zone():
        return (rng.random((steps, batch, hidden)) < 0.1).astype(dtype)

    plain = weights(gates)
    width = gates * hidden
    ln = (np.ones(width, dtype), np.ones(width, dtype)) + ((np.ones(hidden, dtype), np.zeros(hidden, dtype))
                                                          if cell == "lstm" else ())
    cases = {"plain": (plain, {}),
             "layer_norm": (plain, dict(layer_norm=ln)),
             "recurrent_dropout": (plain, dict(recurrent_mask=keep(batch, hidden))),
             "input_dropout+dropconnect": (plain, dict(input_mask=keep(batch, inputs),
                                                       weight_hh_mask=keep(width, hidden)))}
    if cell == "lstm":
        peep = tuple(rng.uniform(-0.1, 0.1, hidden).astype(dtype) for _ in range(3))
        coupled = weights(3)
        cases.update({
            "peephole": (plain, dict(peephole=peep)),
            "coupled_gates": (coupled, dict(coupled=True)),
            "cell_clip": (plain, dict(cell_clip=3.0)),
            "zoneout": (plain, dict(zoneout_h=zone(), zoneout_c=zone())),
            "all": (coupled, dict(coupled=True, peephole=(None,) + peep[1:], cell_clip=3.0,
                                  layer_norm=(np.ones(3 * hidden, dtype), np.ones(3 * hidden, dtype)) + ln[2:],
                                  recurrent_mask=keep(batch, hidden), zoneout_h=zone(), zoneout_c=zone()))})
    else:
        cases.update({"zoneout": (plain, dict(zoneout_h=zone())),
                      "all": (plain, dict(layer_norm=ln, recurrent_mask=keep(batch, hidden), zoneout_h=zone()))})
    return cases


def fused_fwd_bwd(cell, x, dy, weights, keywords):
    """A callable running one training forward and its backward."""
    forward, backward = (F.lstm, F.lstm_backward) if cell == "lstm" else (F.gru, F.gru_backward)

    def run():
        ctx = forward(x, *weights, training=True, **keywords)[-1]
        backward(ctx, dy)
    return run


class TorchLayerNormLSTM:
    """The layer-norm LSTM of fastrnn (reference.lstm_variants) written with torch ops:
    a Python loop over time steps, LayerNorm on the recurrent pre-activation and the
    cell every step; the input side projected and normalized for all steps at once.
    Built from fastrnn's parameters so that both compute the same function."""

    def __init__(self, torch, w_ih, w_hh, b_ih, b_hh, ln):
        self.torch = torch
        hidden = w_hh.shape[1]
        g_ih, g_hh, g_c, b_c = ln
        t = lambda a: torch.tensor(a, requires_grad=True)  # noqa: E731
        self.w_ih, self.w_hh = t(w_ih), t(w_hh)
        dtype = self.w_ih.dtype
        self.norm_ih = torch.nn.LayerNorm(4 * hidden, eps=1e-5, dtype=dtype)
        self.norm_hh = torch.nn.LayerNorm(4 * hidden, eps=1e-5, dtype=dtype)
        self.norm_c = torch.nn.LayerNorm(hidden, eps=1e-5, dtype=dtype)
        with torch.no_grad():
            for norm, gain, bias in ((self.norm_ih, g_ih, b_ih), (self.norm_hh, g_hh, b_hh), (self.norm_c, g_c, b_c)):
                norm.weight.copy_(torch.from_numpy(gain))
                norm.bias.copy_(torch.from_numpy(bias))
        self.hidden = hidden

    def __call__(self, x):
        torch, hidden = self.torch, self.hidden
        steps, batch, _ = x.shape
        a_ih = self.norm_ih(x @ self.w_ih.T)
        h = x.new_zeros(batch, hidden)
        c = x.new_zeros(batch, hidden)
        ys = []
        for t in range(steps):
            a = a_ih[t] + self.norm_hh(h @ self.w_hh.T)
            i, f, g, o = a.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(self.norm_c(c))
            ys.append(h)
        return torch.stack(ys)


def _round_robin(callables, rounds, settle_s):
    """Median seconds per callable, timing one call of each per round after a warm-up."""
    for fn in callables.values():
        fn()
    samples = {name: [] for name in callables}
    for _ in range(rounds):
        for name, fn in callables.items():
            time.sleep(settle_s)
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: float(np.median(v)) for name, v in samples.items()}


def variant_rows(rounds=15, seed=0, settle_s=0.02, size=S2):
    """Rows (cell, variant, fastrnn_s, plain_s) at ``size`` (default S2), plus torch rows
    (label, fastrnn layer-norm LSTM s, torch s) when torch is installed. Seconds, medians."""
    T, B, I, H = size["steps"], size["batch"], size["inputs"], size["hidden"]
    rng = np.random.default_rng([seed, 22])
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    rows, torch_rows = [], []
    for cell in ("lstm", "gru"):
        cases = variant_cases(cell, T, B, I, H, seed)
        runners = {name: fused_fwd_bwd(cell, x, dy, w, kw) for name, (w, kw) in cases.items()}
        times = _round_robin(runners, rounds, settle_s)
        for name in cases:
            rows.append((cell, name, times[name], times["plain"]))
        torch = _torch() if cell == "lstm" else None
        if torch is not None:
            from .bench import SETTLE_S
            (w_ih, w_hh, b_ih, b_hh), keywords = cases["layer_norm"]
            xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
            loop = TorchLayerNormLSTM(torch, w_ih, w_hh, b_ih, b_hh, keywords["layer_norm"])
            fused = torch.nn.LSTM(I, H)
            xg = xt.clone().requires_grad_()
            time.sleep(SETTLE_S)
            times.update(_round_robin({"torch.nn.LSTM": lambda: fused(xg)[0].backward(dyt),
                                       "torch layer-norm loop": lambda: loop(xg).backward(dyt)},
                                      rounds, settle_s))
            torch_rows += [("layer-norm LSTM vs torch.nn.LSTM (plain, oneDNN)", times["layer_norm"],
                            times["torch.nn.LSTM"]),
                           ("layer-norm LSTM vs torch layer-norm LSTM loop", times["layer_norm"],
                            times["torch layer-norm loop"])]
    return rows, torch_rows


def format_variant_section(rows, torch_rows):
    lines = ["variants (S2 T=100 B=32 I=64 H=128, float32, forward+backward, round-robin medians)",
             f"{'cell':5s} {'variant':26s} {'ms':>8s} {'plain ms':>9s} {'ratio':>6s}"]
    for cell, name, ms, plain in rows:
        lines.append(f"{cell:5s} {name:26s} {ms * 1e3:8.2f} {plain * 1e3:9.2f} {ms / plain:5.2f}x")
    if torch_rows:
        lines.append(f"{'case':50s} {'fastrnn ms':>10s} {'torch ms':>9s} {'speedup':>8s}")
        for label, ours, theirs in torch_rows:
            lines.append(f"{label:50s} {ours * 1e3:10.2f} {theirs * 1e3:9.2f} {theirs / ours:7.2f}x")
    lines.append("ratio: variant time / plain fused kernel time (issue target <= 1.3x); speedup: torch / fastrnn.")
    return "\n".join(lines)
