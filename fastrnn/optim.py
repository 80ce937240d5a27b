"""Optimizers, gradient clipping and learning-rate schedules (``torch.optim`` on NumPy).

Optimizers update :class:`fastrnn.nn.Parameter` values **in place** (``p.data``
keeps its identity) from their accumulated ``.grad``; parameters whose ``.grad`` is
None are skipped, exactly as torch skips them. The update rules, hyperparameter
names and defaults are torch's (single-tensor code path), so the same parameters
and gradients give the same trajectory as ``torch.optim`` to float round-off:

- :class:`SGD` (momentum, dampening, Nesterov, L2 weight decay),
- :class:`Adam` (L2 weight decay, AMSGrad), :class:`AdamW` (decoupled weight decay),
- :class:`RMSprop` (momentum, centered).

Every optimizer takes ``maximize=False`` too (ascend instead of descend), as torch's do.

**Parameter groups.** ``params`` is an iterable of Parameters (e.g.
``model.parameters()``) or, as in torch, an iterable of dicts, each with a
``"params"`` entry plus hyperparameters that override the defaults for that group::

    opt = Adam([{"params": model.rnn.parameters()},
                {"params": model.head.parameters(), "lr": 1e-2}], lr=1e-3)

``opt.param_groups`` is the list of group dicts (the schedules change their
``"lr"``); ``opt.state`` maps each Parameter to its state dict.
``state_dict()`` / ``load_state_dict()`` use torch's layout — ``{"state": {index:
{...}}, "param_groups": [{..., "params": [index, ...]}]}`` with parameters numbered
in group order — and ``load_state_dict`` also accepts a ``torch.optim`` state dict
of the same optimizer (tensors are converted with ``np.asarray``).

State arrays have the parameter's dtype: float32 parameters are updated in float32
(hyperparameters and bias corrections are Python floats, as in torch).

Schedules (:class:`StepLR`, :class:`ExponentialLR`, :class:`CosineWithWarmup`,
:class:`ReduceLROnPlateau`) follow torch's protocol: the constructor records each
group's ``initial_lr`` and performs step 0; call ``step()`` once per epoch (or per
optimizer step, your choice, after ``optimizer.step()``); ``get_last_lr()`` lists
the current rate of each group.
"""
import math
from collections.abc import Iterable, Mapping

import numpy as np

from . import _validate as check
from .nn.module import Module, Parameter

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "clip_grad_norm_", "clip_grad_value_",
           "LRScheduler", "StepLR", "ExponentialLR", "CosineWithWarmup", "ReduceLROnPlateau"]


# --------------------------------------------------------------------------- helpers

