"""Training loops: :func:`fit` (mini-batch training) and :func:`fit_tbptt` (truncated
back-propagation through time over long sequences), plus :func:`evaluate`.

**The contract.**

- ``model``: a :class:`fastrnn.nn.Module` (anything with ``forward``/``__call__``,
  ``backward``, ``train``/``eval`` and ``state_dict``/``load_state_dict``).
  ``model(x, *extra)`` returns the predictions; ``model.backward(dpred)`` accumulates
  the parameters' ``.grad``. For :func:`fit_tbptt` the model is *stateful*:
  ``model(x, state)`` returns ``(pred, new_state)`` (``state=None`` means a zero
  initial state) — see :func:`fit_tbptt`.
- ``loss_fn(pred, y) -> (loss, dL/dpred)``, e.g. :func:`fastrnn.losses.mse` or
  ``functools.partial(fastrnn.losses.cross_entropy, label_smoothing=0.1)``. The
  loss should be a mean over the batch.
- ``optimizer``: a :mod:`fastrnn.optim` optimizer built on the model's parameters;
  clipping and the gradient reset apply to the optimizer's parameters.
- Data: a re-iterable of batches — a list of ``(x, y)`` tuples, a
  :class:`fastrnn.data.BatchIterator`, or a callable returning a fresh iterable
  each epoch. A batch is ``(x, y)`` or ``(x, y, *extra)``; the extra elements
  (e.g. the ``lengths`` a ``BatchIterator`` appends) are passed to the model
  after ``x``: ``model(x, *extra)``.

One training step is ``optimizer.zero_grad(); pred = model(x, *extra); loss, g =
loss_fn(pred, y); model.backward(g); clip; optimizer.step()``; then a per-step LR
schedule steps. The epoch's ``loss`` is the mean of the batch losses weighted by
the batch sizes (samples counted on ``batch_axis`` of x).

**History.** Both loops return a :class:`History` (a dict of per-epoch lists):
``epoch``, ``loss``, ``lr`` (group 0's rate at the end of the epoch's training
steps), ``time`` (seconds, whole epoch), ``samples_per_s`` (training throughput),
``val_loss`` when there is validation data, and for every entry ``name`` of
``metrics`` (``{name: fn(pred, y) -> float}``) ``name`` (on training batches, in
training mode) and ``val_name``. Its attributes ``best_epoch``, ``best_value``,
``monitor`` and ``stopped_epoch`` (None unless early stopping fired) summarise the run.

**Progress.** ``verbose=1`` shows a tqdm bar per epoch (loss and samples/s) when
tqdm is installed, otherwise one plain line per epoch; ``verbose=0`` is silent.
"""
import math
import sys
import time
from collections.abc import Iterable

import numpy as np

from .optim import Optimizer, ReduceLROnPlateau, clip_grad_norm_, clip_grad_value_

__all__ = ["fit", "fit_tbptt", "evaluate", "tbptt_batches", "History", "StopTraining"]


class StopTraining(Exception):
    """Raise it from a callback to end training after the current epoch."""


