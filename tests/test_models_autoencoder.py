"""SequenceAutoencoder (fastrnn.models): shapes and dtypes, gradients vs central
finite differences (float64), save/load, argument errors, learning, the window
helpers (make_windows, fold_scores) and the anomaly-detection example's quick mode."""
import io

import numpy as np
import pytest

from fastrnn import nn
from fastrnn.data import BatchIterator
from fastrnn.losses import mse
from fastrnn.models import SequenceAutoencoder, fold_scores, make_windows
from fastrnn.optim import Adam
from fastrnn.train import fit

from cases import difference_at, load_example

F64 = np.float64
pytestmark = pytest.mark.usefixtures("one_blas_thread")


def _check_grads(model, x, loss_of, rng, n_checks=5, eps=1e-6):
    """Backprop gradients of loss_of(pred) -> (L, dL/dpred) against central differences,
    for sampled entries of every parameter and of x (dL/dx from model.backward; the
    loss's own dependence on x, if any, is held fixed by passing the original x)."""
    model.train()
    model.zero_grad()
    _, grad = loss_of(model(x))
    dx = model.backward(grad)
    assert dx.shape == x.shape and dx.dtype == F64

    def value():
        return loss_of(model(x))[0]

    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        flat = p.data.reshape(-1)
        for i in rng.choice(flat.size, min(n_checks, flat.size), replace=False):
            numeric = difference_at(value, flat, i, eps)
            assert np.isclose(p.grad.reshape(-1)[i], numeric, rtol=1e-5, atol=1e-8), (name, i)
    flat = x.reshape(-1)
    for i in rng.choice(flat.size, min(n_checks, flat.size), replace=False):
        assert np.isclose(dx.reshape(-1)[i], difference_at(value, flat, i, eps), rtol=1e-5, atol=1e-8), ("x", i)


def _roundtrip(model):
    buffer = io.BytesIO()
    nn.save(model, buffer)
    buffer.seek(0)
    return nn.load(buffer)


# --------------------------------------------------------------------------- shapes, dtypes, gradients

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shapes_and_dtypes(dtype):
    rng = np.random.default_rng(0)
    uni = SequenceAutoencoder(hidden_size=6, dtype=dtype, seed=0)
    x = rng.standard_normal((5, 9)).astype(dtype)
    assert uni(x).shape == (5, 9) and uni(x).dtype == dtype
    assert uni(x[:, :4]).shape == (5, 4)                          # any window length works
    multi = SequenceAutoencoder(input_size=3, hidden_size=4, num_layers=2, dtype=dtype, seed=0)
    x3 = rng.standard_normal((4, 7, 3)).astype(dtype)
    y = multi(x3)
    assert y.shape == (4, 7, 3) and y.dtype == dtype
    assert multi.backward(np.ones_like(y)).shape == (4, 7, 3)
    assert multi.encode(x3).shape == (4, 4)
    recon = multi.reconstruct(x3, batch_size=3)
    assert recon.shape == x3.shape and recon.dtype == dtype and multi.training  # training flag restored
    np.testing.assert_array_equal(multi.predict(x3), multi.reconstruct(x3))
    np.testing.assert_allclose(recon, multi.reconstruct(x3, batch_size=None), rtol=1e-6)
    scores = multi.anomaly_scores(x3)
    per_step = multi.anomaly_scores(x3, per_step=True)
    assert scores.shape == (4,) and per_step.shape == (4, 7) and scores.dtype == per_step.dtype == F64
    expected = np.square(recon.astype(F64) - x3).mean(axis=(1, 2))
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    np.testing.assert_allclose(per_step.mean(axis=1), scores, rtol=1e-12)


def test_gradients_of_the_mse_loss_univariate():
    rng = np.random.default_rng(1)
    model = SequenceAutoencoder(hidden_size=3, dtype=F64, seed=0)
    x = rng.standard_normal((3, 5))
    target = x.copy()  # the reconstruction target stays fixed while x is perturbed
    _check_grads(model, x, lambda pred: mse(pred, target), rng)


def test_gradients_two_layers_multivariate():
    rng = np.random.default_rng(2)
    model = SequenceAutoencoder(input_size=2, hidden_size=3, num_layers=2, dtype=F64, seed=1)
    x = rng.standard_normal((2, 4, 2))
    weights = rng.standard_normal(x.shape)  # L = sum(R * recon): every output element gets its own weight
    _check_grads(model, x, lambda pred: (float((weights * pred).sum()), weights.copy()), rng)


