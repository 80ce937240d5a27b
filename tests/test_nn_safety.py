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