class History(dict):
    """Per-epoch metrics: ``history["loss"][i]`` is epoch ``i + 1``'s training loss.

    Attributes: ``monitor`` (the key early stopping / best weights watch),
    ``best_epoch`` and ``best_value`` (its best epoch, 1-based, and value),
    ``stopped_epoch`` (the epoch at which early stopping or a callback ended the
    run, else None), ``restored`` (whether the best weights were loaded back)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.monitor = None
        self.best_epoch = None
        self.best_value = None
        self.stopped_epoch = None
        self.restored = False

    def append(self, logs):
        for key, value in logs.items():
            self.setdefault(key, []).append(value)


# --------------------------------------------------------------------------- helpers

def _tqdm():
    try:
        from tqdm.auto import tqdm
    except Exception:  # not installed (or broken): plain lines
        return None
    return tqdm


def _epoch_source(data, name, epochs):
    """A function returning a fresh iterable of batches for each epoch."""
    if data is None:
        return None
    if callable(data) and not isinstance(data, Iterable):
        return data
    if not isinstance(data, Iterable) or isinstance(data, (np.ndarray, str, bytes)):
        raise TypeError(f"{name} must be an iterable of (x, y) batches (a list, a BatchIterator) or a "
                        f"callable returning one, got {type(data).__name__}")
    if iter(data) is data and epochs > 1:
        raise TypeError(f"{name} is a one-shot iterator, which would be empty after the first epoch: "
                        "pass a list, a BatchIterator or a callable returning a fresh iterable")
    return lambda: data


def _split(batch, where):
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError(f"each batch of {where} must be a tuple (x, y) or (x, y, *extra), "
                        f"got {type(batch).__name__}" + (f" of length {len(batch)}" if isinstance(batch, (tuple, list))
                                                          else ""))
    return batch[0], batch[1], tuple(batch[2:])


def _count(x, axis):
    shape = np.shape(x)
    if not shape:
        return 1
    return int(shape[axis if axis < len(shape) else 0])


def _loss_and_grad(loss_fn, pred, y):
    result = loss_fn(pred, y)
    if not isinstance(result, tuple) or len(result) != 2:
        raise TypeError(f"loss_fn must return (loss, grad), got {type(result).__name__}")
    loss, grad = result
    loss = float(loss)
    return loss, grad


def _check_common(model, optimizer, epochs, scheduler, scheduler_interval, verbose):
    for method in ("backward", "train", "eval", "state_dict", "load_state_dict"):
        if not callable(getattr(model, method, None)):
            raise TypeError(f"model must be a fastrnn.nn.Module (with forward/backward, train/eval, "
                            f"state_dict); {type(model).__name__} has no {method}()")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fastrnn.optim optimizer, got {type(optimizer).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
    if scheduler is not None and not callable(getattr(scheduler, "step", None)):
        raise TypeError(f"scheduler must have a step() method, got {type(scheduler).__name__}")
    if isinstance(scheduler, ReduceLROnPlateau) and scheduler_interval == "step":
        raise ValueError("ReduceLROnPlateau steps once per epoch on the monitored loss; "
                         "use scheduler_interval='epoch'")
    if verbose not in (0, 1, False, True):
        raise ValueError(f"verbose must be 0 or 1, got {verbose!r}")


class _Meter:
    """Weighted running means of the loss and the metrics."""

    def __init__(self):
        self.sums = {}
        self.weight = 0.0

    def add(self, weight, values):
        self.weight += weight
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + weight * float(value)

    def means(self):
        if self.weight == 0:
            return {key: math.nan for key in self.sums}
        return {key: value / self.weight for key, value in self.sums.items()}


def _metric_values(metrics, pred, y):
    return {name: fn(pred, y) for name, fn in metrics.items()}


def _format(logs, keys):
    parts = []
    for key in keys:
        if key not in logs:
            continue
        value = logs[key]
        if key == "lr":
            parts.append(f"lr {value:.3g}")
        elif key == "samples_per_s":
            parts.append(f"{value:,.0f} samples/s")
        elif key == "time":
            parts.append(f"{value:.3g} s")
        else:
            parts.append(f"{key} {value:.4g}")
    return " - ".join(parts)


def _detach(state):
    """A copy of a recurrent state (array or nested tuple/list of arrays), cut from its chunk."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(_detach(s) for s in state)
    return np.array(state, copy=True)


# --------------------------------------------------------------------------- the loop

