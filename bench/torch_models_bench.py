"""The digits example's model and training budget in fastrnn and in PyTorch.

Run ``python bench/torch_models_bench.py [--epochs 5] [--threads 2] [--cell gru]``.
Both sides train the same model as ``examples/digits.py`` — a bidirectional
GRU (input 8, hidden 128) over the 8 rows of each 8x8 digit, the last state of each
direction concatenated, dropout 0.1, a Linear to 10 classes — with Adam (lr 3e-3),
batch size 32 and cross-entropy, on the same training split, the same batch order
and the same initial weights (copied from the fastrnn model into torch). Epochs
alternate between the two implementations so a change in machine load hits both.
Prints seconds per epoch (median) for each, the ratio torch / fastrnn (> 1 means
fastrnn is faster) and each side's test accuracy after training. Every library gets
the same thread count (torch.set_num_threads, threadpoolctl for the OpenBLAS that
fastrnn's kernels call). Needs torch and scikit-learn.
"""
import os
import sys

for _name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # they halve OpenBLAS GEMM speed on some machines
    os.environ.pop(_name, None)

import argparse
import pathlib
import statistics
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "examples"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cell", default="gru", choices=["gru", "lstm", "rnn"])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def torch_model(torch, cell, hidden, classes=10):
    nn = torch.nn
    layer = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}[cell]

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = layer(8, hidden, batch_first=True, bidirectional=True)
            self.dropout = nn.Dropout(0.1)
            self.head = nn.Linear(2 * hidden, classes)

        def forward(self, x):
            _, state = self.rnn(x)
            h = state[0] if cell == "lstm" else state
            return self.head(self.dropout(torch.cat([h[-2], h[-1]], dim=1)))

    return Classifier()


def main(argv=None):
    args = parse_args(argv)
    import digits
    import torch

    from fastrnn.bench import limit_threads
    from fastrnn.losses import cross_entropy
    from fastrnn.optim import Adam

    limiter = limit_threads(args.threads)
    X_train, X_test, y_train, y_test = digits.load(args.seed)
    ours = digits.build(args.cell, args.hidden, args.seed)
    theirs = torch_model(torch, args.cell, args.hidden)
    with torch.no_grad():  # same initial weights
        for name, value in ours.state_dict().items():
            theirs.state_dict()[name].copy_(torch.from_numpy(np.array(value)))
    opt_ours = Adam(ours.parameters(), lr=args.lr)
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=args.lr)
    loss_theirs = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed)
    X_t, y_t = torch.from_numpy(X_train), torch.from_numpy(y_train)

    def epoch_ours(order):
        ours.train()
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            opt_ours.zero_grad()
            _, grad = cross_entropy(ours(X_train[idx]), y_train[idx])
            ours.backward(grad)
            opt_ours.step()

    def epoch_theirs(order):
        theirs.train()
        order = torch.from_numpy(order)
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            opt_theirs.zero_grad()
            loss = loss_theirs(theirs(X_t[idx]), y_t[idx])
            loss.backward()
            opt_theirs.step()

    # warm-up (compilation, allocator) on a few batches, not timed
    warm = rng.permutation(len(X_train))[:4 * args.batch_size]
    epoch_ours(warm)
    epoch_theirs(warm)
    times = {"fastrnn": [], "torch": []}
    for _ in range(args.epochs):
        order = rng.permutation(len(X_train))
        for name, run in (("fastrnn", epoch_ours), ("torch", epoch_theirs)):
            start = time.perf_counter()
            run(order)
            times[name].append(time.perf_counter() - start)

    acc_ours = float((ours.predict(X_test) == y_test).mean())
    theirs.eval()
    with torch.no_grad():
        acc_theirs = float((theirs(torch.from_numpy(X_test)).argmax(1).numpy() == y_test).mean())
    t_ours, t_theirs = statistics.median(times["fastrnn"]), statistics.median(times["torch"])
    print("digits model training: fastrnn vs PyTorch")
    print(f"  bidirectional {args.cell.upper()} 8->{args.hidden}, Linear {2 * args.hidden}->10, Adam lr {args.lr}, "
          f"batch {args.batch_size}, {len(X_train)} training images, {args.epochs} timed epochs")
    print(f"  torch {torch.__version__}, threads {args.threads} (threadpoolctl "
          f"{'on' if limiter is not None else 'UNAVAILABLE'}), load average {os.getloadavg()}")
    print(f"  fastrnn: {t_ours:.3f} s/epoch (median), test accuracy {acc_ours:.4f}")
    print(f"  torch:   {t_theirs:.3f} s/epoch (median), test accuracy {acc_theirs:.4f}")
    print(f"  ratio torch / fastrnn: {t_theirs / t_ours:.2f}x")
    return {"fastrnn": t_ours, "torch": t_theirs, "ratio": t_theirs / t_ours}


if __name__ == "__main__":
    main()
