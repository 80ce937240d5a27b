"""Training loops: fit (history, early stopping, schedules, clipping, callbacks, progress)
and truncated BPTT (fit_tbptt with k = T equals fit)."""
import io

import numpy as np
import pytest

from fastrnn import GRU, Linear, losses, optim, train
from fastrnn.data import BatchIterator
from fastrnn.nn import Module


class Net(Module):
    """A small stateful GRU + Linear head: forward(x, state) -> (pred, state). x (T, B, 1)."""

    def __init__(self, hidden=8, seed=0):
        super().__init__()
        self.rnn = GRU(1, hidden, dtype=np.float64, seed=seed)
        self.head = Linear(hidden, 1, dtype=np.float64, seed=seed + 1)
        self._config = {"hidden": hidden, "seed": seed}

    def forward(self, x, state=None):
        y, h = self.rnn(x, state)
        return self.head(y), h

    def backward(self, dpred):
        self.rnn.backward(self.head.backward(dpred))


class Plain(Module):
    """fit's contract on top of Net: forward(x) -> pred."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[0]

    def backward(self, dpred):
        self.net.backward(dpred)


def toy_sequences(n_batches=4, T=12, B=16, seed=0):
    """y_t = 0.5 x_t + 0.5 x_{t-1}: needs one step of memory. Time-major (T, B, 1)."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n_batches):
        x = rng.standard_normal((T, B, 1))
        y = 0.5 * x
        y[1:] += 0.5 * x[:-1]
        batches.append((x, y))
    return batches


def linear_data(n=64, slope=2.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1))
    return x, slope * x


def quiet(**kwargs):
    return dict(verbose=0, **kwargs)


# --------------------------------------------------------------------------- fit

def test_gru_regression_loss_falls_and_history():
    net = Net()
    model = Plain(net)
    data = toy_sequences()
    opt = optim.Adam(model.parameters(), lr=0.03)
    calls = []
    history = train.fit(model, losses.mse, opt, data, val_data=toy_sequences(1, seed=9), epochs=25,
                        batch_axis=1, callbacks=[lambda epoch, logs: calls.append((epoch, dict(logs)))],
                        metrics={"mae": lambda p, y: losses.mae(p, y)[0]}, **quiet())
    assert isinstance(history, dict)
    assert set(history) == {"epoch", "loss", "mae", "val_loss", "val_mae", "lr", "time", "samples_per_s"}
    assert all(len(v) == 25 for v in history.values())
    assert history["epoch"] == list(range(1, 26))
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    assert history["val_loss"][-1] < 0.1 * history["val_loss"][0]
    assert all(s > 0 for s in history["samples_per_s"])
    assert [c[0] for c in calls] == list(range(1, 26))
    assert calls[3][1]["loss"] == history["loss"][3]
    assert history.stopped_epoch is None and history.monitor == "val_loss"
    assert model.training


def test_early_stopping_restores_best_weights():
    # train y = 2x, validate on y = x: validation improves while w goes 0 -> 1, then worsens.
    x, y = linear_data(slope=2.0)
    xv, yv = linear_data(slope=1.0, seed=1)
    model = Linear(1, 1, bias=False, dtype=np.float64)
    model.weight.data[...] = 0.0
    opt = optim.SGD(model.parameters(), lr=0.05)
    snapshots = []
    history = train.fit(model, losses.mse, opt, [(x, y)], val_data=[(xv, yv)], epochs=100, patience=3,
                        callbacks=[lambda e, logs: snapshots.append(model.weight.data.copy())], **quiet())
    best = history.best_epoch
    assert history.stopped_epoch == best + 4 < 100
    assert history["val_loss"][best - 1] == min(history["val_loss"])
    assert history.restored
    np.testing.assert_array_equal(model.weight.data, snapshots[best - 1])
    assert 0.8 < model.weight.data[0, 0] < 1.2
    assert not np.array_equal(snapshots[-1], snapshots[best - 1])
    final = train.evaluate(model, losses.mse, [(xv, yv)])
    assert final["loss"] == pytest.approx(history.best_value, rel=1e-12)


def test_schedules_per_epoch_per_step_and_plateau():
    x, y = linear_data()
    batches = [(x[:32], y[:32]), (x[32:], y[32:])]
    model = Linear(1, 1, dtype=np.float64, seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    history = train.fit(model, losses.mse, opt, batches, epochs=4, scheduler=optim.StepLR(opt, 1, 0.5), **quiet())
    assert history["lr"] == [0.1, 0.05, 0.025, 0.0125]
    opt = optim.SGD(model.parameters(), lr=0.1)
    sched = optim.CosineWithWarmup(opt, warmup_steps=2, total_steps=8)
    train.fit(model, losses.mse, opt, batches, epochs=3, scheduler=sched, scheduler_interval="step", **quiet())
    assert sched.last_epoch == 6  # two optimizer steps per epoch
    # ReduceLROnPlateau is fed the validation loss: a constant one plateaus
    opt = optim.SGD(model.parameters(), lr=0.1)
    plateau = optim.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    history = train.fit(model, lambda p, t: (1.0, np.zeros_like(p)), opt, batches, val_data=[(x, y)], epochs=6,
                        scheduler=plateau, **quiet())
    assert plateau.last_epoch == 6
    assert history["lr"] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025]
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        train.fit(model, losses.mse, opt, batches, scheduler=plateau, scheduler_interval="step", **quiet())


