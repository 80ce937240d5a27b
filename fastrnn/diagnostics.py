"""Gradient-flow diagnostics: how far back in time dL/dh_t survives.

The fused backward kernels can record the total gradient dL/dh_t of every step
(``hidden_grads_out`` in :mod:`fastrnn.functional`: dy_t plus what flows back from
step t+1; for an LSTM with projection the width-P h). This module turns that trace
into the classic vanishing/exploding-gradient picture:

* :func:`hidden_grads` / :func:`hidden_grad_norms` for one functional call
  (``"lstm"``, ``"gru"`` or ``"rnn"``);
* :func:`layer_hidden_grads` / :func:`layer_hidden_grad_norms` for one layer (and
  direction) of a stacked ``fastrnn.LSTM/GRU/RNN`` module;
* :func:`gradient_reach`: how many steps back a norm stays above a fraction of its
  last-step value;
* :func:`plot_gradient_flow`: ||dL/dh_t|| against steps back, log scale
  (needs matplotlib: ``pip install fastrnn[bench]``).

Default loss: unless a gradient is given, L = sum_b <u, y[len_b - 1, b]> with
u = (1, ..., 1) / sqrt(width): a loss on each sequence's last valid step of the
(top layer's) output whose gradient has unit norm, so the norms read directly as
"fraction of the last step's gradient that reaches step t".

Norms: for each step t, the L2 norm over the hidden units of dL/dh_t of every
sequence, shape (T, B) with ``per_sequence=True``; by default their mean over the
sequences still running at t (t < lengths[b]), shape (T,) (0 where none is).
Everything runs on the CPU kernels (the CUDA backward records no trace).
"""
import numpy as np

from . import _validate as check
from . import functional as F

__all__ = ["hidden_grads", "hidden_grad_norms", "layer_hidden_grads", "layer_hidden_grad_norms",
           "gradient_reach", "plot_gradient_flow"]

_CELLS = {"lstm": (F.lstm, F.lstm_backward), "gru": (F.gru, F.gru_backward), "rnn": (F.rnn, F.rnn_backward)}


def _last_step_grad(steps, batch, width, lengths, dtype):
    """dy of the default loss: 1/sqrt(width) at each sequence's last valid step."""
    dy = np.zeros((steps, batch, width), dtype)
    last = np.full(batch, steps - 1) if lengths is None else np.asarray(lengths) - 1
    dy[last, np.arange(batch)] = 1.0 / np.sqrt(width)
    return dy


def _norms(trace, lengths, per_sequence):
    per = np.sqrt(np.sum(np.square(trace, dtype=np.float64), axis=2))  # (T, B), float64
    if per_sequence:
        return per
    steps, batch = per.shape
    valid = np.ones((steps, batch), bool) if lengths is None else np.arange(steps)[:, None] < lengths[None, :]
    counts = valid.sum(axis=1)
    return np.where(counts > 0, (per * valid).sum(axis=1) / np.maximum(counts, 1), 0.0)


def hidden_grads(cell, x, w_ih, w_hh, b_ih=None, b_hh=None, *, h0=None, c0=None, lengths=None,
                 dy=None, dh_n=None, dc_n=None, clip_per_step=None, **options):
    """dL/dh_t of every step of one functional call: a (T, B, W) array (0 past each length).

    ``cell``: "lstm", "gru" or "rnn"; the arguments are those of
    :func:`fastrnn.functional.lstm` / ``gru`` / ``rnn`` (``options``: ``w_hr`` for the
    LSTM, ``reset_after`` for the GRU, ``nonlinearity`` for the RNN), time-major.
    ``dy``, ``dh_n``, ``dc_n``: the loss gradients as for the backward; when all are
    None the default loss of the module docstring is used (a unit gradient on each
    sequence's last valid step). ``clip_per_step``: as in the backward (the trace is
    then the clipped one).
    """
    if cell not in _CELLS:
        raise ValueError(f"cell must be one of 'lstm', 'gru', 'rnn'; got {cell!r}")
    forward, backward = _CELLS[cell]
    states = dict(h0=h0, c0=c0) if cell == "lstm" else dict(h0=h0)
    if cell != "lstm" and c0 is not None:
        raise ValueError(f"c0 applies only to the LSTM, got one for {cell!r}")
    result = forward(x, w_ih, w_hh, b_ih, b_hh, **states, lengths=lengths, training=True, **options)
    y, ctx = result[0], result[-1]
    if dy is None and dh_n is None and dc_n is None:
        dy = _last_step_grad(*y.shape, lengths, y.dtype)
    elif dy is None:
        dy = np.zeros_like(y)
    finals = dict(dh_n=dh_n, dc_n=dc_n) if cell == "lstm" else dict(dh_n=dh_n)
    if cell != "lstm" and dc_n is not None:
        raise ValueError(f"dc_n applies only to the LSTM, got one for {cell!r}")
    trace = np.empty(y.shape, y.dtype)
    backward(ctx, dy, **finals, clip_per_step=clip_per_step, hidden_grads_out=trace)
    return trace