def _number(name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a float checked against [low, high] (open ends when asked)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    if low is not None and (value < low or (low_open and value == low)):
        bound = f"> {low}" if low_open else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        bound = f"< {high}" if high_open else f"<= {high}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _param_list(params, what="params"):
    """A list of Parameters from a Parameter or an iterable of them."""
    if isinstance(params, Parameter):
        return [params]
    if isinstance(params, Module):
        raise TypeError(f"{what} must be an iterable of Parameters, got the module "
                        f"{type(params).__name__}: pass module.parameters()")
    if isinstance(params, (np.ndarray, str, bytes)) or not isinstance(params, Iterable):
        raise TypeError(f"{what} must be a Parameter or an iterable of Parameters, got {type(params).__name__}")
    out = list(params)
    for i, p in enumerate(out):
        if not isinstance(p, Parameter):
            raise TypeError(f"{what}[{i}] must be a fastrnn.nn.Parameter, got {type(p).__name__}"
                            + (" (pass module.parameters())" if isinstance(p, Module) else ""))
    return out


def _to_numpy(value):
    """A torch tensor (duck-typed), Parameter or array-like as an ndarray."""
    if hasattr(value, "detach"):
        value = value.detach()
        if hasattr(value, "cpu"):
            value = value.cpu()
    if isinstance(value, Parameter):
        value = value.data
    return np.asarray(value)


# --------------------------------------------------------------------------- base class

class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad``, state dicts.

    Subclasses set their defaults, validate hyperparameters in
    :meth:`_check_group` and implement :meth:`_update` (one parameter).
    """

    _state_keys = ()  # names of the per-parameter state entries that are arrays

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}
        if isinstance(params, Module):
            raise TypeError(f"params must be an iterable of Parameters, got the module "
                            f"{type(params).__name__}: pass module.parameters()")
        if isinstance(params, Parameter):
            params = [params]
        if isinstance(params, (np.ndarray, str, bytes, Mapping)) or not isinstance(params, Iterable):
            raise TypeError("params must be an iterable of Parameters or of param-group dicts, "
                            f"got {type(params).__name__}")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], Mapping):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Add a group: a dict with ``"params"`` and optional hyperparameter overrides."""
        if not isinstance(param_group, Mapping):
            raise TypeError(f"a param group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("a param group must have a 'params' entry")
        group = dict(param_group)
        group["params"] = _param_list(group["params"], "params")
        if not group["params"]:
            raise ValueError("a param group must hold at least one Parameter")
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)} for {type(self).__name__}; "
                             f"known: {sorted(self.defaults)}")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        ids = [id(p) for p in group["params"]]
        if len(set(ids)) != len(ids) or seen & set(ids):
            raise ValueError("a Parameter appears more than once in the optimizer's groups")
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group):
        group["lr"] = _number("lr", group["lr"], 0.0)
        group["maximize"] = check.flag("maximize", group["maximize"])

    def zero_grad(self, set_to_none=True):
        """Reset every parameter's gradient: to None (default, as torch) or to zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                p.zero_grad(set_to_none)

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()`` when given.

        ``closure`` (optional) recomputes the loss and gradients before the update,
        as in torch."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = -p.grad if group["maximize"] else p.grad
                self._update(p, grad, group, self.state.setdefault(p, {}))
        return loss

    def _update(self, p, grad, group, state):
        raise NotImplementedError

    # -- state dicts
    def _index(self):
        return {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}

    def state_dict(self):
        """``{"state": {index: {name: value}}, "param_groups": [{..., "params": [index]}]}``.

        Parameters are numbered in group order, as torch does; arrays are copies."""
        index = self._index()
        state = {}
        for p, entries in self.state.items():
            if id(p) in index and entries:
                state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in entries.items()}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
                  for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a :meth:`state_dict` (ours or ``torch.optim``'s for the same optimizer).

        Group hyperparameters are taken from ``state_dict``; state arrays are copied,
        cast to each parameter's dtype and checked against its shape. The number of
        groups and of parameters per group must match."""
        if not isinstance(state_dict, Mapping) or "state" not in state_dict or "param_groups" not in state_dict:
            raise TypeError("state_dict must be a mapping with 'state' and 'param_groups'")
        groups = list(state_dict["param_groups"])
        if len(groups) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(groups)} param groups, the optimizer has {len(self.param_groups)}")
        id_to_param = {}
        for i, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"param group {i}: state_dict has {len(saved['params'])} parameters, "
                                 f"the optimizer has {len(own['params'])}")
            for key, p in zip(saved["params"], own["params"]):
                id_to_param[key] = p
        new_state = {}
        for key, entries in state_dict["state"].items():
            if key not in id_to_param:
                raise ValueError(f"state_dict has state for an unknown parameter index {key!r}")
            p = id_to_param[key]
            loaded = {}
            for name, value in entries.items():
                if name == "step":
                    loaded[name] = round(float(_to_numpy(value)))
                elif value is None:
                    loaded[name] = None
                else:
                    array = _to_numpy(value)
                    if array.shape != p.shape:
                        raise ValueError(f"state {name!r} of parameter {key!r} has shape {array.shape}, "
                                         f"expected {p.shape}")
                    loaded[name] = np.array(array, dtype=p.dtype, order="C", copy=True)
            new_state[p] = loaded
        for saved, own in zip(groups, self.param_groups):
            for name, value in saved.items():
                if name == "params":
                    continue
                if name in self.defaults or name == "initial_lr":
                    own[name] = tuple(value) if isinstance(value, list) else value
            self._check_group(own)
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        return "\n".join(lines) + "\n)"


# --------------------------------------------------------------------------- SGD