def test_gradient_clipping_bounds_each_update():
    x, y = linear_data(slope=50.0)
    model = Linear(1, 1, dtype=np.float64, seed=0)
    start = model.weight.data.copy()
    opt = optim.SGD(model.parameters(), lr=1.0)
    train.fit(model, losses.mse, opt, [(x, y)], epochs=3, clip_grad_value=0.01, **quiet())
    assert np.all(np.abs(model.weight.data - start) <= 0.03 + 1e-12)
    start = model.weight.data.copy()
    bias = model.bias.data.copy()
    train.fit(model, losses.mse, opt, [(x, y)], epochs=1, clip_grad_norm=0.5, **quiet())
    step = np.sqrt(np.sum((model.weight.data - start) ** 2) + np.sum((model.bias.data - bias) ** 2))
    assert step == pytest.approx(0.5, rel=1e-5)


def test_callbacks_can_stop_and_extra_batch_elements_reach_the_model():
    class WithLengths(Module):
        def __init__(self):
            super().__init__()
            self.lin = Linear(2, 1, dtype=np.float64, seed=0)
            self.seen = []

        def forward(self, x, lengths):
            self.seen.append(lengths)
            return self.lin(x[np.arange(x.shape[0]), lengths - 1])  # last valid step, batch-first

        def backward(self, d):
            self.lin.backward(d)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 5, 2))
    lengths = rng.integers(1, 6, 20)
    y = rng.standard_normal((20, 1))
    model = WithLengths()
    it = BatchIterator(X, y, batch_size=8, lengths=lengths, seed=0)

    def stop_at_two(epoch, logs):
        if epoch == 2:
            raise train.StopTraining
    history = train.fit(model, losses.mse, optim.SGD(model.parameters(), lr=0.01), it, epochs=10,
                        callbacks=[stop_at_two], **quiet())
    assert history["epoch"] == [1, 2] and history.stopped_epoch == 2
    assert len(model.seen) == 2 * len(it)
    history = train.fit(model, losses.mse, optim.SGD(model.parameters(), lr=0.01), it, epochs=10,
                        callbacks=[lambda e, logs: e == 3], **quiet())
    assert history["epoch"] == [1, 2, 3]


def test_plain_progress_lines(monkeypatch):
    monkeypatch.setattr(train, "_tqdm", lambda: None)  # as if tqdm were not installed
    x, y = linear_data()
    model = Linear(1, 1, dtype=np.float64, seed=0)
    out = io.StringIO()
    train.fit(model, losses.mse, optim.SGD(model.parameters(), lr=0.1), [(x, y)], val_data=[(x, y)], epochs=2,
              file=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2 - loss ")
    assert "val_loss" in lines[1] and "samples/s" in lines[1] and "lr 0.1" in lines[1]
    out = io.StringIO()
    train.fit(model, losses.mse, optim.SGD(model.parameters(), lr=0.1), [(x, y)], epochs=2, verbose=0, file=out)
    assert out.getvalue() == ""


def test_bad_arguments():
    x, y = linear_data()
    model = Linear(1, 1, dtype=np.float64)
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="one-shot iterator"):
        train.fit(model, losses.mse, opt, iter([(x, y)]), epochs=2, **quiet())
    with pytest.raises(TypeError, match=r"return \(loss, grad\)"):
        train.fit(model, lambda p, t: 1.0, opt, [(x, y)], **quiet())
    with pytest.raises(TypeError, match="tuple \\(x, y\\)"):
        train.fit(model, losses.mse, opt, [x], **quiet())
    with pytest.raises(TypeError, match="optimizer"):
        train.fit(model, losses.mse, None, [(x, y)], **quiet())
    with pytest.raises(ValueError, match="epochs"):
        train.fit(model, losses.mse, opt, [(x, y)], epochs=0, **quiet())
    with pytest.raises(ValueError, match=r"monitor must be one of \['loss', 'acc'\]"):
        train.fit(model, losses.mse, opt, [(x, y)], monitor="val_loss", metrics={"acc": len}, **quiet())


# --------------------------------------------------------------------------- truncated BPTT

def test_tbptt_batches():
    x = np.arange(10 * 2).reshape(10, 2)
    chunks = train.tbptt_batches(x, x * 10, 4)
    assert [c[0].shape[0] for c in chunks] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), x)
    np.testing.assert_array_equal(chunks[1][1], x[4:8] * 10)
    chunks = train.tbptt_batches(x.T, x.T, 3, time_axis=1)
    assert [c[0].shape[1] for c in chunks] == [3, 3, 3, 1]


