"""The examples' --quick modes (few epochs, small data) run and learn.

Each example's ``main(argv)`` is imported from examples/ (no subprocess) and returns
its metric and the training history; the loss must fall well below its starting
value. Examples needing scikit-learn or statsmodels are skipped when those are
missing (``pip install fastrnn[examples]``).
"""
import math

import numpy as np
import pytest

from cases import load_example

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def test_digits_quick(capsys):
    pytest.importorskip("sklearn")
    result = load_example("digits").main(["--quick", "--verbose", "0"])
    losses = result["history"]["loss"]
    assert losses[-1] < 0.35 * math.log(10)       # chance level is ln(10)
    assert losses[-1] < 0.5 * losses[0]
    assert result["accuracy"] > 0.8
    assert "test accuracy" in capsys.readouterr().out


def test_sunspots_quick(capsys):
    pytest.importorskip("statsmodels")
    result = load_example("sunspots").main(["--quick"])
    losses = result["history"]["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert np.isfinite(result["mae"]) and result["persistence"] > 0 and result["seasonal"] > 0
    assert "persistence" in capsys.readouterr().out


def test_char_lm_quick(capsys):
    result = load_example("char_lm").main(["--quick", "--verbose", "0"])
    losses = result["history"]["loss"]
    vocabulary = result["model"].vocab_size
    assert losses[-1] < 0.7 * math.log(vocabulary)  # a uniform guess costs ln(V) nats
    assert losses[-1] < 0.8 * losses[0]
    assert np.isfinite(result["bpc"])
    out = capsys.readouterr().out
    assert "bits/char" in out and "sample" in out


def test_seq2seq_quick(capsys):
    result = load_example("seq2seq").main(["--quick", "--verbose", "0"])
    losses = result["history"]["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert losses[-1] < 0.5 * math.log(13)
    assert 0.0 <= result["accuracy"] <= 1.0
    assert "exact match" in capsys.readouterr().out
