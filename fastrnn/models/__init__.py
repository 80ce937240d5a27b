"""Ready models built from fastrnn's layers, each trainable with :mod:`fastrnn.train`
(``forward``/``backward``), with ``predict`` and save/load through
:func:`fastrnn.nn.save` / :func:`fastrnn.nn.load` (constructor arguments in ``config()``).

- :class:`SequenceClassifier`: sequence -> class (last valid state or mean pooling).
- :class:`SequenceTagger`: one label per step (masked per-step loss).
- :class:`Forecaster`: window -> next ``horizon`` values (direct; recursive roll-out).
- :class:`CharLM`: character language model, temperature sampling (stateful).
- :class:`Seq2Seq`: encoder-decoder, teacher forcing, scheduled sampling, greedy
  decoding, Luong dot attention.
- :class:`SequenceAutoencoder`: LSTM encoder-decoder reconstructing windows;
  reconstruction error as an anomaly score (:func:`make_windows`, :func:`fold_scores`).
"""
from .autoencoder import SequenceAutoencoder, fold_scores, make_windows
from .char_lm import CharLM
from .classifier import SequenceClassifier, SequenceTagger
from .forecaster import Forecaster
from .seq2seq import Seq2Seq

__all__ = ["CharLM", "Forecaster", "Seq2Seq", "SequenceAutoencoder", "SequenceClassifier", "SequenceTagger",
           "fold_scores", "make_windows"]