class SGD(Optimizer):
    """Stochastic gradient descent, ``torch.optim.SGD``'s rule::

        g = grad + weight_decay * p
        b = g (first step) | momentum * b + (1 - dampening) * g      (momentum != 0)
        g = g + momentum * b (nesterov) | b
        p -= lr * g

    Nesterov needs ``momentum > 0`` and ``dampening == 0``. ``lr`` has a default of
    1e-3 as in torch >= 2.2.
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _check_group(self, group):
        super()._check_group(group)
        group["momentum"] = _number("momentum", group["momentum"], 0.0)
        group["dampening"] = _number("dampening", group["dampening"])
        group["weight_decay"] = _number("weight_decay", group["weight_decay"], 0.0)
        group["nesterov"] = check.flag("nesterov", group["nesterov"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

    def _update(self, p, grad, group, state):
        wd, momentum = group["weight_decay"], group["momentum"]
        if wd != 0:
            grad = grad + wd * p.data
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = np.array(grad, dtype=p.dtype, copy=True)
                state["momentum_buffer"] = buf
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        p.data -= group["lr"] * grad


# --------------------------------------------------------------------------- Adam, AdamW

class Adam(Optimizer):
    """Adam (Kingma & Ba), ``torch.optim.Adam``'s rule, step t = 1, 2, ...::

        g = grad + weight_decay * p                     (L2, coupled)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        v_max = max(v_max, v)                           (amsgrad; used instead of v)
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    State: ``step``, ``exp_avg``, ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``.
    """

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def _check_group(self, group):
        super()._check_group(group)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = (_number("betas[0]", betas[0], 0.0, 1.0, high_open=True),
                          _number("betas[1]", betas[1], 0.0, 1.0, high_open=True))
        group["eps"] = _number("eps", group["eps"], 0.0)
        group["weight_decay"] = _number("weight_decay", group["weight_decay"], 0.0)
        group["amsgrad"] = check.flag("amsgrad", group["amsgrad"])

    def _update(self, p, grad, group, state):
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
        state["step"] += 1
        step = state["step"]
        if wd != 0:
            if self._decoupled:
                p.data *= 1 - lr * wd
            else:
                grad = grad + wd * p.data
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg += (1 - beta1) * (grad - exp_avg)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * (grad * grad)
        bias_correction1 = 1 - beta1 ** step
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
        if group["amsgrad"]:
            if state.get("max_exp_avg_sq") is None:  # amsgrad switched on after loading a state
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            second = state["max_exp_avg_sq"]
        else:
            second = exp_avg_sq
        denom = np.sqrt(second) / bias_correction2_sqrt
        denom += eps
        p.data -= (lr / bias_correction1) * (exp_avg / denom)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter), ``torch.optim.AdamW``: Adam whose weight decay is
    decoupled — ``p *= 1 - lr * weight_decay`` before the Adam step, the gradient
    untouched. Default ``weight_decay=1e-2`` as in torch."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)


# --------------------------------------------------------------------------- RMSprop

class RMSprop(Optimizer):
    """RMSprop, ``torch.optim.RMSprop``'s rule::

        g = grad + weight_decay * p
        v = alpha * v + (1 - alpha) * g**2
        m = alpha * m + (1 - alpha) * g                          (centered)
        d = sqrt(v - m**2) + eps (centered) | sqrt(v) + eps
        b = momentum * b + g / d; p -= lr * b                    (momentum > 0)
        p -= lr * g / d                                          (otherwise)

    State: ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0), ``grad_avg`` (centered).
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _check_group(self, group):
        super()._check_group(group)
        group["alpha"] = _number("alpha", group["alpha"], 0.0)
        group["eps"] = _number("eps", group["eps"], 0.0)
        group["weight_decay"] = _number("weight_decay", group["weight_decay"], 0.0)
        group["momentum"] = _number("momentum", group["momentum"], 0.0)
        group["centered"] = check.flag("centered", group["centered"])

    def _update(self, p, grad, group, state):
        alpha, wd, momentum = group["alpha"], group["weight_decay"], group["momentum"]
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(p.data)
            if momentum > 0:
                state["momentum_buffer"] = np.zeros_like(p.data)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(p.data)
        state["step"] += 1
        if wd != 0:
            grad = grad + wd * p.data
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * (grad * grad)
        if group["centered"]:
            grad_avg = state.get("grad_avg")
            if grad_avg is None:
                grad_avg = state["grad_avg"] = np.zeros_like(p.data)
            grad_avg += (1 - alpha) * (grad - grad_avg)
            avg = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = np.sqrt(square_avg)
        avg += group["eps"]
        if momentum > 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.zeros_like(p.data)
            buf *= momentum
            buf += grad / avg
            p.data -= group["lr"] * buf
        else:
            p.data -= group["lr"] * (grad / avg)