def test_eval_forward_keeps_nothing_for_backward():
    model = SequenceAutoencoder(hidden_size=3, seed=0)
    x = np.zeros((2, 4), np.float32)
    model.eval()
    model(x)
    with pytest.raises(RuntimeError, match="training-mode forward"):
        model.backward(np.zeros((2, 4), np.float32))


# --------------------------------------------------------------------------- save/load, seeds

def test_save_load_round_trip():
    rng = np.random.default_rng(3)
    model = SequenceAutoencoder(input_size=2, hidden_size=5, num_layers=2, dropout=0.25, seed=4)
    x = rng.standard_normal((6, 8, 2)).astype(np.float32)
    loaded = _roundtrip(model)
    assert type(loaded) is SequenceAutoencoder
    assert loaded.config() == model.config() == {"input_size": 2, "hidden_size": 5, "num_layers": 2,
                                                 "dropout": 0.25, "dtype": np.dtype(np.float32), "seed": 4}
    for (name, a), (name2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert name == name2
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.anomaly_scores(x), model.anomaly_scores(x))
    assert isinstance(SequenceAutoencoder.load(io.BytesIO(_save_bytes(model))), SequenceAutoencoder)


def _save_bytes(model):
    buffer = io.BytesIO()
    model.save(buffer)
    return buffer.getvalue()


def test_seed_reproducibility():
    a, b = SequenceAutoencoder(hidden_size=4, seed=7), SequenceAutoencoder(hidden_size=4, seed=7)
    c = SequenceAutoencoder(hidden_size=4, seed=8)
    for (_, pa), (_, pb), (_, pc) in zip(a.state_dict().items(), b.state_dict().items(), c.state_dict().items()):
        np.testing.assert_array_equal(pa, pb)
    assert any(not np.array_equal(pa, pc) for pa, pc in zip(a.state_dict().values(), c.state_dict().values()))


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("kwargs, error, name", [
    ({"input_size": 0}, ValueError, "input_size"),
    ({"input_size": 2.0}, TypeError, "input_size"),
    ({"hidden_size": -1}, ValueError, "hidden_size"),
    ({"num_layers": True}, TypeError, "num_layers"),
    ({"dropout": 1.0}, ValueError, "dropout"),
    ({"dropout": "0.1"}, TypeError, "dropout"),
    ({"dtype": np.int32}, TypeError, "dtype"),
    ({"seed": 1.5}, TypeError, "seed"),
])
def test_constructor_errors_name_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        SequenceAutoencoder(**kwargs)


def test_input_errors_name_the_argument():
    model = SequenceAutoencoder(hidden_size=3, seed=0)
    with pytest.raises(TypeError, match="x has dtype float64"):
        model(np.zeros((2, 4)))
    with pytest.raises(TypeError, match="windows must have dtype float32 or float64"):
        model.reconstruct(np.zeros((2, 4), np.int64))
    with pytest.raises(ValueError, match="input_size = 1"):
        model(np.zeros((2, 4, 3), np.float32))
    with pytest.raises(ValueError, match="x must be"):
        model(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="at least one window"):
        model(np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match="univariate"):
        SequenceAutoencoder(input_size=2, hidden_size=3)(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="per_step"):
        model.anomaly_scores(np.zeros((2, 4), np.float32), per_step="yes")
    with pytest.raises(ValueError, match="batch_size"):
        model.reconstruct(np.zeros((2, 4), np.float32), batch_size=0)
    model(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="drecon"):
        model.backward(np.zeros((2, 5), np.float32))


def test_window_helper_errors_name_the_argument():
    with pytest.raises(ValueError, match="series"):
        make_windows(np.zeros((4, 2, 2)), 2)
    with pytest.raises(ValueError, match="window"):
        make_windows(np.zeros(3), 4)
    with pytest.raises(TypeError, match="window"):
        make_windows(np.zeros(5), 2.0)
    with pytest.raises(ValueError, match="stride"):
        make_windows(np.zeros(5), 2, stride=0)
    with pytest.raises(ValueError, match="scores"):
        fold_scores(np.zeros(3), n_steps=5, window=2)            # 4 windows expected
    with pytest.raises(ValueError, match="scores"):
        fold_scores(np.zeros((4, 3)), n_steps=5, window=2)
    with pytest.raises(ValueError, match="reduction"):
        fold_scores(np.zeros(4), n_steps=5, window=2, reduction="median")
    with pytest.raises(ValueError, match="n_steps"):
        fold_scores(np.zeros(1), n_steps=1, window=2)


# --------------------------------------------------------------------------- window helpers

