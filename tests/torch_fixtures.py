"""PyTorch conformance fixtures: load the stored ones, or compute fresh ones live.

The ``.npz`` files in ``tests/fixtures/`` were written by
``tests/make_torch_fixtures.py`` from ``torch.nn.LSTM``/``GRU``/``RNN`` so the
conformance tests run where torch is not installed. Loading needs numpy only;
:func:`run_torch` (live comparison) imports torch lazily.

Each fixture is a dict (all arrays time-major, PyTorch weight layout, one layer,
one direction, ``G`` = 4 LSTM, 3 GRU, 1 RNN)::

    cell            str: "lstm", "gru", "rnn_tanh" or "rnn_relu"
    torch_version   str
    inputs   x (T, B, I), w_ih (G*H, I), w_hh (G*H, H), b_ih (G*H,), b_hh (G*H,),
             h0 (B, H), c0 (B, H) [lstm], lengths (B,) int64 or None,
             dy (T, B, H), dh_n (B, H), dc_n (B, H) [lstm]
    outputs  y (T, B, H) (zero at padded steps), h_n (B, H), c_n (B, H) [lstm]
    grads    of L = sum(dy*y) + sum(dh_n*h_n) (+ sum(dc_n*c_n)):
             dx, dh0, dc0 [lstm], dw_ih, dw_hh, db_ih, db_hh

Names are ``{cell}`` and ``{cell}_lengths`` for every cell, in float64, plus
``lstm_float32``, ``lstm_lengths_float32``, ``gru_float32``,
``gru_lengths_float32`` (inputs cast to float32, torch run in float32).

Usage::

    from torch_fixtures import fixture_names, load_fixture   # tests/ on sys.path
    for name in fixture_names():
        fx = load_fixture(name)
"""
from pathlib import Path

import numpy as np

FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures"

CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
INPUT_KEYS = ("x", "w_ih", "w_hh", "b_ih", "b_hh", "h0", "c0", "lengths", "dy", "dh_n", "dc_n")
OUTPUT_KEYS = ("y", "h_n", "c_n")
GRAD_KEYS = ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh")
_STR_KEYS = ("cell", "torch_version")
_N_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def fixture_names():
    """Sorted names of the stored single-layer fixtures (``layer_*`` files belong to
    tests/test_nn_recurrent.py)."""
    return sorted(p.stem for p in FIXTURE_DIR.glob("*.npz") if not p.stem.startswith("layer_"))


def load_fixture(name):
    """Load fixture ``name`` as a dict of arrays (see the module docstring).

    ``cell`` and ``torch_version`` come back as ``str``; ``lengths`` is None for
    the fixtures without lengths. Keys that do not apply to the cell (``c0``,
    ``dc_n``, ``c_n``, ``dc0`` for GRU/RNN) are absent.
    """
    path = FIXTURE_DIR / f"{name}.npz"
    if not path.exists():
        raise FileNotFoundError(f"no fixture {name!r} in {FIXTURE_DIR}; have {fixture_names()}")
    with np.load(path, allow_pickle=False) as data:
        out = {k: data[k] for k in data.files}
    for k in _STR_KEYS:
        out[k] = str(out[k])
    out.setdefault("lengths", None)
    return out


def make_inputs(cell, T=5, B=3, I=4, H=6, with_lengths=False, seed=0, dtype=np.float64,
                bias=True):
    """Random inputs for ``cell`` drawn from ``np.random.default_rng(seed)``.

    Values are uniform in (-1, 1) (weights scaled by 1/sqrt(H) * 1.5, so the
    nonlinearities are exercised), never zeros. With ``with_lengths`` the
    lengths are unsorted and include both 1 and T (B >= 2). ``dy`` is random at
    padded steps too, to check it has no effect. ``bias=False`` gives None
    biases. Returns a dict keyed like :data:`INPUT_KEYS` (absent for keys that
    do not apply).
    """
    rng = np.random.default_rng(seed)
    G = _N_GATES[cell] * H
    scale = 1.5 / np.sqrt(H)

    def u(*shape, s=1.0):
        return (rng.uniform(-1, 1, size=shape) * s).astype(dtype)

    inp = {
        "x": u(T, B, I),
        "w_ih": u(G, I, s=scale),
        "w_hh": u(G, H, s=scale),
        "b_ih": u(G, s=0.5) if bias else None,
        "b_hh": u(G, s=0.5) if bias else None,
        "h0": u(B, H),
        "dy": u(T, B, H),
        "dh_n": u(B, H),
        "lengths": None,
    }
    if cell == "lstm":
        inp["c0"] = u(B, H)
        inp["dc_n"] = u(B, H)
    if with_lengths:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[0], lengths[-1] = 1, T            # always include both extremes
        inp["lengths"] = rng.permutation(lengths).astype(np.int64)
    return inp