def _run(model, optimizer, train_source, val_fn, epochs, train_batch, *, scheduler, scheduler_interval, patience,
         min_delta, monitor, mode, restore_best_weights, callbacks, verbose, file, begin_epoch, metric_names):
    history = History()
    has_val = val_fn is not None
    history.monitor = monitor or ("val_loss" if has_val else "loss")
    known = ["loss", *metric_names]
    known += [f"val_{k}" for k in known] if has_val else []
    if history.monitor not in known:
        raise ValueError(f"monitor must be one of {known}, got {history.monitor!r}")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, (int, np.integer))
                                 or patience < 0):
        raise ValueError(f"patience must be a non-negative int or None, got {patience!r}")
    track_best = (patience is not None) if restore_best_weights is None else bool(restore_best_weights)
    callbacks = list(callbacks or ())
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables cb(epoch, logs), got {type(cb).__name__}")
    sign = 1.0 if mode == "min" else -1.0
    best, best_state, wait = math.inf, None, 0
    tqdm = _tqdm() if verbose else None
    out = file if file is not None else sys.stdout

    for epoch in range(1, epochs + 1):
        begin_epoch()
        model.train()
        start = time.perf_counter()
        meter, samples = _Meter(), 0
        batches = train_source()
        bar = None
        if tqdm is not None:
            total = len(batches) if hasattr(batches, "__len__") else None
            bar = tqdm(batches, total=total, desc=f"epoch {epoch}/{epochs}", leave=True, dynamic_ncols=True)
            batches = bar
        n_batches = 0
        for batch in batches:
            values, weight, count = train_batch(batch)
            meter.add(weight, values)
            samples += count
            n_batches += 1
            if bar is not None:
                elapsed = max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(loss=f"{meter.means()['loss']:.4g}", samples_s=f"{samples / elapsed:,.0f}")
        if n_batches == 0:
            raise ValueError("train_data yielded no batches")
        train_time = max(time.perf_counter() - start, 1e-12)
        logs = {"epoch": epoch, **meter.means()}
        logs["lr"] = float(optimizer.param_groups[0]["lr"])
        if has_val:
            logs.update({f"val_{key}": value for key, value in val_fn().items()})
            model.train()
        logs["time"] = time.perf_counter() - start
        logs["samples_per_s"] = samples / train_time
        current = float(logs[history.monitor])

        if scheduler is not None and scheduler_interval == "epoch":
            if isinstance(scheduler, ReduceLROnPlateau):
                scheduler.step(logs["val_loss"] if has_val else logs["loss"])
            else:
                scheduler.step()

        stop, reason = False, None
        if math.isfinite(current) and (best == math.inf or sign * current < best - min_delta):
            best = sign * current
            history.best_epoch, history.best_value = epoch, current
            wait = 0
            if track_best:
                best_state = model.state_dict()
        else:
            wait += 1
            if patience is not None and wait > patience:
                stop, reason = True, f"no improvement of {history.monitor} for {wait} epochs"
        history.append(logs)

        tail = ("lr", "samples_per_s", "time")
        keys = [k for k in logs if k != "epoch" and k not in tail] + list(tail)
        if bar is not None:
            bar.set_postfix_str(_format(logs, keys))
            bar.close()
        elif verbose:
            print(f"epoch {epoch}/{epochs} - " + _format(logs, keys), file=out, flush=True)

        for cb in callbacks:
            try:
                if cb(epoch, logs) is True:
                    stop, reason = True, reason or "a callback asked to stop"
            except StopTraining:
                stop, reason = True, reason or "a callback raised StopTraining"
        if stop:
            history.stopped_epoch = epoch
            if verbose:
                print(f"stopped after epoch {epoch}: {reason}", file=out, flush=True)
            break

    if track_best and best_state is not None and history.best_epoch != history["epoch"][-1]:
        model.load_state_dict(best_state)
        history.restored = True
        if verbose:
            print(f"restored the weights of epoch {history.best_epoch} "
                  f"({history.monitor} {history.best_value:.4g})", file=out, flush=True)
    return history


def _clipper(optimizer, clip_grad_norm, clip_grad_value):
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if clip_grad_norm is not None and not (isinstance(clip_grad_norm, (int, float)) and clip_grad_norm > 0):
        raise ValueError(f"clip_grad_norm must be a positive number or None, got {clip_grad_norm!r}")
    if clip_grad_value is not None and not (isinstance(clip_grad_value, (int, float)) and clip_grad_value > 0):
        raise ValueError(f"clip_grad_value must be a positive number or None, got {clip_grad_value!r}")

    def clip():
        if clip_grad_value is not None:
            clip_grad_value_(params, clip_grad_value)
        if clip_grad_norm is not None:
            clip_grad_norm_(params, clip_grad_norm)
    return clip


def evaluate(model, loss_fn, data, metrics=None, batch_axis=0):
    """Mean loss (and metrics) of ``model`` over ``data`` in evaluation mode.

    Batches as in :func:`fit`; means are weighted by batch size. Returns
    ``{"loss": ..., name: ...}``. The model's training flag is restored afterwards."""
    source = _epoch_source(data, "data", 1)
    metrics = dict(metrics or {})
    was_training = getattr(model, "training", True)
    model.eval()
    try:
        meter = _Meter()
        for batch in source():
            x, y, extra = _split(batch, "data")
            pred = model(x, *extra)
            loss, _ = _loss_and_grad(loss_fn, pred, y)
            meter.add(_count(x, batch_axis), {"loss": loss, **_metric_values(metrics, pred, y)})
        if meter.weight == 0:
            raise ValueError("data yielded no batches")
        return meter.means()
    finally:
        model.train(was_training)


