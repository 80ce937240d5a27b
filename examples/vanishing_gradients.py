"""Vanishing gradients on the adding problem: how far back dL/dh_t reaches in a
vanilla RNN (tanh), an LSTM and a GRU of the same hidden size.

The adding problem (Hochreiter & Schmidhuber 1997): inputs (T, B, 2) hold a random
value in [0, 1) and a 0/1 marker that is 1 at two steps (one in each half); the
target is the sum of the two marked values, read from the last step's hidden state
through a linear head (squared error). Only the last step carries a loss, so the
gradient must travel up to T steps back to learn anything.

Untrained layers with torch's default initialisation; the per-step norms
||dL/dh_t|| come from the fused backward's trace (fastrnn.diagnostics). Printed for
each cell: how many steps back the gradient stays above 1e-3 of its last-step value
and its average decay per step. By default a fourth line shows the LSTM with the
forget-gate bias set to 1 (fastrnn.init, Jozefowicz et al. 2015): at torch's
default init the forget gate sits near sigmoid(0) = 0.5, so an untrained LSTM's
cell path forgets about as fast as the tanh RNN's recurrence (whose Jacobian has a
spectral radius near 0.58 at this init); the bias of 1 opens the gate to ~0.73 and
the gradient reaches several times further. (The LSTM's long reach after training
comes from learning to hold the forget gate near 1.)

    python examples/vanishing_gradients.py [--quick] [--steps T] [--hidden H] [--out PNG]

Writes a log-scale plot to --out (default vanishing_gradients.png; matplotlib, from
the ``bench`` extra; skipped with a note when missing).
"""
import argparse

import numpy as np

import fastrnn
import fastrnn.init
from fastrnn.diagnostics import gradient_reach, layer_hidden_grad_norms, plot_gradient_flow

RATIO = 1e-3  # "reach": steps back while ||dL/dh_t|| >= RATIO * ||dL/dh_{T-1}||


def adding_problem(steps, batch, rng, dtype=np.float64):
    """Inputs (T, B, 2) and targets (B,) of the adding problem."""
    x = np.zeros((steps, batch, 2), dtype)
    x[:, :, 0] = rng.uniform(0, 1, (steps, batch))
    first = rng.integers(0, steps // 2, batch)
    second = rng.integers(steps // 2, steps, batch)
    rows = np.arange(batch)
    x[first, rows, 1] = 1
    x[second, rows, 1] = 1
    return x, x[first, rows, 0] + x[second, rows, 0]


def loss_gradient(h_last, target, w_out, b_out):
    """dL/dh_{T-1} (B, H) of L = mean_b (h_{T-1} w_out + b_out - target_b)^2 / 2."""
    error = h_last @ w_out + b_out - target
    return error[:, None] * w_out[None, :] / len(target)


def build_cells(hidden, seed, dtype, forget_bias):
    cells = {"rnn (tanh)": fastrnn.RNN(2, hidden, nonlinearity="tanh", dtype=dtype, seed=seed),
             "lstm": fastrnn.LSTM(2, hidden, dtype=dtype, seed=seed),
             "gru": fastrnn.GRU(2, hidden, dtype=dtype, seed=seed)}
    if forget_bias is not None:
        lstm = fastrnn.LSTM(2, hidden, dtype=dtype, seed=seed)
        fastrnn.init.initialize(lstm, "torch", forget_bias=forget_bias, seed=seed)
        cells[f"lstm (forget bias {forget_bias:g})"] = lstm
    return cells


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short sequences and a small batch (for tests)")
    parser.add_argument("--steps", type=int, default=None, help="sequence length T (default 200; 60 with --quick)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 32; 8 with --quick)")
    parser.add_argument("--hidden", type=int, default=None, help="hidden size (default 64; 32 with --quick)")
    parser.add_argument("--forget-bias", type=float, default=1.0, help="the extra LSTM's forget-gate bias")
    parser.add_argument("--no-forget-bias", action="store_true", help="leave out the forget-bias LSTM")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="vanishing_gradients.png", help="PNG path ('' for no plot)")
    args = parser.parse_args(argv)
    steps = args.steps or (60 if args.quick else 200)
    batch = args.batch or (8 if args.quick else 32)
    hidden = args.hidden or (32 if args.quick else 64)
    if steps < 2:
        parser.error("--steps must be at least 2")

    rng = np.random.default_rng(args.seed)
    dtype = np.float64  # float32 would underflow to 0 a few hundred steps back (0.5**200 ~ 6e-61)
    x, target = adding_problem(steps, batch, rng, dtype)
    bound = 1.0 / np.sqrt(hidden)  # torch's nn.Linear default init for the head
    w_out, b_out = rng.uniform(-bound, bound, hidden), rng.uniform(-bound, bound)

    print(f"adding problem: T={steps}, B={batch}, H={hidden}, torch-default init, loss on the last step")
    norms, reach = {}, {}
    for name, layer in build_cells(hidden, args.seed, dtype, None if args.no_forget_bias else args.forget_bias).items():
        y = layer.eval()(x)[0]
        dy = np.zeros_like(y)
        dy[-1] = loss_gradient(y[-1], target, w_out, b_out)
        norms[name] = layer_hidden_grad_norms(layer, x, dy=dy)
        reach[name] = gradient_reach(norms[name], RATIO)
        k = max(reach[name], 1)
        per_step = (norms[name][-1 - k] / norms[name][-1]) ** (1.0 / k)
        relative_first = norms[name][0] / norms[name][-1]
        print(f"  {name:24s} stays above {RATIO:g} of its last-step value for {reach[name]:3d} of {steps - 1} "
              f"steps back (x{per_step:.2f} per step; at t=0: {relative_first:.1e})")

    path = None
    if args.out:
        try:
            plot_gradient_flow(norms, args.out, threshold=RATIO,
                               title=f"adding problem, T={steps}, H={hidden}: gradient flow at initialisation")
            path = args.out
            print(f"plot written to {path}")
        except ImportError as error:
            print(f"no plot: {error}")
    return {"reach": reach, "norms": norms, "path": path, "steps": steps}


if __name__ == "__main__":
    main()
