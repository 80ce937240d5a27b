"""Data utilities: padding, batching (with length bucketing), time-series windows,
chronological splits and a standard scaler. NumPy only.

**Layout conventions.**

- :func:`pad_sequences` returns time-major ``(T, B, ...)`` by default, like the
  recurrent layers (``batch_first=True`` gives ``(B, T, ...)``).
- :class:`BatchIterator` takes **sample-first** arrays: every array has the samples on
  axis 0 (``(N, ...)``; sequences ``(N, T, ...)``, i.e. ``pad_sequences(...,
  batch_first=True)``). It yields batches sample-first too — ``(B, T_b, ...)``, for
  layers built with ``batch_first=True`` — or, with ``time_major=True``, its
  sequence arrays as ``(T_b, B, ...)`` for the layers' default layout.
- :func:`sliding_windows` and :func:`chronological_split` keep time on axis 0.
"""
import math

import numpy as np

from . import _validate as check

__all__ = ["pad_sequences", "lengths_to_mask", "BatchIterator", "sliding_windows", "chronological_split",
           "StandardScaler"]


# --------------------------------------------------------------------------- padding

def pad_sequences(seqs, dtype=None, padding_value=0, batch_first=False):
    """Stack variable-length sequences into one padded array.

    seqs: a non-empty list of arrays (T_i, F...) or (T_i,) — the same trailing shape,
    T_i >= 0. Returns ``(array, lengths)``: array (T, B, F...) with T = max T_i
    (``batch_first=True``: (B, T, F...)), positions past each sequence's length
    filled with ``padding_value``; lengths (B,) int64. ``dtype`` defaults to the
    sequences' common dtype (mixed dtypes raise ``TypeError``: pass ``dtype``).
    For targets of a padded cross-entropy use ``padding_value=-100`` (the default
    ``ignore_index``) or a mask from :func:`lengths_to_mask`.
    """
    if isinstance(seqs, np.ndarray) and seqs.dtype != object:
        seqs = list(seqs)
    if not isinstance(seqs, (list, tuple)):
        seqs = list(seqs)
    if not seqs:
        raise ValueError("seqs must hold at least one sequence")
    arrays = []
    for i, s in enumerate(seqs):
        try:
            a = np.asarray(s)
        except Exception as exc:
            raise TypeError(f"seqs[{i}] must be array-like, got {type(s).__name__}: {exc}") from None
        if a.ndim == 0:
            raise ValueError(f"seqs[{i}] must have a time axis (shape (T,) or (T, F...)), got a scalar")
        arrays.append(a)
    trailing = arrays[0].shape[1:]
    for i, a in enumerate(arrays):
        if a.shape[1:] != trailing:
            raise ValueError(f"every sequence must have the trailing shape {trailing} of seqs[0], "
                             f"seqs[{i}] has shape {a.shape}")
    if dtype is None:
        dtypes = {a.dtype for a in arrays}
        if len(dtypes) > 1:
            raise TypeError(f"the sequences have different dtypes {sorted(map(str, dtypes))}; pass dtype=... "
                            "(fastrnn never casts silently)")
        dtype = arrays[0].dtype
    dtype = np.dtype(dtype)
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    steps = int(lengths.max())
    out = np.full((len(arrays), steps) + trailing, padding_value, dtype=dtype)
    for i, a in enumerate(arrays):
        out[i, :a.shape[0]] = a
    if not batch_first:
        out = np.ascontiguousarray(np.swapaxes(out, 0, 1))
    return out, lengths


def lengths_to_mask(lengths, max_len=None, batch_first=False):
    """Boolean mask of valid steps: (T, B) (``batch_first``: (B, T)), True where ``t < lengths[b]``.

    ``max_len`` (an int, at least ``max(lengths)``) defaults to ``max(lengths)``. Use
    it as the ``mask`` of a loss on padded sequences."""
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.dtype == np.bool_ or not np.issubdtype(lengths.dtype, np.integer):
        raise TypeError(f"lengths must be a 1-D integer array, got shape {lengths.shape} and dtype {lengths.dtype}")
    if lengths.size and lengths.min() < 0:
        raise ValueError("lengths must be non-negative")
    longest = int(lengths.max()) if lengths.size else 0
    if max_len is None:
        steps = longest
    else:
        steps = check.positive_int("max_len", max_len, minimum=0)
        if steps < longest:
            raise ValueError(f"max_len must be at least max(lengths) = {longest}, got {steps}")
    mask = np.arange(steps)[None, :] < lengths[:, None]
    return mask if batch_first else np.ascontiguousarray(mask.T)


# --------------------------------------------------------------------------- batches