def fit(model, loss_fn, optimizer, train_data, val_data=None, epochs=1, *, scheduler=None,
        scheduler_interval="epoch", clip_grad_norm=None, clip_grad_value=None, patience=None, min_delta=0.0,
        monitor=None, mode="min", restore_best_weights=None, callbacks=(), metrics=None, batch_axis=0,
        verbose=1, file=None):
    """Train ``model`` for ``epochs`` epochs; returns a :class:`History`.

    Arguments beyond the contract in the module docstring:

    - ``val_data``: batches evaluated (eval mode, no gradients) after every epoch.
    - ``scheduler``: an LR schedule from :mod:`fastrnn.optim`, stepped after every
      epoch (``scheduler_interval="epoch"``) or after every optimizer step
      (``"step"``). A :class:`~fastrnn.optim.ReduceLROnPlateau` is stepped once per
      epoch with the monitored loss (``val_loss`` when there is validation data).
    - ``clip_grad_norm`` / ``clip_grad_value``: clip the gradients before each step
      (value first, then norm, when both are given).
    - Early stopping: ``patience`` (None: off) epochs without an improvement of
      ``monitor`` (default ``"val_loss"``, or ``"loss"`` without validation data) by
      more than ``min_delta`` stop training; ``mode="max"`` for metrics that grow.
    - ``restore_best_weights``: keep a copy of the weights (``state_dict``) of the
      best epoch and load it back at the end if a later epoch was worse. Default:
      on when ``patience`` is set.
    - ``callbacks``: callables ``cb(epoch, logs)`` run after every epoch with that
      epoch's logs (the values appended to the history); a callback returning True
      or raising :class:`StopTraining` ends training.
    - ``metrics``: ``{name: fn(pred, y) -> float}`` logged for training and validation.
    - ``batch_axis``: the axis of x that counts samples (1 for time-major x (T, B, F)).
    - ``verbose``: 1 progress (tqdm bar or one line per epoch, to ``file`` or
      stdout), 0 silent.
    """
    _check_common(model, optimizer, epochs, scheduler, scheduler_interval, verbose)
    train_source = _epoch_source(train_data, "train_data", epochs)
    val_source = _epoch_source(val_data, "val_data", epochs)
    metrics = dict(metrics or {})
    clip = _clipper(optimizer, clip_grad_norm, clip_grad_value)
    step_scheduler = scheduler is not None and scheduler_interval == "step"

    def train_batch(batch):
        x, y, extra = _split(batch, "train_data")
        optimizer.zero_grad()
        pred = model(x, *extra)
        loss, grad = _loss_and_grad(loss_fn, pred, y)
        model.backward(grad)
        clip()
        optimizer.step()
        if step_scheduler:
            scheduler.step()
        n = _count(x, batch_axis)
        return {"loss": loss, **_metric_values(metrics, pred, y)}, n, n

    val_fn = None
    if val_source is not None:
        def val_fn():
            return evaluate(model, loss_fn, val_source(), metrics, batch_axis)

    return _run(model, optimizer, train_source, val_fn, epochs, train_batch, scheduler=scheduler,
                scheduler_interval=scheduler_interval, patience=patience, min_delta=min_delta, monitor=monitor,
                mode=mode, restore_best_weights=restore_best_weights, callbacks=callbacks, verbose=verbose,
                file=file, begin_epoch=lambda: None, metric_names=list(metrics))


# --------------------------------------------------------------------------- truncated BPTT

def tbptt_batches(x, y, k, time_axis=0):
    """Cut one batch of long sequences into chunks of ``k`` steps along ``time_axis``.

    x (T, B, ...) and y (T, B, ...) (``time_axis=1`` for (B, T, ...)) with the same
    T. Returns a list of ``(x_chunk, y_chunk)`` views, in time order; the last chunk
    is shorter when k does not divide T."""
    x, y = np.asarray(x), np.asarray(y)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if time_axis not in (0, 1):
        raise ValueError(f"time_axis must be 0 (time-major) or 1 (batch-first), got {time_axis!r}")
    if x.ndim <= time_axis or y.ndim <= time_axis or x.shape[time_axis] != y.shape[time_axis]:
        raise ValueError(f"x and y must have the same number of steps on axis {time_axis}, "
                         f"got shapes {x.shape} and {y.shape}")
    steps = x.shape[time_axis]
    chunks = []
    for t in range(0, steps, int(k)):
        index = (slice(None),) * time_axis + (slice(t, t + k),)
        chunks.append((x[index], y[index]))
    return chunks