# --------------------------------------------------------------------------- clipping

def clip_grad_norm_(params, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients of ``params`` in place so their joint norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: the total norm is the ``norm_type``-norm
    of the per-parameter norms (``inf`` for the max-abs norm); every gradient is
    multiplied by ``min(1, max_norm / (total_norm + 1e-6))``. Parameters without a
    gradient are ignored. Returns the total norm before clipping (a float; 0.0 when no
    parameter has a gradient). With ``error_if_nonfinite=True`` a NaN/inf total norm
    raises ``RuntimeError`` instead of propagating into the gradients.
    """
    grads = [p.grad for p in _param_list(params) if p.grad is not None]
    max_norm = _number("max_norm", max_norm, 0.0)
    norm_type = _number("norm_type", norm_type)
    if norm_type <= 0:  # -inf included: only the max-abs norm is offered
        raise ValueError(f"norm_type must be positive or inf, got {norm_type}")
    if not grads:
        return 0.0
    if math.isinf(norm_type):
        # np.max, not Python's max: a NaN must win wherever it sits (max() drops it
        # unless it comes first, and the clip would then hide it)
        total = float(np.max([np.max(np.abs(g)) if g.size else 0.0 for g in grads]))
    else:
        norms = np.array([np.linalg.norm(g.ravel().astype(np.float64), ord=norm_type) for g in grads])
        total = float(np.linalg.norm(norms, ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"the total norm of order {norm_type} of the gradients is {total}; "
                           "pass error_if_nonfinite=False to clip anyway")
    coef = min(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g *= coef
    return total


def clip_grad_value_(params, clip_value):
    """Clip every gradient of ``params`` in place to ``[-clip_value, clip_value]``
    (``torch.nn.utils.clip_grad_value_``); parameters without a gradient are ignored."""
    clip_value = _number("clip_value", clip_value, 0.0)
    for p in _param_list(params):
        if p.grad is not None:
            np.clip(p.grad, -clip_value, clip_value, out=p.grad)


# --------------------------------------------------------------------------- schedules

class LRScheduler:
    """Base class of the epoch/step schedules (torch's ``LRScheduler`` protocol).

    The constructor sets ``group["initial_lr"]`` (kept if already there, so schedules
    can be stacked), records ``base_lrs`` and takes step 0 (``last_epoch = 0``).
    Each :meth:`step` increments ``last_epoch`` and writes :meth:`get_lr` into the
    groups. ``state_dict()`` / ``load_state_dict()`` save everything but the optimizer.
    """

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastrnn.optim.Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param group {i} has no 'initial_lr' (needed to resume with last_epoch >= 0)")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = int(last_epoch)
        self.step()

    def get_lr(self):
        """The rates for the current ``last_epoch`` (one per group)."""
        raise NotImplementedError

    def step(self):
        """Advance one epoch (or step) and set each group's ``lr``."""
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = float(lr)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The rate of each group set by the last :meth:`step`."""
        return list(self._last_lr)

    def state_dict(self):
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)


class StepLR(LRScheduler):
    """Multiply each group's rate by ``gamma`` every ``step_size`` epochs (``torch.optim.lr_scheduler.StepLR``,
    its chainable form: the current rate is multiplied, so manual changes persist)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if isinstance(step_size, bool) or not isinstance(step_size, (int, np.integer)) or step_size < 1:
            raise ValueError(f"step_size must be a positive int, got {step_size!r}")
        self.step_size = int(step_size)
        self.gamma = _number("gamma", gamma, 0.0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return lrs
        return [lr * self.gamma for lr in lrs]


class ExponentialLR(LRScheduler):
    """Multiply each group's rate by ``gamma`` every epoch (``torch.optim.lr_scheduler.ExponentialLR``)."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = _number("gamma", gamma, 0.0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        if self.last_epoch == 0:
            return lrs
        return [lr * self.gamma for lr in lrs]


class CosineWithWarmup(LRScheduler):
    """Linear warm-up then cosine decay to ``min_lr``, as a function of the step count ``t``
    (``last_epoch``; usually stepped once per optimizer step)::

        lr(t) = base_lr * (t + 1) / warmup_steps                            t < warmup_steps
        lr(t) = min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2,
                p = (t - warmup_steps) / (total_steps - warmup_steps)       warmup_steps <= t < total_steps
        lr(t) = min_lr                                                      t >= total_steps

    The warm-up starts at ``base_lr / warmup_steps`` rather than 0, so the first
    update is not wasted, and reaches ``base_lr`` at ``t = warmup_steps - 1``.
    ``min_lr`` is a float or one per group. Closed form: the rate depends only on
    ``t`` and ``base_lrs`` (manual changes to ``lr`` are overwritten).
    """

    def __init__(self, optimizer, warmup_steps, total_steps, min_lr=0.0, last_epoch=-1):
        for name, value in (("warmup_steps", warmup_steps), ("total_steps", total_steps)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if total_steps <= warmup_steps:
            raise ValueError(f"total_steps ({total_steps}) must be greater than warmup_steps ({warmup_steps})")
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)
        groups = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 1
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != groups:
                raise ValueError(f"min_lr has {len(min_lr)} values for {groups} param groups")
            self.min_lrs = [_number("min_lr", m, 0.0) for m in min_lr]
        else:
            self.min_lrs = [_number("min_lr", min_lr, 0.0)] * groups
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t, base_lr, min_lr=0.0):
        """The formula above for one group."""
        if t < self.warmup_steps:
            return base_lr * (t + 1) / self.warmup_steps
        if t >= self.total_steps:
            return min_lr
        progress = (t - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def get_lr(self):
        return [self.lr_at(self.last_epoch, base, low) for base, low in zip(self.base_lrs, self.min_lrs)]


class ReduceLROnPlateau:
    """Cut the rate by ``factor`` when a monitored metric stops improving
    (``torch.optim.lr_scheduler.ReduceLROnPlateau``, same arguments and logic).

    Call ``step(metric)`` once per epoch (e.g. with the validation loss). A value is
    an improvement when it beats the best so far by ``threshold`` (relative:
    ``best * (1 - threshold)`` in mode "min", ``best * (1 + threshold)`` in "max";
    absolute: ``best -/+ threshold``). After more than ``patience`` epochs without
    improvement every group's rate becomes ``max(lr * factor, min_lr)`` (changes
    smaller than ``eps`` are skipped), then ``cooldown`` epochs pass before bad
    epochs count again.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastrnn.optim.Optimizer, got {type(optimizer).__name__}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.factor = _number("factor", factor, 0.0, 1.0, high_open=True)
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 0:
            raise ValueError(f"patience must be a non-negative int, got {patience!r}")
        if isinstance(cooldown, bool) or not isinstance(cooldown, (int, np.integer)) or cooldown < 0:
            raise ValueError(f"cooldown must be a non-negative int, got {cooldown!r}")
        self.optimizer = optimizer
        groups = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != groups:
                raise ValueError(f"min_lr has {len(min_lr)} values for {groups} param groups")
            self.min_lrs = [_number("min_lr", m, 0.0) for m in min_lr]
        else:
            self.min_lrs = [_number("min_lr", min_lr, 0.0)] * groups
        self.mode, self.threshold_mode = mode, threshold_mode
        self.patience, self.cooldown = int(patience), int(cooldown)
        self.threshold = _number("threshold", threshold, 0.0)
        self.eps = _number("eps", eps, 0.0)
        self.last_epoch = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0

    def is_better(self, value, best):
        """Whether ``value`` improves on ``best`` under the mode and threshold."""
        if self.mode == "min":
            bound = best * (1.0 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold
            return value < bound
        bound = best * (1.0 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold
        return value > bound

    def step(self, metrics):
        """Record one epoch's metric (a number) and reduce the rates when it has plateaued."""
        current = float(metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, low in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, low)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The rate of each group after the last :meth:`step`."""
        return list(self._last_lr)

    def state_dict(self):
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)