@pytest.mark.parametrize("shape", [(11,), (11, 2)])
@pytest.mark.parametrize("stride", [1, 3])
def test_make_windows_matches_slicing(shape, stride):
    series = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    windows = make_windows(series, 4, stride)
    expected = [series[s:s + 4] for s in range(0, shape[0] - 4 + 1, stride)]
    np.testing.assert_array_equal(windows, np.stack(expected))
    assert windows.dtype == series.dtype
    windows[0] = -1                                               # a copy: the series is untouched
    assert series.min() >= 0


def _fold_by_loops(scores, n_steps, window, stride, reduce):
    given = [[] for _ in range(n_steps)]
    for i, row in enumerate(np.broadcast_to(np.asarray(scores, F64).reshape(len(scores), -1),
                                            (len(scores), window))):
        for j in range(window):
            given[i * stride + j].append(row[j])
    return np.array([reduce(g) if g else np.nan for g in given])


@pytest.mark.parametrize("reduction, reduce", [("mean", np.mean), ("max", np.max)])
@pytest.mark.parametrize("per_step", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
def test_fold_scores_matches_loops(reduction, reduce, per_step, stride):
    rng = np.random.default_rng(5)
    n_steps, window = 13, 4                                       # stride 2: 5 windows, step 12 uncovered
    n = (n_steps - window) // stride + 1
    scores = rng.random((n, window) if per_step else n)
    folded = fold_scores(scores, n_steps, window, stride, reduction)
    np.testing.assert_allclose(folded, _fold_by_loops(scores, n_steps, window, stride, reduce), equal_nan=True)
    assert np.isnan(folded[-1]) == (stride == 2)


def test_fold_scores_inverts_make_windows():
    series = np.random.default_rng(6).standard_normal(20)
    np.testing.assert_allclose(fold_scores(make_windows(series, 5), 20, 5), series, rtol=1e-12)


# --------------------------------------------------------------------------- learning

def _sine_windows(n_steps=300, window=16):
    t = np.arange(n_steps)
    series = (np.sin(2 * np.pi * t / 25) + 0.5 * np.sin(2 * np.pi * t / 7)).astype(np.float32)
    return series, make_windows(series, window)


def test_training_reduces_the_loss_and_finds_a_spike():
    series, windows = _sine_windows()
    model = SequenceAutoencoder(hidden_size=12, seed=0)
    history = fit(model, mse, Adam(model.parameters(), lr=1e-2),
                  BatchIterator(windows, windows, batch_size=32, seed=0), epochs=25, verbose=0)
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    spiked = series.copy()
    spiked[150] += 2.5
    per_step = fold_scores(model.anomaly_scores(make_windows(spiked, 16), per_step=True), len(spiked), 16)
    assert int(np.argmax(per_step)) == 150


def test_example_metrics_on_hand_made_rankings():
    example = load_example("anomaly_detection")
    labels = np.array([0, 1, 1, 0, 0, 0], bool)
    events = [("level shift", 1, 3)]
    perfect = example.ranking_metrics(np.array([0, 5, 4, 1, 2, 3.0]), labels, events)
    assert perfect == {"precision": 1.0, "recall": 1.0, "events": 1.0, "ap": 1.0}
    half = example.ranking_metrics(np.array([0, 5, 0.5, 1, 4, 3]), labels, events)  # order 1, 4, 5, 3, 2, 0
    assert half["precision"] == half["recall"] == 0.5 and half["events"] == 1.0
    assert half["ap"] == pytest.approx((1 / 1 + 2 / 5) / 2)      # hits at ranks 1 and 5
    worst = example.ranking_metrics(np.array([9, 0, 0, 8, 7, 6.0]), labels, events)
    assert worst["precision"] == 0.0 and worst["events"] == 0.0
    # 2 of 6 steps drawn at random miss both event steps with probability C(4, 2) / C(6, 2) = 6 / 15
    assert example.random_metrics(labels, events)["events"] == pytest.approx(1 - 6 / 15)
    assert example.random_metrics(labels, events)["precision"] == pytest.approx(2 / 6)


def test_anomaly_detection_example_quick(capsys):
    pytest.importorskip("statsmodels")
    result = load_example("anomaly_detection").main(["--quick"])
    losses = result["history"]["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert result["autoencoder"]["recall"] > 2 * result["random"]["recall"]
    assert result["autoencoder"]["ap"] > 2 * result["random"]["ap"]
    assert result["labels"].sum() == sum(b - a for _, a, b in result["events"])
    out = capsys.readouterr().out
    assert "precision@k" in out and "random ranking" in out
