"""Optimizers, gradient clipping and LR schedules against torch.optim (live, float64)."""
import math

import numpy as np
import pytest

from fastrnn import optim
from fastrnn.nn import Linear, Parameter

SHAPES = [(3, 4), (5,), (2, 3, 2)]
STEPS = 6
RTOL = 1e-10


def make_params(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]


def grad_sequence(seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(STEPS)]


def run_pair(ours_cls, torch_cls, kwargs, steps=STEPS, none_grad=None):
    """Run ours and torch's optimizer on the same params and gradients; returns both param lists."""
    torch = pytest.importorskip("torch")
    params = make_params()
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    opt = ours_cls(params, **kwargs)
    topt = torch_cls(tparams, **kwargs)
    for grads in grad_sequence()[:steps]:
        for i, (p, tp, g) in enumerate(zip(params, tparams, grads)):
            if none_grad == i:
                p.grad, tp.grad = None, None
                continue
            p.grad = g.copy()
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
    return params, tparams, opt, topt


CASES = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.9)),
    ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("sgd", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("adam", dict()),
    ("adam", dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05)),
    ("adam", dict(lr=0.01, amsgrad=True)),
    ("adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1, maximize=True)),
    ("adamw", dict()),
    ("adamw", dict(lr=0.02, weight_decay=0.3, amsgrad=True)),
    ("rmsprop", dict()),
    ("rmsprop", dict(lr=0.01, alpha=0.9, momentum=0.7)),
    ("rmsprop", dict(lr=0.01, centered=True)),
    ("rmsprop", dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.02, eps=1e-5)),
]


def classes(name):
    torch = pytest.importorskip("torch")
    return {"sgd": (optim.SGD, torch.optim.SGD), "adam": (optim.Adam, torch.optim.Adam),
            "adamw": (optim.AdamW, torch.optim.AdamW), "rmsprop": (optim.RMSprop, torch.optim.RMSprop)}[name]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{'-'.join(k) or 'defaults'}" for n, k in CASES])
def test_trajectory_matches_torch(name, kwargs):
    params, tparams, _, _ = run_pair(*classes(name), kwargs)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=RTOL, atol=1e-14)


def test_defaults_match_torch():
    torch = pytest.importorskip("torch")
    t = torch.nn.Parameter(torch.zeros(2))
    for name in ("sgd", "adam", "adamw", "rmsprop"):
        ours, theirs = classes(name)
        mine = ours(make_params()).defaults
        ref = theirs([t]).defaults
        for key, value in mine.items():
            assert ref[key] == value, (name, key)


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop"])
def test_param_without_grad_is_skipped(name):
    kwargs = {"sgd": dict(lr=0.1, momentum=0.9, weight_decay=0.1), "adam": dict(weight_decay=0.1),
              "rmsprop": dict(momentum=0.5)}[name]
    start = make_params()[1].data.copy()
    params, tparams, opt, _ = run_pair(*classes(name), kwargs, none_grad=1)
    np.testing.assert_array_equal(params[1].data, start)
    assert params[1] not in opt.state or not opt.state[params[1]]
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=RTOL, atol=1e-14)


def test_param_groups_match_torch():
    torch = pytest.importorskip("torch")
    params = make_params()
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    opt = optim.Adam([{"params": params[:2]}, {"params": params[2:], "lr": 0.05, "weight_decay": 0.1}], lr=0.01)
    topt = torch.optim.Adam([{"params": tparams[:2]}, {"params": tparams[2:], "lr": 0.05, "weight_decay": 0.1}],
                            lr=0.01)
    for grads in grad_sequence():
        for p, tp, g in zip(params, tparams, grads):
            p.grad, tp.grad = g.copy(), torch.tensor(g)
        opt.step()
        topt.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=RTOL, atol=1e-14)


def test_in_place_identity_dtype_and_zero_grad():
    params = make_params(dtype=np.float32)
    arrays = [p.data for p in params]
    opt = optim.Adam(params, lr=0.1, amsgrad=True)
    for p in params:
        p.grad = np.ones(p.shape, np.float32)
    opt.step()
    for p, a in zip(params, arrays):
        assert p.data is a and p.data.dtype == np.float32
        assert all(v.dtype == np.float32 for v in opt.state[p].values() if isinstance(v, np.ndarray))
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    for p in params:
        p.grad = np.ones(p.shape, np.float32)
    opt.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in params)
    # closure: returned and called before the step
    assert opt.step(lambda: 3.5) == 3.5


