"""check_finite and clip_per_step on the layers (the functional side: test_safety.py)."""
import numpy as np
import pytest

import fastrnn
from fastrnn import functional as F


@pytest.mark.parametrize("cls", [fastrnn.LSTM, fastrnn.GRU, fastrnn.RNN])
def test_forward_names_layer_tensor_and_step(cls):
    layer = cls(3, 4, num_layers=2, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((9, 2, 3))
    layer(x, check_finite=True)  # finite: silent
    x[6, 1, 2] = np.nan
    with pytest.raises(fastrnn.NonFiniteError, match=r"x .*time step 6.*layer 0") as info:
        layer(x, check_finite=True)
    assert info.value.step == 6 and info.value.sequence == 1
    y = layer(x)[0]  # without the check NaN propagates from step 6 on, as IEEE says
    assert np.isnan(y[6:, 1]).all() and np.isfinite(y[:6]).all()


def test_reverse_direction_reports_the_input_time_step():
    layer = fastrnn.GRU(3, 4, bidirectional=True, dtype=np.float64, seed=0)
    layer.weight_ih_l0_reverse.data[0, 0] = np.inf  # only the reverse direction's weights
    x = np.random.default_rng(1).standard_normal((7, 2, 3))
    with pytest.raises(fastrnn.NonFiniteError, match="weight_ih|w_ih") as info:
        layer(x, check_finite=True)
    assert "reverse" in str(info.value)


def test_reverse_direction_output_step_is_mapped_back():
    layer = fastrnn.RNN(2, 3, bidirectional=True, nonlinearity="relu", dtype=np.float32, seed=0)
    x = np.zeros((6, 1, 2), np.float32)
    x[4, 0, 0] = 1e38  # finite input; the reverse pass overflows from input step 4 on
    layer.weight_ih_l0.data[:] = 0
    layer.weight_ih_l0_reverse.data[:] = 1e10
    with pytest.raises(fastrnn.NonFiniteError, match="y .*time step 4.*reverse") as info:
        layer(x, check_finite=True)
    assert info.value.step == 4


def test_backward_check_and_per_step_clip():
    layer = fastrnn.LSTM(3, 4, num_layers=2, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((8, 2, 3))
    y, _ = layer(x)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    layer.zero_grad()
    dx_plain, _ = layer.backward(dy)
    dy_bad = dy.copy()
    dy_bad[3, 0, 1] = np.inf
    with pytest.raises(fastrnn.NonFiniteError, match="dy .*time step 3.*layer 1"):
        layer.backward(dy_bad, check_finite=True)
    layer.zero_grad()
    dx_huge, _ = layer.backward(dy, clip_per_step=1e30)
    np.testing.assert_array_equal(dx_huge, dx_plain)
    layer.zero_grad()
    dx_clip, _ = layer.backward(dy, clip_per_step=0.05)
    assert not np.allclose(dx_clip, dx_plain)
    # The top layer's clipping equals the functional call with the same bound.
    top = [getattr(layer, f"{n}_l1").data for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    mid = layer.__class__(3, 4, dtype=np.float64)
    mid.load_state_dict({k.replace("_l0", "_l0"): v for k, v in layer.state_dict().items() if k.endswith("_l0")})
    mid.eval()
    y0, _ = mid(x)
    _, _, _, ctx = F.lstm(y0, *top, training=True)
    g = F.lstm_backward(ctx, dy, clip_per_step=0.05)
    layer.zero_grad()
    layer.backward(dy, clip_per_step=0.05)
    np.testing.assert_allclose(layer.weight_hh_l1.grad, g.dw_hh, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("layout", ["time_major", "batch_first", "unbatched"])
@pytest.mark.parametrize("cls", [fastrnn.LSTM, fastrnn.GRU])
def test_nonfinite_index_is_in_the_callers_array(cls, layout):
    """The index and shape in the error are those of the array the caller passed
    (x, dy, h0), whatever direction, layer and layout found it; the kernel runs on
    time-major, per-direction, time-reversed copies."""
    rng = np.random.default_rng(3)
    batch_first, unbatched = layout == "batch_first", layout == "unbatched"
    layer = cls(3, 4, num_layers=2, bidirectional=True, batch_first=batch_first, dtype=np.float64, seed=0)
    layer.train()
    shape = (6, 3) if unbatched else ((2, 6, 3) if batch_first else (6, 2, 3))
    lengths = None if unbatched else [6, 4]
    x = rng.standard_normal(shape)
    y, _ = layer(x, lengths=lengths)
    cases = []
    bad_x = x.copy()
    at_x = (4, 1) if unbatched else ((1, 2, 1) if batch_first else (2, 1, 1))
    bad_x[at_x] = np.nan
    cases.append(("x", lambda: layer(bad_x, lengths=lengths, check_finite=True), at_x, shape))
    at_dy = (1, 6) if unbatched else ((1, 2, 6) if batch_first else (2, 1, 6))  # feature 6: reverse block
    dy = np.ones_like(y)
    dy[at_dy] = np.inf
    cases.append(("dy", lambda: layer.backward(dy, check_finite=True), at_dy, y.shape))
    states = (4, 4) if unbatched else (4, 2, 4)
    h0 = np.zeros(states)
    at_h0 = (3, 2) if unbatched else (3, 1, 2)  # layer 1, reverse direction
    h0[at_h0] = np.nan
    hx = (h0, np.zeros(states)) if cls is fastrnn.LSTM else h0
    cases.append(("h0", lambda: layer(x, hx, lengths=lengths, check_finite=True), at_h0, states))
    for name, call, at, full in cases:
        if name == "dy":
            layer(x, lengths=lengths)  # a fresh training forward for the backward
        with pytest.raises(fastrnn.NonFiniteError) as info:
            call()
        error = info.value
        assert error.tensor == name and error.index == at, (name, error.index, str(error))
        assert f"index {at} of shape {tuple(full)}" in str(error)
        if name != "h0":
            time_axis = 1 if batch_first else 0
            assert error.step == at[time_axis]


def test_error_layout_is_per_call_not_left_over_from_another_call():
    """A diagnostics call with unbatched input between a batched forward and its
    backward does not change how the backward's error quotes the index."""
    from fastrnn import diagnostics
    layer = fastrnn.LSTM(2, 5, dtype=np.float64, seed=0)
    layer.train()
    x = np.random.default_rng(0).standard_normal((4, 3, 2))
    y, _ = layer(x)
    diagnostics.layer_hidden_grads(layer, x[:, 0])
    dy = np.zeros_like(y)
    dy[2, 1, 3] = np.nan
    with pytest.raises(fastrnn.NonFiniteError, match=r"index \(2, 1, 3\) of shape \(4, 3, 5\)"):
        layer.backward(dy, check_finite=True)