class BatchIterator:
    """Mini-batches over sample-first arrays, optionally shuffled and bucketed by length.

    ``BatchIterator(*arrays, batch_size, shuffle=True, seed=None, drop_last=False,
    lengths=None, bucket=False, bucket_pool=50, time_major=False, sequence_arrays=None)``

    arrays: one or more arrays (or array-likes) with the same number N of samples on
    axis 0, e.g. ``X (N, T, F)`` and ``y (N,)``. Iterating yields one tuple per batch
    with each array's rows for that batch (copies, in the same order as ``arrays``).
    Every ``iter()`` starts a new epoch.

    - ``shuffle``: a new order each epoch, drawn from ``np.random.default_rng(seed)``
      created once in the constructor — the same seed gives the same sequence of
      epochs. ``shuffle=False`` keeps the data order.
    - ``lengths`` (N,) ints: the valid length of each sample's sequence. Each batch
      of the *sequence arrays* is trimmed to its longest member along the time axis
      (axis 1 of the stored arrays) and the batch's lengths are **appended** as the
      last element of the tuple: ``(X_b, y_b, lengths_b)``.
    - ``sequence_arrays``: the positions (in ``arrays``) of the arrays holding
      sequences (N, T, ...). Default: with ``lengths``, every array with 2+ axes
      whose axis 1 is at least ``max(lengths)`` long (so per-sample targets (N,) or
      (N, K) with K < max length are not); without ``lengths``, every array with 3+
      axes. Pass it explicitly when that rule guesses wrong.
    - ``bucket=True`` (needs ``lengths``) groups samples of similar length to cut
      padding: the epoch's order is split into pools of ``bucket_pool`` batches,
      each pool sorted by length and cut into batches, then the batches are shuffled
      (when ``shuffle``). Without shuffle all samples are sorted by length.
    - ``time_major=True`` yields the sequence arrays as ``(T_b, B, ...)`` (the
      recurrent layers' default layout) instead of ``(B, T_b, ...)``.
    - ``drop_last``: skip the final incomplete batch (with ``bucket`` and ``shuffle``,
      the n mod batch_size samples left out are drawn at random each epoch, not the
      longest).

    ``len(iterator)`` is the number of batches per epoch; ``n_samples`` the number
    of samples.
    """

    def __init__(self, *arrays, batch_size, shuffle=True, seed=None, drop_last=False, lengths=None,
                 bucket=False, bucket_pool=50, time_major=False, sequence_arrays=None):
        if not arrays:
            raise ValueError("BatchIterator needs at least one array")
        self.arrays = []
        for i, a in enumerate(arrays):
            a = np.asarray(a)
            if a.ndim == 0:
                raise ValueError(f"arrays[{i}] must have a sample axis, got a scalar")
            self.arrays.append(a)
        n = self.arrays[0].shape[0]
        for i, a in enumerate(self.arrays):
            if a.shape[0] != n:
                raise ValueError(f"every array must have the same number of samples on axis 0: arrays[0] has {n}, "
                                 f"arrays[{i}] has shape {a.shape}")
        if n == 0:
            raise ValueError("the arrays hold no samples")
        self.n_samples = n
        self.batch_size = check.positive_int("batch_size", batch_size)
        self.shuffle = check.flag("shuffle", shuffle)
        self.drop_last = check.flag("drop_last", drop_last)
        self.bucket = check.flag("bucket", bucket)
        self.bucket_pool = check.positive_int("bucket_pool", bucket_pool)
        self.time_major = check.flag("time_major", time_major)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        if lengths is not None:
            lengths = np.asarray(lengths)
            if lengths.dtype == np.bool_ or not np.issubdtype(lengths.dtype, np.integer):
                raise TypeError(f"lengths must hold integers, got dtype {lengths.dtype}")
            if lengths.shape != (n,):
                raise ValueError(f"lengths must have shape (N,) = ({n},), got shape {lengths.shape}")
            if lengths.min() < 1:
                raise ValueError(f"lengths must be >= 1, got a minimum of {lengths.min()}")
            lengths = lengths.astype(np.int64)
        elif self.bucket:
            raise ValueError("bucket=True needs lengths")
        self.lengths = lengths
        if sequence_arrays is None:
            if lengths is not None:
                sequence_arrays = [i for i, a in enumerate(self.arrays) if a.ndim >= 2 and a.shape[1] >= lengths.max()]
            else:
                sequence_arrays = [i for i, a in enumerate(self.arrays) if a.ndim >= 3]
        self.sequence_arrays = sorted({int(i) for i in sequence_arrays})
        for i in self.sequence_arrays:
            if not 0 <= i < len(self.arrays):
                raise ValueError(f"sequence_arrays holds {i}, but there are {len(self.arrays)} arrays")
            a = self.arrays[i]
            if a.ndim < 2:
                raise ValueError(f"arrays[{i}] is listed as a sequence array but has shape {a.shape} "
                                 "(expected (N, T, ...))")
            if lengths is not None and a.shape[1] < lengths.max():
                raise ValueError(f"arrays[{i}] has {a.shape[1]} time steps on axis 1 but lengths go up to "
                                 f"{lengths.max()}; pass sequence_arrays=[...] if it is not a sequence array")

    def __len__(self):
        full, rest = divmod(self.n_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def _batches(self):
        """Index arrays of one epoch's batches (advances the generator when shuffling)."""
        n, size = self.n_samples, self.batch_size
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        if self.bucket:
            if self.shuffle:
                if self.drop_last:  # drop a random remainder now: after sorting it would be the longest
                    order = order[:n - n % size]
                pool = size * self.bucket_pool
                parts = [order[i:i + pool] for i in range(0, len(order), pool)]
                order = np.concatenate([p[np.argsort(self.lengths[p], kind="stable")] for p in parts])
            else:
                order = np.argsort(self.lengths, kind="stable")
        batches = [order[i:i + size] for i in range(0, n, size)]
        if self.drop_last and batches and len(batches[-1]) < size:
            batches.pop()
        if self.bucket and self.shuffle:
            batches = [batches[i] for i in self._rng.permutation(len(batches))]
        return batches

    def __iter__(self):
        sequences = set(self.sequence_arrays)
        for idx in self._batches():
            out = []
            limit = int(self.lengths[idx].max()) if self.lengths is not None else None
            for i, a in enumerate(self.arrays):
                b = a[idx]
                if i in sequences:
                    if limit is not None:
                        b = b[:, :limit]
                    if self.time_major:
                        b = np.ascontiguousarray(np.swapaxes(b, 0, 1))
                out.append(b)
            if self.lengths is not None:
                out.append(self.lengths[idx])
            yield tuple(out)

    def padding_fraction(self):
        """Fraction of padded (wasted) steps in one epoch's batches (draws an epoch order;
        needs ``lengths``). Bucketing lowers it."""
        if self.lengths is None:
            raise ValueError("padding_fraction needs lengths")
        padded = valid = 0
        for idx in self._batches():
            padded += len(idx) * int(self.lengths[idx].max())
            valid += int(self.lengths[idx].sum())
        return 1.0 - valid / padded


# --------------------------------------------------------------------------- time series

def sliding_windows(series, window, horizon=1, stride=1):
    """Input/target windows from a time series (time on axis 0).

    series (T,) or (T, F...). Window i covers inputs ``series[i*stride : i*stride +
    window]`` and targets the next ``horizon`` steps ``series[i*stride + window :
    i*stride + window + horizon]``. Returns ``(X, Y)``: X (N, window, F...), Y (N,
    horizon, F...) — (N, window) and (N, horizon) for a 1-D series — with
    ``N = (T - window - horizon) // stride + 1`` (copies, not views). Raises
    ``ValueError`` when the series is shorter than ``window + horizon``.
    """
    series = np.asarray(series)
    if series.ndim == 0:
        raise ValueError("series must have a time axis, got a scalar")
    window = check.positive_int("window", window)
    horizon = check.positive_int("horizon", horizon)
    stride = check.positive_int("stride", stride)
    steps = series.shape[0]
    if steps < window + horizon:
        raise ValueError(f"series has {steps} steps, fewer than window + horizon = {window + horizon}")
    n = (steps - window - horizon) // stride + 1
    starts = np.arange(n) * stride
    X = series[starts[:, None] + np.arange(window)[None, :]]
    Y = series[starts[:, None] + window + np.arange(horizon)[None, :]]
    return X, Y


def chronological_split(data, train=0.7, val=0.15, gap=0):
    """Split along time (axis 0) into consecutive train / validation / test parts.

    data: an int n (returns three ``slice`` objects over ``range(n)``) or an array
    (returns three views ``data[:a], data[a+gap:b], data[b+gap:]``). The parts keep
    their order and never interleave: everything in train precedes validation, which
    precedes test. Sizes: ``floor(n*train)`` and ``floor(n*val)`` (computed on the n
    after removing the gaps), test the rest (may be empty when ``train + val == 1``).
    ``gap`` samples are dropped between consecutive parts: when splitting the
    overlapping samples of :func:`sliding_windows`, ``gap = ceil((window + horizon - 1)
    / stride)`` ensures no series step appears in two parts (or split the series first
    and window each part).
    """
    if isinstance(data, (bool, np.bool_)):
        raise TypeError("data must be an int or an array, got a bool")
    is_count = isinstance(data, (int, np.integer))
    n = int(data) if is_count else np.asarray(data).shape[0] if np.ndim(data) else None
    if n is None:
        raise ValueError("data must have a time axis, got a scalar")
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    train = float(train)
    val = float(val)
    if not 0 < train <= 1 or not 0 <= val < 1 or train + val > 1 + 1e-12:
        raise ValueError(f"need 0 < train <= 1, 0 <= val < 1 and train + val <= 1, got train={train}, val={val}")
    gap = check.positive_int("gap", gap, 0)
    usable = n - 2 * gap
    if usable < 1:
        raise ValueError(f"{n} samples leave nothing to split with gap={gap}")
    n_train = math.floor(usable * train + 1e-9)
    n_val = math.floor(usable * val + 1e-9)
    if n_train < 1:
        raise ValueError(f"train fraction {train} of {usable} samples gives an empty training part")
    a = n_train
    b = a + gap + n_val
    parts = (slice(0, a), slice(a + gap, b), slice(b + gap, n))
    if is_count:
        return parts
    data = np.asarray(data)
    return tuple(data[p] for p in parts)


# --------------------------------------------------------------------------- scaling

class StandardScaler:
    """Per-feature standardisation ``(x - mean) / scale``, fitted on training data only.

    Features are on the **last axis**; statistics are taken over every other axis
    (so (N, F), (N, T, F) and (T, F) all work). ``scale`` is the population standard
    deviation (ddof=0), replaced by 1 where it is below ``eps`` (constant features map
    to 0 instead of dividing by ~0). Statistics are float64; ``transform`` and
    ``inverse_transform`` return the input's float dtype (integers give float64).

    Typical use: ``scaler = StandardScaler().fit(series[train]);
    z = scaler.transform(series)`` — validation and test are scaled with the training
    statistics, never their own.
    """

    def __init__(self, eps=1e-8):
        if not isinstance(eps, (int, float, np.integer, np.floating)) or isinstance(eps, bool) or eps < 0:
            raise ValueError(f"eps must be a non-negative number, got {eps!r}")
        self.eps = float(eps)
        self.mean_ = None
        self.scale_ = None

    @staticmethod
    def _array(name, x):
        x = np.asarray(x)
        if x.dtype.kind not in "iuf" or x.dtype == np.bool_:
            raise TypeError(f"{name} must be numeric, got dtype {x.dtype}")
        if x.ndim == 0:
            raise ValueError(f"{name} must have at least one axis (features last), got a scalar")
        return x

    def fit(self, x):
        """Compute the per-feature mean and scale of ``x`` (..., F); returns self."""
        x = self._array("x", x)
        if x.size == 0:
            raise ValueError("cannot fit a StandardScaler on an empty array")
        flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
        self.mean_ = flat.mean(axis=0)
        std = flat.std(axis=0)
        self.scale_ = np.where(std < self.eps, 1.0, std)
        return self

    def _check(self, x):
        if self.mean_ is None:
            raise RuntimeError("this StandardScaler is not fitted yet: call fit(train_data) first")
        x = self._array("x", x)
        if x.shape[-1] != self.mean_.shape[0]:
            raise ValueError(f"x has {x.shape[-1]} features on its last axis, the scaler was fitted on "
                             f"{self.mean_.shape[0]}")
        return x, (x.dtype if x.dtype.kind == "f" else np.dtype(np.float64))

    def transform(self, x):
        """``(x - mean) / scale``, in x's float dtype."""
        x, dtype = self._check(x)
        return ((x - self.mean_) / self.scale_).astype(dtype, copy=False)

    def inverse_transform(self, z):
        """``z * scale + mean``, in z's float dtype."""
        z, dtype = self._check(z)
        return (z * self.scale_ + self.mean_).astype(dtype, copy=False)

    def fit_transform(self, x):
        """``fit(x).transform(x)``."""
        return self.fit(x).transform(x)

    def state_dict(self):
        """``{"mean": ..., "scale": ..., "eps": ...}`` (copies), for saving."""
        if self.mean_ is None:
            raise RuntimeError("this StandardScaler is not fitted yet")
        return {"mean": self.mean_.copy(), "scale": self.scale_.copy(), "eps": self.eps}

    def load_state_dict(self, state):
        """Restore from :meth:`state_dict`."""
        mean, scale = np.asarray(state["mean"], np.float64), np.asarray(state["scale"], np.float64)
        if mean.ndim != 1 or mean.shape != scale.shape:
            raise ValueError(f"mean and scale must be 1-D of equal length, got {mean.shape} and {scale.shape}")
        self.mean_, self.scale_ = mean.copy(), scale.copy()
        self.eps = float(state.get("eps", self.eps))
        return self