def hidden_grad_norms(cell, x, w_ih, w_hh, b_ih=None, b_hh=None, *, h0=None, c0=None, lengths=None,
                      dy=None, dh_n=None, dc_n=None, clip_per_step=None, per_sequence=False, **options):
    """||dL/dh_t|| for every step t of one functional call (see :func:`hidden_grads`).

    Returns a float64 array: (T,) the mean over the sequences running at step t of
    each one's L2 norm, or (T, B) the per-sequence norms with ``per_sequence=True``.
    """
    trace = hidden_grads(cell, x, w_ih, w_hh, b_ih, b_hh, h0=h0, c0=c0, lengths=lengths, dy=dy, dh_n=dh_n,
                         dc_n=dc_n, clip_per_step=clip_per_step, **options)
    lengths = None if lengths is None else check.lengths_array(lengths, trace.shape[1], trace.shape[0])
    return _norms(trace, lengths, per_sequence)


# --- one layer of a stacked module ----------------------------------------------------
def layer_hidden_grads(module, x, *, layer=None, direction=0, hx=None, lengths=None, dy=None):
    """dL/dh_t of every step of one layer and direction of a stacked recurrent module.

    ``module``: a ``fastrnn.LSTM``, ``GRU`` or ``RNN`` (any number of layers, uni- or
    bidirectional, on the CPU). ``x``, ``hx`` (``(h0, c0)`` for the LSTM, ``h0``
    otherwise) and ``lengths`` as for the module's forward. ``layer`` (default: the
    top one) and ``direction`` (0 forward, 1 reverse) pick the layer.

    The loss is on the TOP layer's output: ``dy`` shaped like the module's output y
    (batch_first and unbatched as the module), or None for the default loss on each
    sequence's last valid step (module docstring). Layers below ``layer`` run in
    inference mode to produce its input; ``layer`` and the layers above it run in
    training mode through :mod:`fastrnn.functional` with the module's parameters and
    are backpropagated from the top, the trace being recorded on ``layer``. The
    module's inter-layer dropout is not applied (eval-mode semantics); the module
    itself is not changed (no parameter ``.grad`` is touched).

    Returns a time-major (T, B, W) array (W: hidden_size, or proj_size for an LSTM
    with projection) indexed by the real time step t for either direction, 0 past
    each sequence's length.
    """
    from .nn.recurrent import _RecurrentBase, _reverse_within_lengths
    if not isinstance(module, _RecurrentBase):
        raise TypeError(f"module must be a fastrnn.LSTM, GRU or RNN layer, got {type(module).__name__}")
    layer = module.num_layers - 1 if layer is None else layer
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < module.num_layers:
        raise ValueError(f"layer must be an integer in 0..{module.num_layers - 1} (num_layers - 1), got {layer!r}")
    if isinstance(direction, bool) or direction not in range(module.num_directions):
        raise ValueError(f"direction must be 0{' or 1' if module.bidirectional else ''} for this "
                         f"{'bi' if module.bidirectional else 'uni'}directional module, got {direction!r}")
    x, unbatched, lengths = module._prepare_input(x, lengths)
    steps, batch, _ = x.shape
    width = module.output_size
    if module._cell == "lstm":
        h0, c0 = (None, None) if hx is None else module._pair("hx", hx)
        states = [module._prepare_state("h0", h0, batch, width, unbatched),
                  module._prepare_state("c0", c0, batch, module.hidden_size, unbatched)]
    else:
        states = [module._prepare_state("h0", hx, batch, width, unbatched)]

    layer_input = x
    for below in range(layer):
        layer_input, _ = module._run_layer(below, layer_input, states, lengths, False)
    saved = []
    for above in range(layer, module.num_layers):
        # training contexts, eval-form regularizers (no dropout masks; zoneout's expectation)
        layer_input, contexts = module._run_layer(above, layer_input, states, lengths, True, regularized=False)
        saved.append(contexts)

    out_width = module.num_directions * width
    if dy is None:
        d_out = _last_step_grad(steps, batch, out_width, lengths, module.dtype)
    else:
        d_out = module._dy_array(dy, (steps, batch, out_width), unbatched)
    trace = np.empty((steps, batch, width), module.dtype)
    for current in range(module.num_layers - 1, layer - 1, -1):
        d_in = None
        for d, ctx in enumerate(saved[current - layer]):
            dy_dir = d_out[:, :, d * width:(d + 1) * width]
            if d == 1:
                dy_dir = _reverse_within_lengths(dy_dir, lengths)
            record = current == layer and d == direction
            grads = getattr(F, ctx.cell + "_backward")(ctx, np.ascontiguousarray(dy_dir),
                                                       hidden_grads_out=trace if record else None)
            if current > layer:
                dx = grads.dx if d == 0 else _reverse_within_lengths(grads.dx, lengths)
                d_in = dx if d_in is None else d_in + dx
        d_out = d_in
    return _reverse_within_lengths(trace, lengths) if direction == 1 else trace