def test_state_dict_round_trip_continues_identically():
    params = make_params()
    opt = optim.RMSprop(params, lr=0.01, momentum=0.5, centered=True)
    grads = grad_sequence()
    for g in grads[:3]:
        for p, gi in zip(params, g):
            p.grad = gi.copy()
        opt.step()
    saved = opt.state_dict()
    clones = [Parameter(p.data.copy()) for p in params]
    opt2 = optim.RMSprop(clones, lr=0.5)  # hyperparameters come from the state dict
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == 0.01
    for g in grads[3:]:
        for p, q, gi in zip(params, clones, g):
            p.grad, q.grad = gi.copy(), gi.copy()
        opt.step()
        opt2.step()
    for p, q in zip(params, clones):
        np.testing.assert_array_equal(p.data, q.data)
    # the saved state is a copy, not a view of the live buffers
    assert saved["state"][0]["square_avg"] is not opt.state[params[0]]["square_avg"]


def test_loads_torch_state_dict():
    torch = pytest.importorskip("torch")
    _, tparams, _, topt = run_pair(optim.Adam, torch.optim.Adam, dict(lr=0.01, amsgrad=True), steps=3)
    clones = [Parameter(tp.detach().numpy().copy()) for tp in tparams]
    opt = optim.Adam(clones, amsgrad=True)
    opt.load_state_dict(topt.state_dict())
    assert opt.state[clones[0]]["step"] == 3
    for g in grad_sequence(seed=5)[:3]:
        for p, tp, gi in zip(clones, tparams, g):
            p.grad, tp.grad = gi.copy(), torch.tensor(gi)
        opt.step()
        topt.step()
    for p, tp in zip(clones, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=RTOL, atol=1e-14)


