"""Write tests/fixtures/layer_*.npz from torch.nn.LSTM/GRU/RNN (run manually, needs torch).

Each file holds the layer's constructor arguments (JSON), its state_dict, inputs,
outputs and the gradients of inputs, initial states and every parameter, float64,
so tests/test_nn_recurrent.py checks torch conformance of the stacked,
bidirectional layers even where torch is not installed.

    python tests/make_layer_fixtures.py
"""
import json
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "fixtures"
CASES = {
    "layer_lstm_bi_proj": ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=3), True),
    "layer_gru_bi_batch_first": ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True), True),
    "layer_rnn_relu_3": ("RNN", dict(num_layers=3, nonlinearity="relu"), False),
}
T, B, I, H = 5, 3, 4, 6


def make(name, cls, kwargs, with_lengths, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    module = getattr(torch.nn, cls)(I, H, **kwargs).double()
    dirs = 2 if kwargs.get("bidirectional") else 1
    layers = kwargs.get("num_layers", 1)
    out = kwargs.get("proj_size", 0) or H
    batch_first = kwargs.get("batch_first", False)
    x = rng.uniform(-1, 1, (B, T, I) if batch_first else (T, B, I))
    widths = [out, H] if cls == "LSTM" else [out]
    h0 = [rng.uniform(-1, 1, (layers * dirs, B, w)) for w in widths]
    lengths = np.array([5, 2, 4]) if with_lengths else None
    xt = torch.tensor(x, requires_grad=True)
    states = [torch.tensor(s, requires_grad=True) for s in h0]
    inp = xt if lengths is None else torch.nn.utils.rnn.pack_padded_sequence(
        xt, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
    y, final = module(inp, tuple(states) if cls == "LSTM" else states[0])
    if lengths is not None:
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=batch_first, total_length=T)
    finals = final if cls == "LSTM" else (final,)
    dy = rng.uniform(-1, 1, tuple(y.shape))
    d_finals = [rng.uniform(-1, 1, tuple(f.shape)) for f in finals]
    loss = (y * torch.tensor(dy)).sum() + sum((f * torch.tensor(d)).sum() for f, d in zip(finals, d_finals))
    loss.backward()
    arrays = {"x": x, "y": y.detach().numpy(), "dy": dy, "dx": xt.grad.numpy()}
    if lengths is not None:
        arrays["lengths"] = lengths
    for k, (s, f, d) in enumerate(zip(states, finals, d_finals)):
        arrays.update({f"state{k}": s.detach().numpy(), f"final{k}": f.detach().numpy(),
                       f"dfinal{k}": d, f"dstate{k}": s.grad.numpy()})
    for pname, p in module.named_parameters():
        arrays[f"param.{pname}"] = p.detach().numpy()
        arrays[f"grad.{pname}"] = p.grad.numpy()
    meta = json.dumps({"class": cls, "kwargs": kwargs, "torch_version": torch.__version__})
    np.savez_compressed(OUT / f"{name}.npz", meta=np.array(meta), **arrays)


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for seed, (name, (cls, kwargs, with_lengths)) in enumerate(CASES.items()):
        make(name, cls, kwargs, with_lengths, seed)
        print("wrote", name)
