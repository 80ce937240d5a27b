"""Data utilities: padding, batching and bucketing, windows, chronological splits, scaling."""
import numpy as np
import pytest

from fastrnn import data


def ragged(seed=0, n=40, features=3, low=1, high=30, dtype=np.float32):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(low, high, n)
    return [rng.standard_normal((t, features)).astype(dtype) for t in lengths], lengths


# --------------------------------------------------------------------------- padding

def test_pad_sequences_time_major_and_batch_first():
    seqs, lengths = ragged(n=5)
    x, lens = data.pad_sequences(seqs, padding_value=-1.5)
    assert x.shape == (lengths.max(), 5, 3) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_array_equal(lens, lengths)
    assert lens.dtype == np.int64
    for b, s in enumerate(seqs):
        np.testing.assert_array_equal(x[:len(s), b], s)
        assert np.all(x[len(s):, b] == -1.5)
    xb, _ = data.pad_sequences(seqs, padding_value=-1.5, batch_first=True)
    np.testing.assert_array_equal(xb, x.transpose(1, 0, 2))
    # 1-D token sequences, explicit dtype, torch's -100 padding for targets
    tokens, lens = data.pad_sequences([[1, 2, 3], [4], [5, 6]], padding_value=-100, batch_first=True)
    np.testing.assert_array_equal(tokens, [[1, 2, 3], [4, -100, -100], [5, 6, -100]])
    np.testing.assert_array_equal(lens, [3, 1, 2])
    assert data.pad_sequences([[1, 2]], dtype=np.float64)[0].dtype == np.float64


def test_pad_sequences_matches_torch():
    torch = pytest.importorskip("torch")
    seqs, _ = ragged(n=6, dtype=np.float64)
    ours, _ = data.pad_sequences(seqs)
    ref = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in seqs])
    np.testing.assert_array_equal(ours, ref.numpy())


def test_pad_sequences_errors():
    with pytest.raises(ValueError, match="at least one"):
        data.pad_sequences([])
    with pytest.raises(ValueError, match="trailing shape"):
        data.pad_sequences([np.zeros((3, 2)), np.zeros((3, 4))])
    with pytest.raises(TypeError, match="different dtypes"):
        data.pad_sequences([np.zeros(3, np.float32), np.zeros(2, np.float64)])


def test_lengths_to_mask():
    mask = data.lengths_to_mask(np.array([3, 1]))
    np.testing.assert_array_equal(mask, [[True, True], [True, False], [True, False]])
    np.testing.assert_array_equal(data.lengths_to_mask([3, 1], max_len=4, batch_first=True),
                                  [[1, 1, 1, 0], [1, 0, 0, 0]])
    with pytest.raises(TypeError, match=r"max_len must be an int"):
        data.lengths_to_mask([3, 1], max_len=2.5)
    with pytest.raises(TypeError, match=r"max_len must be an int"):
        data.lengths_to_mask([3, 1], max_len=True)
    with pytest.raises(ValueError, match=r"max_len must be at least max\(lengths\) = 3, got 2"):
        data.lengths_to_mask([3, 1], max_len=2)  # would have cut the mask short silently


# --------------------------------------------------------------------------- batches

def test_batch_iterator_covers_every_sample_once_per_epoch():
    X = np.arange(23 * 2).reshape(23, 2)
    y = np.arange(23)
    it = data.BatchIterator(X, y, batch_size=5, seed=0)
    assert len(it) == 5
    for _ in range(2):
        seen = []
        for xb, yb in it:
            np.testing.assert_array_equal(xb[:, 0] // 2, yb)  # rows stay aligned
            seen.extend(yb)
        assert sorted(seen) == list(range(23))
    assert [len(b[1]) for b in data.BatchIterator(X, y, batch_size=5, drop_last=True, seed=0)] == [5] * 4
    assert len(data.BatchIterator(X, y, batch_size=5, drop_last=True)) == 4
    ordered = [b[1] for b in data.BatchIterator(X, y, batch_size=5, shuffle=False)]
    np.testing.assert_array_equal(np.concatenate(ordered), y)


def test_batch_iterator_reproducible_under_seed_and_new_order_each_epoch():
    X = np.arange(50)
    epochs = lambda it: [np.concatenate([b[0] for b in it]) for _ in range(3)]
    a = epochs(data.BatchIterator(X, batch_size=8, seed=42))
    b = epochs(data.BatchIterator(X, batch_size=8, seed=42))
    c = epochs(data.BatchIterator(X, batch_size=8, seed=43))
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea, eb)
    assert not np.array_equal(a[0], a[1])  # reshuffled every epoch
    assert not np.array_equal(a[0], c[0])