def run_torch(cell, inp, dtype=None):
    """Run torch's ``nn.LSTM``/``GRU``/``RNN`` on ``inp`` (see :func:`make_inputs`).

    ``dtype`` is a torch dtype (default: torch's equivalent of ``inp["x"]``).
    With lengths the input goes through ``pack_padded_sequence
    (enforce_sorted=False)`` and ``pad_packed_sequence(total_length=T)``.
    Returns a dict of numpy arrays: the outputs and gradients of
    :data:`OUTPUT_KEYS` and :data:`GRAD_KEYS` (db_* None without bias).
    """
    import torch
    from torch import nn

    if dtype is None:
        dtype = torch.from_numpy(np.asarray(inp["x"])).dtype
    T, B, I = inp["x"].shape
    H = inp["w_hh"].shape[1]
    bias = inp["b_ih"] is not None
    if cell == "lstm":
        mod = nn.LSTM(I, H, bias=bias)
    elif cell == "gru":
        mod = nn.GRU(I, H, bias=bias)
    else:
        mod = nn.RNN(I, H, bias=bias, nonlinearity=cell.split("_")[1])
    mod = mod.to(dtype)

    def t(a, grad=False):
        return torch.tensor(np.asarray(a), dtype=dtype, requires_grad=grad)

    with torch.no_grad():
        mod.weight_ih_l0.copy_(t(inp["w_ih"]))
        mod.weight_hh_l0.copy_(t(inp["w_hh"]))
        if bias:
            mod.bias_ih_l0.copy_(t(inp["b_ih"]))
            mod.bias_hh_l0.copy_(t(inp["b_hh"]))
    x = t(inp["x"], grad=True)
    h0 = t(inp["h0"][None], grad=True)                  # torch wants (layers, B, H)
    c0 = t(inp["c0"][None], grad=True) if cell == "lstm" else None
    hx = (h0, c0) if cell == "lstm" else h0

    if inp["lengths"] is None:
        y, state = mod(x, hx)
    else:
        lengths = torch.as_tensor(np.asarray(inp["lengths"]), dtype=torch.int64)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, state = mod(packed, hx)
        # with enforce_sorted=False torch permutes hx in and h_n out itself:
        # both are in the caller's batch order
        y, _ = nn.utils.rnn.pad_packed_sequence(out, total_length=T)
    h_n = state[0][0] if cell == "lstm" else state[0]
    loss = (y * t(inp["dy"])).sum() + (h_n * t(inp["dh_n"])).sum()
    if cell == "lstm":
        c_n = state[1][0]
        loss = loss + (c_n * t(inp["dc_n"])).sum()
    loss.backward()

    def n(a):
        return None if a is None else a.detach().numpy().copy()

    res = {
        "y": n(y), "h_n": n(h_n),
        "dx": n(x.grad), "dh0": n(h0.grad[0]),
        "dw_ih": n(mod.weight_ih_l0.grad), "dw_hh": n(mod.weight_hh_l0.grad),
        "db_ih": n(mod.bias_ih_l0.grad) if bias else None,
        "db_hh": n(mod.bias_hh_l0.grad) if bias else None,
    }
    if cell == "lstm":
        res["c_n"] = n(c_n)
        res["dc0"] = n(c0.grad[0])
    return res
