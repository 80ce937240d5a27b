"""Layer-level variant options of fastrnn.GRU (the LSTM's: test_lstm_variants.py) and the
statistics of the stochastic regularizers of both layers."""
import numpy as np
import pytest

import fastrnn

from cases import check_layer_grads_by_finite_differences


@pytest.mark.parametrize("options", [
    dict(layer_norm=True), dict(zoneout=0.3), dict(input_dropout=0.2, recurrent_dropout=0.3, weight_dropout=0.2),
    dict(layer_norm=True, zoneout=0.2, recurrent_dropout=0.2, input_dropout=0.1),
], ids=lambda o: "+".join(o))
def test_gru_layer_gradients_by_finite_differences(options):
    rng = np.random.default_rng(0)
    layer = fastrnn.GRU(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=1, **options)
    x, lengths = rng.standard_normal((5, 3, 3)), np.array([5, 2, 4])
    dy = rng.standard_normal((5, 3, 8))
    names = [n for n, _ in layer.named_parameters() if n.startswith("ln_")][:3]
    check_layer_grads_by_finite_differences(layer, x, lengths=lengths, dy=dy,
                                            names=names + ["weight_hh_l1_reverse", "bias_ih_l0", "weight_ih_l1"])


def test_gru_parameter_names_save_load_and_reset_before(tmp_path):
    layer = fastrnn.GRU(3, 4, layer_norm=True, zoneout=0.1, seed=0)
    assert list(dict(layer.named_parameters())) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                                    "ln_weight_ih_l0", "ln_weight_hh_l0"]
    fastrnn.nn.save(layer, tmp_path / "g")
    loaded = fastrnn.nn.load(tmp_path / "g")
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    layer.eval(), loaded.eval()
    np.testing.assert_array_equal(loaded(x)[0], layer(x)[0])
    with pytest.raises(ValueError, match="reset_after"):
        fastrnn.GRU(3, 4, reset_after=False, layer_norm=True)
    # Input dropout and DropConnect work with either GRU form.
    before = fastrnn.GRU(3, 4, reset_after=False, input_dropout=0.2, weight_dropout=0.2, seed=0)
    assert np.isfinite(before(x)[0]).all()


@pytest.mark.parametrize("cls", [fastrnn.LSTM, fastrnn.GRU])
def test_zoneout_eval_is_the_expectation_of_training(cls):
    """One step: h_1 = z * h0 + (1 - z) * h~ is linear in the mask, so the mean of many
    training outputs converges to the eval output p * h0 + (1 - p) * h~."""
    p, draws = 0.3, 4000
    layer = cls(3, 6, dtype=np.float64, seed=2, zoneout=p)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 1, 3))
    h0 = rng.standard_normal((1, 1, 6))
    hx = (h0, np.zeros_like(h0)) if cls is fastrnn.LSTM else h0
    layer.train()
    mean = np.mean([layer(x, hx)[0][0, 0] for _ in range(draws)], axis=0)
    layer.eval()
    expected = layer(x, hx)[0][0, 0]
    spread = np.abs(h0[0, 0] - layer.__class__(3, 6, dtype=np.float64, seed=2)(x, hx)[0][0, 0])
    # standard error of a Bernoulli mean times the gap |h0 - h~|; 5 sigma
    np.testing.assert_allclose(mean, expected, atol=5 * np.sqrt(p * (1 - p) / draws) * spread.max() + 1e-12)


@pytest.mark.parametrize("cls", [fastrnn.LSTM, fastrnn.GRU])
def test_input_dropout_keep_rate_and_scale(cls):
    layer = cls(40, 4, seed=0, input_dropout=0.4, weight_dropout=0.3)
    args = layer._variant_arguments(0, "", (3, 100, 40), training=True)
    for key, p in (("input_mask", 0.4), ("weight_hh_mask", 0.3)):
        mask = args[key]
        kept = mask > 0
        sd = np.sqrt(p * (1 - p) / mask.size)
        assert abs(kept.mean() - (1 - p)) < 5 * sd, key
        np.testing.assert_allclose(mask[kept], 1 / (1 - p), rtol=1e-6)
    assert layer._variant_arguments(0, "", (3, 100, 40), training=False) == {}
