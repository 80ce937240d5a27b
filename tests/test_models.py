"""Ready models (fastrnn.models): shapes, gradients vs finite differences (float64),
save/load round trips, predict."""
import io

import numpy as np
import pytest

from fastrnn import nn
from fastrnn.losses import cross_entropy, mse
from fastrnn.models import (
    CharLM,
    Forecaster,
    Seq2Seq,
    SequenceClassifier,
    SequenceTagger,
)
from fastrnn.optim import Adam
from fastrnn.train import fit, fit_tbptt

from cases import difference_at

F64 = np.float64


pytestmark = pytest.mark.usefixtures("one_blas_thread")


def _loss_and_seed(pred, rng):
    """A random linear functional of pred: L = sum(R * pred), dL/dpred = R."""
    weights = rng.standard_normal(pred.shape)
    return float((weights * pred).sum()), weights.astype(pred.dtype)


def grad_check(model, run, rng, n_checks=6, eps=1e-6, rtol=1e-5, atol=1e-7, x=None):
    """Compare backprop gradients of L = sum(R * run(model)) with central differences.

    run(model) -> pred (forward in training mode); x (optional dense input array) is
    checked too via the value returned by model.backward."""
    model.train()
    for p in model.parameters():
        p.zero_grad()
    pred = run(model)
    weights = rng.standard_normal(pred.shape)
    dx = model.backward(weights.astype(pred.dtype))

    def value():
        return float((weights * run(model)).sum())

    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        flat = p.data.reshape(-1)
        for i in rng.choice(flat.size, min(n_checks, flat.size), replace=False):
            numeric = difference_at(value, flat, i, eps)
            analytic = p.grad.reshape(-1)[i]
            assert np.isclose(analytic, numeric, rtol=rtol, atol=atol), (name, i, analytic, numeric)
    if x is not None:
        assert dx.shape == x.shape
        flat = x.reshape(-1)
        for i in rng.choice(flat.size, min(n_checks, flat.size), replace=False):
            assert np.isclose(dx.reshape(-1)[i], difference_at(value, flat, i, eps), rtol=rtol, atol=atol), ("x", i)


