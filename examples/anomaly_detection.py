"""Anomaly detection on Mauna Loa CO2 (weekly, 1958-2001; statsmodels' bundled
``co2`` data set) with a :class:`fastrnn.models.SequenceAutoencoder`.

The series is detrended (quadratic least-squares fit) and standardised; then
anomalies are injected at seeded random places: single-step spikes, short level
shifts and short noise bursts. The autoencoder is trained on one-year windows of
the *contaminated* series (unsupervised: it never sees the labels) and every week
is scored by its mean squared reconstruction error over the windows covering it.
The k highest-scoring weeks (k = number of injected anomalous weeks) are compared
with the truth, next to three baselines that use no training: a random ranking
(its expected value), the |z-score| of the standardised series, and the distance
to the same week one year before and after (seasonal-naive).

    python examples/anomaly_detection.py [--quick] [--epochs N] [--models N] [--seed S]

Prints, for each method, precision@k and recall@k (equal, since k is the number
of anomalous weeks), the share of injected events with at least one week in the
top k, and the average precision of the whole ranking. Needs statsmodels
(``pip install fastrnn[examples]``).

Training runs with one BLAS thread when threadpoolctl is installed: these shapes
are small, and on a busy machine contended BLAS threads spin waiting for each
other (many times slower); one thread also keeps the scores independent of the core count.
Without threadpoolctl, OPENBLAS_NUM_THREADS=1 does the same.
"""
import argparse
import contextlib
import time

import numpy as np

from fastrnn.data import BatchIterator
from fastrnn.losses import mse
from fastrnn.models import SequenceAutoencoder, fold_scores, make_windows
from fastrnn.optim import Adam
from fastrnn.train import fit

PERIOD = 52  # weeks in a year: the seasonal cycle, and the window length
MARGIN = 20  # weeks kept clear around each injected event, so events never touch


def load():
    """Weekly CO2 (ppm) as float64 (T,), its 59 missing weeks linearly interpolated."""
    from statsmodels.datasets import co2
    values = co2.load_pandas().data["co2"].to_numpy(dtype=np.float64)
    t = np.arange(len(values))
    known = ~np.isnan(values)
    return np.interp(t, t[known], values[known])


def normalize(series):
    """Remove a quadratic trend (least squares) and standardise the rest: the seasonal
    cycle plus noise, with mean 0 and std 1."""
    t = np.linspace(-1.0, 1.0, len(series))  # a centred time axis keeps the fit well conditioned
    residual = series - np.polyval(np.polyfit(t, series, 2), t)
    return (residual - residual.mean()) / residual.std()


# --------------------------------------------------------------------------- injected anomalies

def _free_start(taken, length, rng):
    """A random start whose event (plus MARGIN) overlaps no earlier one, a year away from both ends."""
    for _ in range(10_000):
        start = int(rng.integers(PERIOD, len(taken) - PERIOD - length))
        span = slice(start - MARGIN, start + length + MARGIN)
        if not taken[span].any():
            taken[span] = True
            return start
    raise RuntimeError("no room left for another anomaly: inject fewer or shorter ones")


def inject(z, rng, spikes=10, shifts=4, bursts=4, length=10):
    """A copy of z with anomalies added, in units of z's standard deviation.

    Spikes: one week of +-U(1.5, 3). Level shifts: ``length`` weeks offset by
    +-U(1, 1.5). Noise bursts: ``length`` weeks plus N(0, 0.8^2) noise. These sizes
    are comparable to the seasonal swing (about +-1.4), so the anomalies hide
    inside the normal range of values. Returns ``(x, labels, events)``: labels (T,)
    bool, events a list of ``(kind, start, stop)``."""
    x, labels = z.copy(), np.zeros(len(z), bool)
    taken = np.zeros(len(z), bool)
    events = []
    plan = [("spike", 1)] * spikes + [("level shift", length)] * shifts + [("noise burst", length)] * bursts
    for kind, size in plan:
        start = _free_start(taken, size, rng)
        span = slice(start, start + size)
        if kind == "noise burst":
            x[span] += rng.normal(0.0, 0.8, size)
        else:
            low, high = (1.5, 3.0) if kind == "spike" else (1.0, 1.5)
            x[span] += rng.choice([-1.0, 1.0]) * rng.uniform(low, high)
        labels[span] = True
        events.append((kind, start, start + size))
    return x, labels, events


# --------------------------------------------------------------------------- scores and metrics

def ranking_metrics(scores, labels, events):
    """precision@k, recall@k (k = number of anomalous steps), the share of events with a
    step in the top k, and average precision (mean precision at each anomalous step's rank)."""
    k = int(labels.sum())
    order = np.argsort(-scores, kind="stable")
    top = np.zeros(len(scores), bool)
    top[order[:k]] = True
    hits = labels[order]
    precision_at_rank = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return {"precision": float(labels[top].mean()), "recall": float(top[labels].mean()),
            "events": float(np.mean([top[a:b].any() for _, a, b in events])),
            "ap": float(precision_at_rank[hits].mean())}


