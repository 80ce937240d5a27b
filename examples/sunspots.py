"""Sunspots: yearly sunspot numbers 1700-2008 (statsmodels' bundled data set) ->
a recurrent Forecaster predicting next year's value from the last ``--window``
years, compared with the persistence (last value) and seasonal-naive (value one
11-year solar cycle earlier) baselines on the last 15% of the series.

    python examples/sunspots.py [--quick] [--cell gru|lstm|rnn] [--epochs N]

Prints the test MAE of each, the improvement over the better baseline, and the
training wall time. Needs statsmodels (``pip install fastrnn[examples]``).

On a busy shared machine, OPENBLAS_NUM_THREADS=1 can be many times faster (these
shapes are small; contended BLAS threads spin waiting for each other).
"""
import argparse
import time

import numpy as np

from fastrnn.data import BatchIterator, StandardScaler, sliding_windows
from fastrnn.losses import mse
from fastrnn.models import Forecaster
from fastrnn.optim import Adam
from fastrnn.train import fit

SEASON = 11  # years in a solar cycle


def load():
    from statsmodels.datasets import sunspots
    return sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float64)


def splits(n_steps, train=0.7, val=0.15):
    """Indices where validation and test targets begin (targets of windows, chronological)."""
    return int(n_steps * train), int(n_steps * (train + val))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few epochs (for tests)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--window", type=int, default=24)
    parser.add_argument("--cell", default="gru", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=None, help="ensemble size (models with different seeds)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = args.epochs or (30 if args.quick else 300)
    n_models = args.seeds or (1 if args.quick else 3)

    series = load()
    val_start, test_start = splits(len(series))
    # sqrt stabilises the variance of counts; the scaler is fitted on the training years only
    z = np.sqrt(series)
    scaler = StandardScaler().fit(z[:val_start, None])
    z = scaler.transform(z[:, None])[:, 0].astype(np.float32)
    X, Y = sliding_windows(z, args.window, horizon=1)          # X (N, W), Y (N, 1)
    target_index = np.arange(len(X)) + args.window             # series index of each window's target
    train = target_index < val_start
    val = (target_index >= val_start) & (target_index < test_start)
    test = target_index >= test_start

    def to_counts(values):
        return np.square(scaler.inverse_transform(np.asarray(values, np.float64).reshape(-1, 1))[:, 0])

    start = time.perf_counter()
    preds, histories = [], []
    for k in range(n_models):
        model = Forecaster(1, args.hidden, horizon=1, cell=args.cell, seed=args.seed + k)
        optimizer = Adam(model.parameters(), lr=args.lr)
        batches = BatchIterator(X[train], Y[train], batch_size=32, seed=args.seed + k)
        history = fit(model, mse, optimizer, batches, val_data=[(X[val], Y[val])], epochs=epochs,
                      patience=None if args.quick else 60, restore_best_weights=True, verbose=args.verbose)
        histories.append(history)
        preds.append(to_counts(model.predict(X[test])))
    train_time = time.perf_counter() - start

    truth = series[target_index[test]]
    forecast = np.mean(preds, axis=0)
    mae = float(np.abs(forecast - truth).mean())
    persistence = float(np.abs(series[target_index[test] - 1] - truth).mean())
    seasonal = float(np.abs(series[target_index[test] - SEASON] - truth).mean())
    best = min(persistence, seasonal)
    improvement = 1.0 - mae / best
    print(f"sunspots: {len(truth)} test years ({int(1700 + target_index[test][0])}-2008), window {args.window}, "
          f"{n_models} x {args.cell} H={args.hidden}: test MAE {mae:.2f}; persistence {persistence:.2f}, "
          f"seasonal-naive ({SEASON} y) {seasonal:.2f}; {100 * improvement:.1f}% better than the better "
          f"baseline; training wall time {train_time:.1f} s")
    return {"mae": mae, "persistence": persistence, "seasonal": seasonal, "improvement": improvement,
            "train_time": train_time, "history": histories[0], "model": model}


if __name__ == "__main__":
    main()