def roundtrip(model):
    buffer = io.BytesIO()
    nn.save(model, buffer)
    buffer.seek(0)
    loaded = nn.load(buffer)
    assert type(loaded) is type(model)
    assert loaded.config() == model.config()
    for (name, a), (name2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert name == name2
        np.testing.assert_array_equal(a, b)
    return loaded


# --------------------------------------------------------------------------- classifier

@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_classifier_gradients(cell, bidirectional, pooling):
    rng = np.random.default_rng(1)
    model = SequenceClassifier(3, input_size=4, hidden_size=5, cell=cell, bidirectional=bidirectional,
                               pooling=pooling, dtype=F64, seed=0)
    x = rng.standard_normal((3, 6, 4))
    lengths = np.array([6, 2, 4])
    grad_check(model, lambda m: m(x, lengths), rng, x=x)


def test_classifier_two_layers_embedding_gradients():
    rng = np.random.default_rng(2)
    model = SequenceClassifier(4, vocab_size=7, embedding_dim=3, padding_idx=0, hidden_size=5, num_layers=2,
                               cell="gru", dtype=F64, seed=0)
    ids = rng.integers(1, 7, (3, 5))
    ids[1, 3:] = 0
    grad_check(model, lambda m: m(ids, np.array([5, 3, 5])), rng)


def test_classifier_last_state_respects_lengths():
    rng = np.random.default_rng(3)
    model = SequenceClassifier(2, input_size=3, hidden_size=4, bidirectional=True, seed=0)
    x = rng.standard_normal((2, 7, 3)).astype(np.float32)
    padded = x.copy()
    padded[1, 4:] = 99.0  # garbage past the length must not matter
    lengths = np.array([7, 4])
    model.eval()
    a = model(x, lengths)
    b = model(padded, lengths)
    alone = model(x[1:2, :4])
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(a[1], alone[0], rtol=1e-5, atol=1e-6)


def test_classifier_predict_and_roundtrip():
    rng = np.random.default_rng(4)
    model = SequenceClassifier(5, input_size=3, hidden_size=8, cell="lstm", bidirectional=True, pooling="mean",
                               dropout=0.2, seed=7)
    x = rng.standard_normal((10, 6, 3)).astype(np.float32)
    lengths = rng.integers(1, 7, 10)
    proba = model.predict_proba(x, lengths, batch_size=4)
    assert proba.shape == (10, 5) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    pred = model.predict(x, lengths)
    assert pred.shape == (10,) and model.training
    loaded = roundtrip(model)
    np.testing.assert_array_equal(loaded.predict(x, lengths), pred)
    np.testing.assert_allclose(loaded.predict_proba(x, lengths), proba, rtol=1e-6)


def test_classifier_learns_with_fit():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((128, 5, 2)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    model = SequenceClassifier(2, input_size=2, hidden_size=16, cell="gru", seed=0)
    opt = Adam(model.parameters(), lr=1e-2)
    history = fit(model, cross_entropy, opt, [(x[i:i + 32], y[i:i + 32]) for i in range(0, 128, 32)],
                  epochs=30, verbose=0)
    assert history["loss"][-1] < 0.3 * history["loss"][0]
    assert (model.predict(x) == y).mean() > 0.9


def test_classifier_rejects_bad_arguments():
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassifier(2, input_size=3, pooling="max")
    with pytest.raises(ValueError, match="cell"):
        SequenceClassifier(2, input_size=3, cell="transformer")
    with pytest.raises(ValueError, match="input_size"):
        SequenceClassifier(2)
    model = SequenceClassifier(2, input_size=3, seed=0)
    with pytest.raises(TypeError, match="dtype"):
        model(np.zeros((1, 2, 3)))


# --------------------------------------------------------------------------- tagger

def test_tagger_gradients_and_masked_loss():
    rng = np.random.default_rng(6)
    model = SequenceTagger(4, vocab_size=9, embedding_dim=3, hidden_size=5, cell="lstm", dtype=F64, seed=0)
    ids = rng.integers(0, 9, (3, 6))
    lengths = np.array([6, 3, 5])
    grad_check(model, lambda m: m(ids, lengths), rng)
    logits = model(ids, lengths)
    assert logits.shape == (3, 6, 4)
    tags = rng.integers(0, 4, (3, 6))
    loss, grad = SequenceTagger.loss(logits, tags, lengths)
    padded = np.where(np.arange(6)[None] < lengths[:, None], tags, -100)
    loss2, grad2 = cross_entropy(logits, padded)
    np.testing.assert_allclose(loss, loss2)
    np.testing.assert_allclose(grad, grad2)
    assert np.all(grad[1, 3:] == 0)
    pred = model.predict(ids, lengths)
    assert pred.shape == (3, 6) and np.all(pred[1, 3:] == -1) and np.all(pred[1, :3] >= 0)
    loaded = roundtrip(model)
    np.testing.assert_array_equal(loaded.predict(ids, lengths), pred)


def test_tagger_dense_learns():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, 8, 2)).astype(np.float32)
    tags = (np.cumsum(x[:, :, 0], axis=1) > 0).astype(np.int64)   # needs the past: a running sum
    model = SequenceTagger(2, input_size=2, hidden_size=16, cell="gru", bidirectional=False, seed=0)
    opt = Adam(model.parameters(), lr=1e-2)
    history = fit(model, cross_entropy, opt, [(x[i:i + 16], tags[i:i + 16]) for i in range(0, 64, 16)],
                  epochs=25, verbose=0)
    assert history["loss"][-1] < 0.5 * history["loss"][0]


# --------------------------------------------------------------------------- forecaster

@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_forecaster_gradients(cell):
    rng = np.random.default_rng(8)
    model = Forecaster(input_size=2, hidden_size=5, horizon=3, cell=cell, num_layers=2, dtype=F64, seed=0)
    x = rng.standard_normal((4, 6, 2))
    assert model(x).shape == (4, 3, 2)
    grad_check(model, lambda m: m(x), rng, x=x)


def test_forecaster_univariate_shapes_predict_roundtrip():
    rng = np.random.default_rng(9)
    model = Forecaster(hidden_size=6, horizon=2, seed=3)
    x = rng.standard_normal((5, 7)).astype(np.float32)
    pred = model.predict(x, batch_size=2)
    assert pred.shape == (5, 2) and pred.dtype == np.float32
    recursive = model.predict_recursive(x, 4)
    assert recursive.shape == (5, 4)
    np.testing.assert_allclose(recursive[:, 0], pred[:, 0], rtol=1e-6)
    loaded = roundtrip(model)
    np.testing.assert_allclose(loaded.predict(x), pred, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="univariate"):
        Forecaster(input_size=2)(x)


