"""Sequential digits: scikit-learn's 8x8 digit images read row by row (8 time steps of
8 features) by a recurrent SequenceClassifier.

    python examples/digits.py [--quick] [--cell lstm|gru|rnn] [--epochs N]

Prints the test accuracy and the training wall time. Needs scikit-learn
(``pip install fastrnn[examples]``); the data ships inside it (no download).

On a busy shared machine, OPENBLAS_NUM_THREADS=1 can be many times faster (these
shapes are small; contended BLAS threads spin waiting for each other).
"""
import argparse
import time

import numpy as np

from fastrnn.data import BatchIterator
from fastrnn.losses import cross_entropy
from fastrnn.models import SequenceClassifier
from fastrnn.optim import Adam, CosineWithWarmup
from fastrnn.train import fit


def load(seed=0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)  # (N, 8, 8): 8 steps of 8 features
    X = (X - X.mean()) / X.std()
    return train_test_split(X, digits.target.astype(np.int64), test_size=0.25, random_state=seed,
                            stratify=digits.target)


def build(cell="gru", hidden_size=128, seed=0):
    return SequenceClassifier(10, input_size=8, hidden_size=hidden_size, cell=cell, bidirectional=True,
                              dropout=0.1, seed=seed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few epochs (for tests)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--cell", default="gru", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1)
    args = parser.parse_args(argv)
    epochs = args.epochs or (3 if args.quick else 30)

    X_train, X_test, y_train, y_test = load(args.seed)
    model = build(args.cell, args.hidden, args.seed)
    optimizer = Adam(model.parameters(), lr=args.lr)
    batches = BatchIterator(X_train, y_train, batch_size=args.batch_size, seed=args.seed)
    schedule = CosineWithWarmup(optimizer, warmup_steps=len(batches), total_steps=epochs * len(batches))
    start = time.perf_counter()
    history = fit(model, cross_entropy, optimizer, batches, epochs=epochs, scheduler=schedule,
                  scheduler_interval="step", verbose=args.verbose)
    train_time = time.perf_counter() - start
    accuracy = float((model.predict(X_test) == y_test).mean())
    print(f"digits: {args.cell} bidirectional H={args.hidden}, {epochs} epochs, batch {args.batch_size}: "
          f"test accuracy {accuracy:.4f} ({len(y_test)} images), training wall time {train_time:.1f} s "
          f"({train_time / epochs:.2f} s/epoch)")
    return {"accuracy": accuracy, "train_time": train_time, "history": history, "model": model}


if __name__ == "__main__":
    main()