def random_metrics(labels, events):
    """The expected metrics of a uniformly random ranking: exact (no sampling) for precision,
    recall and events hit; its average precision is close to the anomaly rate."""
    n, k = len(labels), int(labels.sum())
    rate = k / n

    def p_found(length):  # 1 - P(none of the event's steps among the k drawn)
        return 1.0 - np.prod([(n - k - i) / (n - i) for i in range(length)])

    # k random steps catch k * rate anomalous ones on average: precision rate, recall k / n
    return {"precision": rate, "recall": k / n, "events": float(np.mean([p_found(b - a) for _, a, b in events])),
            "ap": rate}


def zscore_scores(x):
    """|x_t - mean| / std: how far each value lies from the bulk of the series."""
    return np.abs(x - x.mean()) / x.std()


def seasonal_scores(x):
    """|x_t - mean(x_{t-P}, x_{t+P})|: distance to the same week a year before and after
    (one side only in the first and last year)."""
    before = np.concatenate([x[PERIOD:2 * PERIOD], x[:-PERIOD]])
    after = np.concatenate([x[PERIOD:], x[-2 * PERIOD:-PERIOD]])
    return np.abs(x - 0.5 * (before + after))


def autoencoder_scores(x, args, seed):
    """Train one autoencoder on the windows of x; per-step scores (T,), the history and the model."""
    windows = make_windows(x.astype(np.float32), args.window)                    # (N, W)
    train = windows[::args.train_stride]  # neighbouring windows overlap almost entirely: a stride loses little
    model = SequenceAutoencoder(input_size=1, hidden_size=args.hidden, seed=seed)
    optimizer = Adam(model.parameters(), lr=args.lr)
    history = fit(model, mse, optimizer, BatchIterator(train, train, batch_size=32, seed=seed),
                  epochs=args.epochs, verbose=args.verbose)
    errors = model.anomaly_scores(windows, per_step=True)                         # (N, W)
    return fold_scores(errors, len(x), args.window), history, model


# --------------------------------------------------------------------------- main

def _one_blas_thread():
    """A context limiting BLAS to one thread (a no-op without threadpoolctl)."""
    try:
        import scipy.linalg  # noqa: F401  (loads the OpenBLAS that fastrnn's kernels call)
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one small model, few epochs (for tests)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--models", type=int, default=None, help="ensemble size (scores averaged over seeds)")
    parser.add_argument("--window", type=int, default=PERIOD)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--train-stride", type=int, default=None, help="use every n-th window for training")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0, help="anomaly placement and model seeds")
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)
    args.epochs = args.epochs or (20 if args.quick else 30)
    args.models = args.models or (1 if args.quick else 3)
    args.train_stride = args.train_stride or (3 if args.quick else 2)
    return args


def _report(results, k, n, n_events, train_time, args):
    print(f"co2 anomalies: {n} weeks, {n_events} injected events ({k} anomalous weeks), top k = {k}")
    print(f"autoencoder: {args.models} x LSTM H={args.hidden}, window {args.window}, {args.epochs} epochs; "
          f"training and scoring {train_time:.1f} s")
    print(f"  {'method':<38} {'precision@k':>11} {'recall@k':>9} {'events hit':>10} {'avg prec':>9}")
    for name, m in results.items():
        print(f"  {name:<38} {m['precision']:>11.3f} {m['recall']:>9.3f} {m['events']:>10.3f} {m['ap']:>9.3f}")


def main(argv=None):
    args = _parse(argv)
    rng = np.random.default_rng(args.seed)
    x, labels, events = inject(normalize(load()), rng)

    start = time.perf_counter()
    with _one_blas_thread():
        runs = [autoencoder_scores(x, args, args.seed + m) for m in range(args.models)]
    train_time = time.perf_counter() - start
    scores = np.mean([r[0] for r in runs], axis=0)

    results = {
        "autoencoder (reconstruction error)": ranking_metrics(scores, labels, events),
        "random ranking (expected)": random_metrics(labels, events),
        "|z-score|": ranking_metrics(zscore_scores(x), labels, events),
        "seasonal-naive (|x - same week +-1y|)": ranking_metrics(seasonal_scores(x), labels, events),
    }
    _report(results, int(labels.sum()), len(x), len(events), train_time, args)
    names = ["autoencoder", "random", "zscore", "seasonal"]
    return {**dict(zip(names, results.values())), "scores": scores, "labels": labels, "events": events,
            "train_time": train_time, "history": runs[0][1], "model": runs[0][2]}


if __name__ == "__main__":
    main()