def test_tbptt_with_k_equal_T_matches_plain_training():
    data = toy_sequences(n_batches=3, T=10)
    net_a, net_b = Net(seed=3), Net(seed=3)
    h_plain = train.fit(Plain(net_a), losses.mse, optim.Adam(net_a.parameters(), lr=0.02), data,
                        val_data=data[:1], epochs=3, batch_axis=1, **quiet())
    h_tbptt = train.fit_tbptt(net_b, losses.mse, optim.Adam(net_b.parameters(), lr=0.02), data, k=10,
                              val_data=data[:1], epochs=3, **quiet())
    for (name, a), b in zip(net_a.state_dict().items(), net_b.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_allclose(h_tbptt["loss"], h_plain["loss"], rtol=1e-12)
    np.testing.assert_allclose(h_tbptt["val_loss"], h_plain["val_loss"], rtol=1e-12)
    # k > T is the same as k = T
    net_c = Net(seed=3)
    train.fit_tbptt(net_c, losses.mse, optim.Adam(net_c.parameters(), lr=0.02), data, k=50, epochs=3, **quiet())
    for a, c in zip(net_a.state_dict().values(), net_c.state_dict().values()):
        np.testing.assert_array_equal(a, c)


def test_tbptt_carries_detached_state_and_learns():
    class Recording(Net):
        def __init__(self):
            super().__init__(seed=4)
            self.states_in, self.states_out = [], []

        def forward(self, x, state=None):
            self.states_in.append(state)
            pred, h = super().forward(x, state)
            self.states_out.append(h)
            return pred, h

    model = Recording()
    data = toy_sequences(n_batches=2, T=12, B=8, seed=2)
    history = train.fit_tbptt(model, losses.mse, optim.Adam(model.parameters(), lr=0.03), data, k=4, epochs=15,
                              **quiet())
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    # 3 chunks per batch; the first chunk of every batch starts from None, later ones from a copy
    assert len(model.states_in) == 15 * 2 * 3
    for i, state in enumerate(model.states_in):
        if i % 3 == 0:
            assert state is None
        else:
            np.testing.assert_array_equal(state, model.states_out[i - 1])
            assert state is not model.states_out[i - 1]
    # k < T really truncates: the trajectory differs from full BPTT
    a, b = Net(seed=5), Net(seed=5)
    train.fit_tbptt(a, losses.mse, optim.SGD(a.parameters(), lr=0.1), data, k=12, **quiet())
    train.fit_tbptt(b, losses.mse, optim.SGD(b.parameters(), lr=0.1), data, k=3, **quiet())
    assert not np.allclose(a.rnn.weight_hh_l0.data, b.rnn.weight_hh_l0.data)


def test_tbptt_carry_state_across_batches():
    model = Net(seed=6)
    seen = []
    original = model.forward

    def forward(x, state=None):
        seen.append(state is None)
        return original(x, state)
    model.forward = forward
    data = toy_sequences(n_batches=3, T=6, B=4)
    train.fit_tbptt(model, losses.mse, optim.SGD(model.parameters(), lr=0.01), data, k=3, epochs=2,
                    carry_state="epoch", **quiet())
    # 3 batches x 2 chunks per epoch; only the first chunk of each epoch starts from zeros
    assert seen == [True] + [False] * 5 + [True] + [False] * 5
    stateless = Net()
    stateless.forward = lambda x, state=None: Net.forward(stateless, x, state)[0]
    with pytest.raises(TypeError, match="stateful model"):
        train.fit_tbptt(stateless, losses.mse, optim.SGD(stateless.parameters(), lr=0.01), data, k=3, **quiet())


def test_tqdm_progress_bar_when_installed(monkeypatch):
    bars = []

    class FakeTqdm:  # the part of tqdm's API the loop uses
        def __init__(self, iterable, total=None, desc="", **kwargs):
            self.iterable, self.total, self.desc, self.postfix, self.closed = iterable, total, desc, [], False
            bars.append(self)

        def __iter__(self):
            return iter(self.iterable)

        def set_postfix(self, **kwargs):
            self.postfix.append(kwargs)

        def set_postfix_str(self, text):
            self.postfix.append(text)

        def close(self):
            self.closed = True

    monkeypatch.setattr(train, "_tqdm", lambda: FakeTqdm)
    x, y = linear_data()
    model = Linear(1, 1, dtype=np.float64, seed=0)
    it = BatchIterator(x, y, batch_size=16, seed=0)
    out = io.StringIO()
    train.fit(model, losses.mse, optim.SGD(model.parameters(), lr=0.1), it, epochs=2, file=out)
    assert [b.desc for b in bars] == ["epoch 1/2", "epoch 2/2"] and all(b.closed for b in bars)
    assert bars[0].total == 4 and set(bars[0].postfix[0]) == {"loss", "samples_s"}
    assert "samples/s" in bars[0].postfix[-1] and out.getvalue() == ""