def test_forecaster_learns_sine():
    t = np.arange(400, dtype=np.float32)
    series = np.sin(0.3 * t)
    windows = np.lib.stride_tricks.sliding_window_view(series, 11)
    x, y = windows[:, :10].copy(), windows[:, 10:].copy()
    model = Forecaster(hidden_size=16, seed=0)
    opt = Adam(model.parameters(), lr=1e-2)
    history = fit(model, mse, opt, [(x[i:i + 64], y[i:i + 64]) for i in range(0, len(x), 64)], epochs=20,
                  verbose=0)
    assert history["loss"][-1] < 0.05 * history["loss"][0]


# --------------------------------------------------------------------------- char LM

@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_charlm_gradients_stateful(cell):
    rng = np.random.default_rng(10)
    model = CharLM(6, embedding_dim=3, hidden_size=4, cell=cell, dtype=F64, seed=0)
    ids = rng.integers(0, 6, (2, 5))
    logits, _state = model(ids)
    assert logits.shape == (2, 5, 6)
    # continuing from a state equals running the concatenation
    model.eval()
    more = rng.integers(0, 6, (2, 3))
    a, _ = model(ids)
    _, s = model(ids)
    b, _ = model(more, s)
    full, _ = model(np.concatenate([ids, more], axis=1))
    np.testing.assert_allclose(np.concatenate([a, b], axis=1), full, rtol=1e-10)
    grad_check(model, lambda m: m(more, s)[0], rng)


def test_charlm_generate_and_bits():
    model = CharLM(7, embedding_dim=4, hidden_size=8, seed=0)
    a = model.generate([1, 2], 20, temperature=0.8, seed=5)
    b = model.generate([1, 2], 20, temperature=0.8, seed=5)
    assert a.shape == (20,) and np.all((a >= 0) & (a < 7))
    np.testing.assert_array_equal(a, b)
    # the stream-based sampler sees the same distribution as the layer: near-zero temperature is greedy
    greedy = model.generate([1, 2, 3], 1, temperature=1e-6, seed=0)
    model.eval()
    logits, _ = model(np.array([[1, 2, 3]]))
    assert greedy[0] == logits[0, -1].argmax()
    bits = model.bits_per_token(np.arange(60) % 7, chunk=16)
    assert 0 < bits < 10
    loaded = roundtrip(model)
    np.testing.assert_array_equal(loaded.generate([1, 2], 20, temperature=0.8, seed=5), a)


def test_charlm_learns_with_tbptt():
    text = np.tile(np.array([0, 1, 2, 3, 2, 1]), 200)   # 1200 ids -> 4 streams of 240 steps
    x, y = text[:960].reshape(4, 240), text[1:961].reshape(4, 240)
    model = CharLM(4, embedding_dim=4, hidden_size=16, seed=0)
    opt = Adam(model.parameters(), lr=1e-2)
    history = fit_tbptt(model, cross_entropy, opt, [(x, y)], k=20, epochs=10, time_axis=1,
                        carry_state="epoch", verbose=0)
    assert history["loss"][-1] < 0.2 * history["loss"][0]


# --------------------------------------------------------------------------- seq2seq

@pytest.mark.parametrize("cell,attention", [("gru", True), ("lstm", True), ("lstm", False), ("rnn", True)])
def test_seq2seq_gradients(cell, attention):
    rng = np.random.default_rng(11)
    model = Seq2Seq(6, 5, embedding_dim=3, hidden_size=4, cell=cell, attention=attention, dtype=F64, seed=0)
    src = rng.integers(0, 6, (3, 5))
    tgt_in = rng.integers(0, 5, (3, 4))
    lengths = np.array([5, 2, 4])
    assert model(src, tgt_in, lengths).shape == (3, 4, 5)
    grad_check(model, lambda m: m(src, tgt_in, lengths), rng)