def fit_tbptt(model, loss_fn, optimizer, train_data, k, val_data=None, epochs=1, *, time_axis=0,
              carry_state="batch", scheduler=None, scheduler_interval="epoch", clip_grad_norm=None,
              clip_grad_value=None, patience=None, min_delta=0.0, monitor=None, mode="min",
              restore_best_weights=None, callbacks=(), metrics=None, verbose=1, file=None):
    """Train a stateful recurrent model with truncated back-propagation through time.

    Each batch ``(x, y)`` holds long sequences with per-step targets, time on
    ``time_axis`` (0: x (T, B, F), y (T, B, ...); 1: batch-first). It is cut into
    chunks of ``k`` steps (:func:`tbptt_batches`); for each chunk, in time order::

        pred, state = model(x_chunk, state)        # state: the previous chunk's final state
        loss, g = loss_fn(pred, y_chunk); model.backward(g); clip; optimizer.step()

    The state handed to the next chunk is a copy of the one the model returned and
    **no gradient flows into it**: the model's backward receives only ``g`` (for a
    fastrnn layer, ``rnn.backward(dy)`` with ``dh_n=None``, and the returned ``dh0`` is
    ignored), so back-propagation is truncated at every chunk boundary while the
    forward state carries on. ``state=None`` (zeros) starts every batch
    (``carry_state="batch"``) or only every epoch (``"epoch"``: consecutive batches
    continue the same streams, e.g. a language model over B parallel text streams;
    the batch size must then stay fixed).

    The model's contract: ``model(x, state) -> (pred, new_state)``, ``state`` None or
    what the previous call returned (e.g. ``h`` for a GRU, ``(h, c)`` for an LSTM);
    ``model.backward(dpred)``. With ``k >= T`` this is ordinary training of
    ``pred = model(x, None)[0]``: same updates as :func:`fit`.

    The epoch loss is the mean of chunk losses weighted by chunk length × batch
    size; validation runs the same chunks in eval mode carrying the state. Other
    arguments as :func:`fit` (a per-step scheduler steps after every chunk's update).
    """
    _check_common(model, optimizer, epochs, scheduler, scheduler_interval, verbose)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if time_axis not in (0, 1):
        raise ValueError(f"time_axis must be 0 (time-major) or 1 (batch-first), got {time_axis!r}")
    if carry_state not in ("batch", "epoch"):
        raise ValueError(f"carry_state must be 'batch' or 'epoch', got {carry_state!r}")
    train_source = _epoch_source(train_data, "train_data", epochs)
    val_source = _epoch_source(val_data, "val_data", epochs)
    metrics = dict(metrics or {})
    clip = _clipper(optimizer, clip_grad_norm, clip_grad_value)
    step_scheduler = scheduler is not None and scheduler_interval == "step"
    batch_axis = 1 - time_axis
    carried = {"state": None}

    def forward(x_chunk, state):
        result = model(x_chunk, state)
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError("fit_tbptt needs a stateful model: model(x, state) must return (pred, new_state), "
                            f"got {type(result).__name__}")
        return result

    def begin_epoch():
        carried["state"] = None

    def train_batch(batch):
        x, y, extra = _split(batch, "train_data")
        if extra:
            raise ValueError("fit_tbptt batches must be (x, y); extra elements such as lengths are not supported")
        state = carried["state"] if carry_state == "epoch" else None
        meter = _Meter()
        for x_chunk, y_chunk in tbptt_batches(x, y, k, time_axis):
            optimizer.zero_grad()
            pred, new_state = forward(x_chunk, state)
            loss, grad = _loss_and_grad(loss_fn, pred, y_chunk)
            model.backward(grad)
            clip()
            optimizer.step()
            if step_scheduler:
                scheduler.step()
            state = _detach(new_state)
            weight = x_chunk.shape[time_axis] * x_chunk.shape[batch_axis]
            meter.add(weight, {"loss": loss, **_metric_values(metrics, pred, y_chunk)})
        carried["state"] = state
        return meter.means(), meter.weight, _count(x, batch_axis)

    val_fn = None
    if val_source is not None:
        def val_fn():
            was_training = getattr(model, "training", True)
            model.eval()
            try:
                meter, state = _Meter(), None
                for batch in val_source():
                    x, y, extra = _split(batch, "val_data")
                    if extra:
                        raise ValueError("fit_tbptt batches must be (x, y); extra elements such as lengths "
                                         "are not supported")
                    if carry_state == "batch":
                        state = None
                    for x_chunk, y_chunk in tbptt_batches(x, y, k, time_axis):
                        pred, state = forward(x_chunk, state)
                        loss, _ = _loss_and_grad(loss_fn, pred, y_chunk)
                        weight = x_chunk.shape[time_axis] * x_chunk.shape[batch_axis]
                        meter.add(weight, {"loss": loss, **_metric_values(metrics, pred, y_chunk)})
                if meter.weight == 0:
                    raise ValueError("val_data yielded no batches")
                return meter.means()
            finally:
                model.train(was_training)

    return _run(model, optimizer, train_source, val_fn, epochs, train_batch, scheduler=scheduler,
                scheduler_interval=scheduler_interval, patience=patience, min_delta=min_delta, monitor=monitor,
                mode=mode, restore_best_weights=restore_best_weights, callbacks=callbacks, verbose=verbose,
                file=file, begin_epoch=begin_epoch, metric_names=list(metrics))
