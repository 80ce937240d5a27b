"""Write the PyTorch conformance fixtures to tests/fixtures/ (run by hand).

    /work/venv/bin/python tests/make_torch_fixtures.py

For each cell (lstm, gru, rnn_tanh, rnn_relu), with and without lengths, draws
inputs with a fixed seed (T=5, B=3, I=4, H=6), runs torch.nn.LSTM/GRU/RNN in
float64 and stores inputs, outputs and autograd gradients as one small .npz.
LSTM and GRU are also stored in float32 (the float64 inputs cast to float32,
torch run in float32). See tests/torch_fixtures.py for the keys.
"""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_fixtures import CELLS, FIXTURE_DIR, make_inputs, run_torch  # noqa: E402

SHAPE = dict(T=5, B=3, I=4, H=6)


def write(name, cell, inp, dtype):
    res = run_torch(cell, inp, dtype=dtype)
    arrays = {k: v for k, v in {**inp, **res}.items() if v is not None}
    arrays["cell"] = np.array(cell)
    arrays["torch_version"] = np.array(torch.__version__)
    path = FIXTURE_DIR / f"{name}.npz"
    np.savez(path, **arrays)
    print(f"{path.name:28s} {path.stat().st_size:6d} bytes")


def main():
    torch.set_num_threads(1)
    FIXTURE_DIR.mkdir(exist_ok=True)
    for k, cell in enumerate(CELLS):
        for with_lengths in (False, True):
            name = cell + ("_lengths" if with_lengths else "")
            inp = make_inputs(cell, with_lengths=with_lengths, seed=1000 + 2 * k + with_lengths,
                              **SHAPE)
            write(name, cell, inp, torch.float64)
            if cell in ("lstm", "gru"):
                inp32 = {key: (v.astype(np.float32) if v is not None and v.dtype == np.float64
                               else v) for key, v in inp.items()}
                write(name + "_float32", cell, inp32, torch.float32)


if __name__ == "__main__":
    main()