def test_batch_iterator_trims_to_batch_max_and_appends_lengths():
    seqs, lengths = ragged(seed=1, n=30)
    X, _ = data.pad_sequences(seqs, batch_first=True)
    tags = [np.arange(len(s)) for s in seqs]
    Y, _ = data.pad_sequences(tags, padding_value=-100, batch_first=True)
    labels = np.arange(30)
    it = data.BatchIterator(X, Y, labels, batch_size=7, lengths=lengths, seed=3)
    assert it.sequence_arrays == [0, 1]
    for xb, yb, lb, lens in it:
        assert xb.shape == (len(lb), lens.max(), 3) and yb.shape == (len(lb), lens.max())
        np.testing.assert_array_equal(lens, lengths[lb])
        for row, i in enumerate(lb):
            np.testing.assert_array_equal(xb[row, :lengths[i]], seqs[i])
    # time-major output for the layers' default layout
    for xb, yb, lb, lens in data.BatchIterator(X, Y, labels, batch_size=7, lengths=lengths, time_major=True):
        assert xb.shape == (lens.max(), len(lb), 3) and yb.shape == (lens.max(), len(lb))
        assert xb.flags.c_contiguous


def test_bucketing_reduces_padding_and_stays_reproducible():
    seqs, lengths = ragged(seed=2, n=400, low=1, high=100)
    X, _ = data.pad_sequences(seqs, batch_first=True)
    y = np.arange(400)
    plain = data.BatchIterator(X, y, batch_size=16, lengths=lengths, seed=0)
    bucketed = data.BatchIterator(X, y, batch_size=16, lengths=lengths, seed=0, bucket=True, bucket_pool=10)
    assert bucketed.padding_fraction() < 0.5 * plain.padding_fraction()

    def steps(it):
        return sum(xb.shape[0] * xb.shape[1] for xb, _, _ in it)
    assert steps(bucketed) < 0.6 * steps(plain)
    a = [b[1] for b in data.BatchIterator(X, y, batch_size=16, lengths=lengths, seed=5, bucket=True)]
    b = [b[1] for b in data.BatchIterator(X, y, batch_size=16, lengths=lengths, seed=5, bucket=True)]
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert sorted(np.concatenate(a)) == list(range(400))
    ordered = data.BatchIterator(X, y, batch_size=16, lengths=lengths, shuffle=False, bucket=True)
    maxima = [lens.max() for _, _, lens in ordered]
    assert maxima == sorted(maxima)


def test_batch_iterator_errors():
    with pytest.raises(ValueError, match="same number of samples"):
        data.BatchIterator(np.zeros((4, 2)), np.zeros(5), batch_size=2)
    with pytest.raises(ValueError, match="needs lengths"):
        data.BatchIterator(np.zeros((4, 2)), batch_size=2, bucket=True)
    with pytest.raises(ValueError, match="lengths must have shape"):
        data.BatchIterator(np.zeros((4, 6, 2)), batch_size=2, lengths=[1, 2])
    it = data.BatchIterator(np.zeros((4, 6, 2)), np.zeros((4, 3)), batch_size=2, lengths=[6, 5, 4, 3])
    assert it.sequence_arrays == [0]  # (N, K) targets shorter than the sequences are per-sample
    with pytest.raises(ValueError, match="sequence_arrays"):
        data.BatchIterator(np.zeros((4, 6, 2)), np.zeros((4, 3)), batch_size=2, lengths=[6, 5, 4, 3],
                           sequence_arrays=[0, 1])
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        data.BatchIterator(np.zeros(4), batch_size=0)


# --------------------------------------------------------------------------- time series