def layer_hidden_grad_norms(module, x, *, layer=None, direction=0, hx=None, lengths=None, dy=None,
                            per_sequence=False):
    """||dL/dh_t|| of one layer and direction of a stacked module (see :func:`layer_hidden_grads`).

    (T,) means over the running sequences, or (T, B) with ``per_sequence=True``; float64.
    """
    trace = layer_hidden_grads(module, x, layer=layer, direction=direction, hx=hx, lengths=lengths, dy=dy)
    if lengths is not None:
        lengths = check.lengths_array(lengths, trace.shape[1], trace.shape[0])
    return _norms(trace, lengths, per_sequence)


# --- summaries and the plot -------------------------------------------------------------
def gradient_reach(norms, ratio=1e-3):
    """How many steps back ||dL/dh_t|| stays at or above ``ratio`` times its last-step value.

    ``norms``: (T,) with t ascending (the last entry is the step the loss is on).
    Returns k in 0..T-1: norms[T-1-j] >= ratio * norms[T-1] for every j <= k, and
    k = T-1 when it never drops below. 0 when the last-step norm is 0 or not finite.
    """
    norms = np.asarray(norms, np.float64)
    if norms.ndim != 1 or norms.size == 0:
        raise ValueError(f"norms must be a non-empty 1-D array (T,), got shape {norms.shape}")
    if isinstance(ratio, (bool, np.bool_)) or not isinstance(ratio, (int, float, np.integer, np.floating)) \
            or not 0 < ratio <= 1:
        raise ValueError(f"ratio must be a number in (0, 1], got {ratio!r}")
    last = norms[-1]
    if not np.isfinite(last) or last <= 0:
        return 0
    above = norms[::-1] >= ratio * last  # steps back 0, 1, ...
    below = np.flatnonzero(~above)
    return int(norms.size - 1 if below.size == 0 else below[0] - 1)


def plot_gradient_flow(norms, path=None, *, title=None, normalize=True, threshold=None, ax=None):
    """Plot ||dL/dh_t|| against steps back from the last step, log scale, one line per cell.

    ``norms``: a mapping label -> (T,) norms with t ascending (e.g. from
    :func:`hidden_grad_norms`), or one array. ``normalize``: divide each line by its
    last-step value (lines then start at 1). ``threshold``: draw a horizontal line
    there (e.g. 1e-3). ``path``: write the figure there (PNG by the extension).
    ``ax``: draw into this matplotlib Axes instead of a new figure.
    Returns the matplotlib Figure. Needs matplotlib (``pip install fastrnn[bench]``).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plot_gradient_flow needs matplotlib, which fastrnn's 'bench' extra installs: "
                          "pip install 'fastrnn[bench]' (or pip install matplotlib)") from None
    if not hasattr(norms, "items"):
        norms = {"||dL/dh_t||": norms}
    if ax is None:
        figure = Figure(figsize=(7, 4.2))
        ax = figure.add_subplot()
    else:
        figure = ax.figure
    for label, values in norms.items():
        values = np.asarray(values, np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"norms[{label!r}] must be a non-empty 1-D array (T,), got shape {values.shape}")
        if normalize and values[-1] > 0:
            values = values / values[-1]
        back = np.arange(values.size)
        shown = values[::-1].copy()
        shown[~(shown > 0)] = np.nan  # log scale: zeros (and underflow) leave a gap
        ax.plot(back, shown, label=label)
    if threshold is not None:
        ax.axhline(threshold, color="gray", linestyle="--", linewidth=1, label=f"{threshold:g}")
    ax.set_yscale("log")
    ax.set_xlabel("steps back from the last step (T - 1 - t)")
    ax.set_ylabel("||dL/dh_t||" + (" / ||dL/dh_T-1||" if normalize else ""))
    if title:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    if path is not None:
        figure.savefig(path, dpi=110, bbox_inches="tight")
    return figure