def test_seq2seq_padding_is_ignored_and_greedy_matches_teacher_forcing():
    rng = np.random.default_rng(12)
    model = Seq2Seq(6, 5, embedding_dim=3, hidden_size=8, bos_id=0, seed=0)
    model.eval()
    src = rng.integers(0, 6, (2, 6))
    lengths = np.array([6, 3])
    noisy = src.copy()
    noisy[1, 3:] = 5
    tgt_in = rng.integers(0, 5, (2, 4))
    np.testing.assert_allclose(model(src, tgt_in, lengths), model(noisy, tgt_in, lengths), rtol=1e-6)
    out = model.predict(src, 5, src_lengths=lengths)
    assert out.shape == (2, 5)
    # feeding the greedy output back with teacher forcing reproduces it
    forced = model(src, np.concatenate([np.zeros((2, 1), np.int64), out[:, :-1]], axis=1), lengths)
    np.testing.assert_array_equal(forced.argmax(axis=-1), out)
    loaded = roundtrip(model)
    np.testing.assert_array_equal(loaded.predict(src, 5, src_lengths=lengths), out)


def test_seq2seq_scheduled_sampling_and_eos():
    rng = np.random.default_rng(13)
    model = Seq2Seq(5, 5, embedding_dim=3, hidden_size=8, bos_id=3, eos_id=4, sampling_prob=0.5, seed=0)
    src = rng.integers(0, 3, (4, 5))
    tgt_in = np.concatenate([np.full((4, 1), 3), src[:, ::-1]], axis=1)
    tgt_out = np.concatenate([src[:, ::-1], np.full((4, 1), 4)], axis=1)
    logits = model(src, tgt_in)
    _loss, grad = cross_entropy(logits, tgt_out)
    model.backward(grad)
    assert all(p.grad is not None for p in model.parameters())
    out = model.predict(src, 8)
    assert out.shape == (4, 8)
    for row in out:  # after the first eos, only eos
        hits = np.flatnonzero(row == 4)
        if hits.size:
            assert np.all(row[hits[0]:] == 4)


def test_seq2seq_learns_to_copy():
    rng = np.random.default_rng(14)
    src = rng.integers(0, 4, (256, 4))
    bos = np.full((256, 1), 4)
    tgt_in = np.concatenate([bos, src[:, :-1]], axis=1)
    model = Seq2Seq(4, 5, embedding_dim=8, hidden_size=32, bos_id=4, seed=0)
    opt = Adam(model.parameters(), lr=1e-2)
    batches = [(src[i:i + 32], src[i:i + 32], tgt_in[i:i + 32]) for i in range(0, 256, 32)]
    history = fit(model, cross_entropy, opt, batches, epochs=15, verbose=0)
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    assert (model.predict(src[:64], 4) == src[:64]).all(axis=1).mean() > 0.8


def test_charlm_and_forecaster_refuse_bad_arguments_by_name():
    """Bad prompts were used as raw indices (a negative id wrapped around to the end of
    the vocabulary); short id sequences divided by zero; a wrong-shaped dpred was
    reshaped silently."""
    model = CharLM(7, embedding_dim=4, hidden_size=8, seed=0)
    with pytest.raises(ValueError, match=r"prompt must lie in \[0, num_embeddings\) = \[0, 7\).*\[-1\]"):
        model.generate([-1], 3, seed=0)
    with pytest.raises(ValueError, match=r"prompt must lie in"):
        model.generate([9], 3)
    with pytest.raises(TypeError, match=r"prompt must hold integers, got dtype float64"):
        model.generate([1.7], 3)
    with pytest.raises(ValueError, match=r"length must be >= 0, got -1"):
        model.generate([1], -1)
    assert model.generate([1], 0).shape == (0,)
    tiny = model.generate([1, 2, 3], 2, temperature=1e-310, seed=0)  # overflowed to NaN probabilities before
    assert np.all((tiny >= 0) & (tiny < 7))
    with pytest.raises(ValueError, match=r"ids must be a 1-D sequence of at least two ids"):
        model.bits_per_token([1])
    forecaster = Forecaster(1, hidden_size=3, horizon=3, seed=0)
    forecaster.train()
    forecaster(np.zeros((2, 5), np.float32))  # predictions (2, 3)
    with pytest.raises(ValueError, match=r"dpred must have the forward output's shape \(2, 3\), got shape \(3, 2\)"):
        forecaster.backward(np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"steps must be >= 1, got 0"):
        forecaster.predict_recursive(np.zeros((2, 5), np.float32), 0)
    with pytest.raises(ValueError, match=r"x must have 2 features \(input_size\) in its last axis, got shape "
                                         r"\(7, 5, 3\)"):
        Forecaster(2).predict(np.zeros((7, 5, 3), np.float32))