def test_sliding_windows():
    series = np.arange(10.0)
    X, Y = data.sliding_windows(series, window=3, horizon=2)
    assert X.shape == (6, 3) and Y.shape == (6, 2)
    np.testing.assert_array_equal(X[0], [0, 1, 2])
    np.testing.assert_array_equal(Y[0], [3, 4])
    np.testing.assert_array_equal(Y[-1], [8, 9])
    X, Y = data.sliding_windows(np.arange(20.0).reshape(10, 2), window=4, horizon=1, stride=3)
    assert X.shape == (2, 4, 2) and Y.shape == (2, 1, 2)
    np.testing.assert_array_equal(X[1, 0], [6, 7])
    np.testing.assert_array_equal(Y[1, 0], [14, 15])
    X[0, 0] = -1  # copies, not views
    with pytest.raises(ValueError, match="fewer than window \\+ horizon"):
        data.sliding_windows(np.arange(3.0), window=3)


def test_chronological_split_has_no_temporal_leakage():
    series = np.arange(100.0)
    train, val, test = data.chronological_split(series, train=0.7, val=0.15)
    assert (len(train), len(val), len(test)) == (70, 15, 15)
    assert train.max() < val.min() and val.max() < test.min()
    np.testing.assert_array_equal(np.concatenate([train, val, test]), series)  # nothing shuffled or lost
    a, b, c = data.chronological_split(10, train=0.6, val=0.2)
    assert (a, b, c) == (slice(0, 6), slice(6, 8), slice(8, 10))
    # windows + gap: no series step is shared between parts
    window, horizon = 5, 2
    X, Y = data.sliding_windows(series, window, horizon)
    parts = data.chronological_split(len(X), gap=window + horizon - 1)
    steps = [set(np.concatenate([X[p].ravel(), Y[p].ravel()])) for p in parts]
    assert not steps[0] & steps[1] and not steps[1] & steps[2]
    with pytest.raises(ValueError, match="train"):
        data.chronological_split(10, train=0.9, val=0.2)


# --------------------------------------------------------------------------- scaling

def test_standard_scaler_fit_on_train_only():
    rng = np.random.default_rng(8)
    series = np.cumsum(rng.standard_normal((200, 3)), axis=0) + [0, 10, -5]
    series[:, 2] = 7.0  # a constant feature
    train, val, _ = data.chronological_split(series)
    scaler = data.StandardScaler().fit(train)
    np.testing.assert_allclose(scaler.mean_, train.mean(axis=0))
    assert not np.allclose(scaler.mean_, series.mean(axis=0))
    z = scaler.transform(train)
    np.testing.assert_allclose(z[:, :2].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z[:, :2].std(axis=0), 1, rtol=1e-12)
    assert np.all(z[:, 2] == 0) and np.all(np.isfinite(z))  # zero variance: no division by zero
    zv = scaler.transform(val)
    np.testing.assert_allclose(zv, (val - train.mean(0)) / np.where(train.std(0) < 1e-8, 1, train.std(0)))
    np.testing.assert_allclose(scaler.inverse_transform(zv), val, rtol=1e-12)
    # per-feature over (N, T, F) and dtype kept
    X = rng.standard_normal((10, 4, 3)).astype(np.float32)
    s = data.StandardScaler().fit(X)
    assert s.transform(X).dtype == np.float32 and s.mean_.shape == (3,)
    restored = data.StandardScaler().load_state_dict(s.state_dict())
    np.testing.assert_array_equal(restored.transform(X), s.transform(X))
    with pytest.raises(RuntimeError, match="not fitted"):
        data.StandardScaler().transform(X)
    with pytest.raises(ValueError, match="features"):
        s.transform(np.zeros((2, 4)))


def test_bucketing_with_drop_last_leaves_out_random_samples_not_the_longest():
    """Each pool is sorted by length before it is cut, so dropping the incomplete
    batch after sorting would leave out the longest samples in every epoch."""
    lengths = np.r_[np.arange(1, 21) % 9 + 1, 10, 10, 10]
    X = np.zeros((23, 10, 1), np.float32)
    batches = data.BatchIterator(X, np.arange(23), batch_size=5, lengths=lengths, bucket=True, drop_last=True,
                                 seed=0)
    seen = np.zeros(23, int)
    for _ in range(40):
        sizes = []
        for _, idx, _ in batches:
            seen[idx] += 1
            sizes.append(len(idx))
        assert sizes == [5] * 4
    assert (seen > 0).all(), np.flatnonzero(seen == 0)
    assert seen.sum() == 40 * 20