def test_bad_arguments():
    params = make_params()
    with pytest.raises(TypeError, match="module.parameters"):
        optim.SGD(Linear(2, 2), lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        optim.Adam(params, lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas\\[1\\]"):
        optim.Adam(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD(params + params[:1], lr=0.1)
    with pytest.raises(TypeError, match=r"params\[1\]"):
        optim.SGD([params[0], np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        optim.SGD([{"params": params, "betas": (0.9, 0.9)}], lr=0.1)
    opt = optim.SGD(params, lr=0.1)
    with pytest.raises(ValueError, match="param groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})


# --------------------------------------------------------------------------- clipping

@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    params = make_params()
    grads = grad_sequence()[0]
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    for p, tp, g in zip(params, tparams, grads):
        p.grad, tp.grad = g.copy(), torch.tensor(g)
    total = optim.clip_grad_norm_(params, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type)
    assert isinstance(total, float)
    np.testing.assert_allclose(total, ttotal.item(), rtol=RTOL)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=RTOL, atol=1e-15)


@pytest.mark.parametrize("position", [0, 1])
def test_max_norm_clip_keeps_a_nan_wherever_it_sits(position):
    """The inf-norm of gradients holding a NaN is NaN (torch too), also when the NaN is
    not in the first parameter (Python's max() dropped it there)."""
    grads = [np.array([1.0, 2.0]), np.array([0.5, 0.25])]
    grads[position][0] = np.nan
    params = []
    for g in grads:
        p = Parameter(np.zeros(2))
        p.grad = g.copy()
        params.append(p)
    assert math.isnan(optim.clip_grad_norm_(params, 1.0, norm_type=math.inf))
    assert all(np.isnan(p.grad).all() for p in params)  # as torch: every gradient NaN
    for p, g in zip(params, grads):
        p.grad = g.copy()
    with pytest.raises(RuntimeError, match="total norm"):
        optim.clip_grad_norm_(params, 1.0, norm_type=math.inf, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="norm_type must be positive or inf, got -inf"):
        optim.clip_grad_norm_(params, 1.0, norm_type=-math.inf)


def test_clip_grad_value_matches_torch_and_skips_missing():
    torch = pytest.importorskip("torch")
    params = make_params()
    grads = grad_sequence()[0]
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    for p, tp, g in zip(params, tparams, grads):
        p.grad, tp.grad = g.copy(), torch.tensor(g)
    params[2].grad = tparams[2].grad = None
    optim.clip_grad_value_(params, 0.3)
    torch.nn.utils.clip_grad_value_(tparams, 0.3)
    for p, tp in zip(params[:2], tparams[:2]):
        np.testing.assert_array_equal(p.grad, tp.grad.numpy())
    assert params[2].grad is None
    assert optim.clip_grad_norm_([params[2]], 1.0) == 0.0
    with pytest.raises(RuntimeError, match="total norm"):
        params[0].grad[0, 0] = np.nan
        optim.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)


# --------------------------------------------------------------------------- schedules

def lr_sequences(make_ours, make_torch, epochs=25, lr=0.1):
    torch = pytest.importorskip("torch")
    opt = optim.SGD(make_params(), lr=lr)
    topt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)
    sched, tsched = make_ours(opt), make_torch(topt)
    ours, theirs = [sched.get_last_lr()[0]], [tsched.get_last_lr()[0]]
    for _ in range(epochs):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        ours.append(sched.get_last_lr()[0])
        theirs.append(tsched.get_last_lr()[0])
        assert opt.param_groups[0]["lr"] == ours[-1]
    return ours, theirs


def test_step_lr_matches_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = lr_sequences(lambda o: optim.StepLR(o, step_size=3, gamma=0.5),
                                lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert ours[2] == 0.1 and ours[3] == pytest.approx(0.05)


def test_exponential_lr_matches_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = lr_sequences(lambda o: optim.ExponentialLR(o, gamma=0.9),
                                lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


METRICS = [1.0, 0.9, 0.95, 0.95, 0.95, 0.96, 0.89, 0.8899, 0.9, 0.9, 0.9, 0.9, 0.5, 0.6, 0.7, 0.8, 0.8, 0.8,
           0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]


@pytest.mark.parametrize("kwargs", [
    dict(patience=2),
    dict(patience=1, factor=0.5, cooldown=2, min_lr=0.004),
    dict(mode="max", patience=1, factor=0.3),
    dict(patience=0, threshold=0.05, threshold_mode="abs"),
    dict(patience=1, threshold=0.02),
])
def test_reduce_on_plateau_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    opt = optim.SGD(make_params(), lr=0.1)
    topt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    sched = optim.ReduceLROnPlateau(opt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    ours, theirs = [], []
    for metric in METRICS:
        sched.step(metric)
        tsched.step(metric)
        ours.append(sched.get_last_lr()[0])
        theirs.append(tsched.get_last_lr()[0])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert len(set(ours)) > 1  # the sequence really changes
    assert sched.num_bad_epochs == tsched.num_bad_epochs and sched.best == tsched.best


def test_cosine_with_warmup_formula_and_groups():
    params = make_params()
    opt = optim.AdamW([{"params": params[:1]}, {"params": params[1:], "lr": 0.01}], lr=0.1)
    sched = optim.CosineWithWarmup(opt, warmup_steps=4, total_steps=14, min_lr=[0.001, 0.0])
    seen = [sched.get_last_lr()]
    for _ in range(20):
        sched.step()
        seen.append(sched.get_last_lr())
    for t, lrs in enumerate(seen):
        for base, low, lr in zip((0.1, 0.01), (0.001, 0.0), lrs):
            if t < 4:
                expected = base * (t + 1) / 4
            elif t < 14:
                expected = low + (base - low) * 0.5 * (1 + math.cos(math.pi * (t - 4) / 10))
            else:
                expected = low
            assert lr == pytest.approx(expected, rel=1e-12, abs=1e-15), (t, lrs)
    assert seen[3][0] == pytest.approx(0.1) and seen[4][0] == pytest.approx(0.1)
    assert max(s[0] for s in seen) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="total_steps"):
        optim.CosineWithWarmup(opt, warmup_steps=5, total_steps=5)


def test_scheduler_state_dict_resumes():
    opt = optim.SGD(make_params(), lr=1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        sched.step()
    state = sched.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 3
    opt2 = optim.SGD(make_params(), lr=1.0)
    sched2 = optim.StepLR(opt2, step_size=2, gamma=0.5)
    sched2.load_state_dict(state)
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    sched.step()
    sched2.step()
    assert sched.get_last_lr() == sched2.get_last_lr() == [0.25]
