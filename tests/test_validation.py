"""Bad input gets a clear TypeError/ValueError naming the argument before any kernel runs."""
import numpy as np
import pytest

from fastrnn import functional as F

from cases import CELLS, make_inputs

FORWARDS = {name: (spec[1], spec[5]) for name, spec in CELLS.items() if name in ("lstm", "gru", "rnn_tanh")}


def _call(cell, **changes):
    forward, extra = FORWARDS[cell]
    args, _ = make_inputs(cell, 4, 3, 2, 5, np.float32)
    args.update(extra)
    args.update(changes)
    return forward(**args)


@pytest.fixture(params=list(FORWARDS))
def cell(request):
    return request.param


def _raises(exc, match, cell, **changes):
    with pytest.raises(exc, match=match):
        _call(cell, **changes)


def test_rank_and_shape(cell):
    _raises(ValueError, r"x must be 3-D, got shape \(4, 3\)", cell, x=np.ones((4, 3), np.float32))
    _raises(ValueError, r"w_ih must have shape \(G\*H, I\)", cell, w_ih=np.ones((7, 2), np.float32))
    _raises(ValueError, r"w_hh must have shape \(G\*H, H\)", cell, w_hh=np.ones((7, 5), np.float32))
    _raises(ValueError, r"b_ih must have shape \(G\*H,\)", cell, b_ih=np.ones(3, np.float32))
    _raises(ValueError, r"b_hh must be 1-D", cell, b_hh=np.ones((3, 3), np.float32))
    _raises(ValueError, r"h0 must have shape \(B, H\) = \(3, 5\), got shape \(2, 5\)", cell, h0=np.ones((2, 5), np.float32))


def test_lstm_cell_state_shape():
    _raises(ValueError, r"c0 must have shape \(B, H\)", "lstm", c0=np.ones((3, 4), np.float32))


def test_empty_dimensions(cell):
    _raises(ValueError, r"x must have at least one time step.*T = 0", cell, x=np.ones((0, 3, 2), np.float32), lengths=None)
    _raises(ValueError, r"x must have a batch of at least one sequence.*B = 0", cell, x=np.ones((4, 0, 2), np.float32), lengths=None)


def test_dtypes(cell):
    _raises(TypeError, r"x must have dtype float32 or float64, got dtype int64", cell, x=np.ones((4, 3, 2), np.int64))
    _raises(TypeError, r"x must have dtype float32 or float64, got dtype float16", cell, x=np.ones((4, 3, 2), np.float16))
    _raises(TypeError, r"w_hh has dtype float64 but x has dtype float32", cell, w_hh=np.ones((5 * FORWARD_GATES[cell], 5)))
    _raises(TypeError, r"h0 has dtype float64 but x has dtype float32", cell, h0=np.ones((3, 5)))
    _raises(TypeError, r"x must have dtype float32 or float64, got dtype complex128", cell, x=np.ones((4, 3, 2), complex))
    _raises(TypeError, r"x must be an array, got None", cell, x=None)


FORWARD_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1}


def test_lengths(cell):
    _raises(ValueError, r"lengths must lie in 1..T = 1..4, got values from 0 to 4", cell, lengths=[4, 0, 2])
    _raises(ValueError, r"lengths must lie in 1..T = 1..4, got values from 1 to 5", cell, lengths=[5, 1, 2])
    _raises(ValueError, r"lengths must have shape \(B,\) = \(3,\), got shape \(2,\)", cell, lengths=[4, 1])
    _raises(TypeError, r"lengths must hold integers, got dtype float64", cell, lengths=[4.0, 1.0, 2.0])
    _raises(TypeError, r"lengths must hold integers, got dtype bool", cell, lengths=[True, True, True])


def test_options(cell):
    _raises(TypeError, r"training must be True or False, got 'yes'", cell, training="yes")


def test_option_values():
    _raises(ValueError, r"nonlinearity must be one of 'tanh', 'relu'; got 'sigmoid'", "rnn_tanh", nonlinearity="sigmoid")
    _raises(TypeError, r"reset_after must be True or False", "gru", reset_after=None)


def test_backward_without_context():
    with pytest.raises(ValueError, match=r"lstm_backward needs the context of a forward run with training=True"):
        F.lstm_backward(None, np.ones((4, 3, 5), np.float32))
    args, _ = make_inputs("gru", 4, 3, 2, 5, np.float32)
    ctx = F.gru(**args, training=True)[-1]
    with pytest.raises(TypeError, match=r"ctx must be the context returned by fastrnn.functional.rnn"):
        F.rnn_backward(ctx, np.ones((4, 3, 5), np.float32))


def test_backward_gradient_shapes_and_dtypes():
    args, _ = make_inputs("lstm", 4, 3, 2, 5, np.float32)
    ctx = F.lstm(**args, training=True)[-1]
    with pytest.raises(ValueError, match=r"dy must have shape \(T, B, H\) = \(4, 3, 5\), got shape \(4, 3, 4\)"):
        F.lstm_backward(ctx, np.ones((4, 3, 4), np.float32))
    with pytest.raises(TypeError, match=r"dy has dtype float64 but x has dtype float32"):
        F.lstm_backward(ctx, np.ones((4, 3, 5)))
    with pytest.raises(ValueError, match=r"dc_n must have shape \(B, H\)"):
        F.lstm_backward(ctx, np.ones((4, 3, 5), np.float32), dc_n=np.ones((3, 4), np.float32))


def test_lists_are_accepted_as_array_like():
    args, _ = make_inputs("rnn_tanh", 3, 2, 2, 3, np.float64)
    as_lists = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in args.items()}
    y_list = F.rnn(**as_lists)[0]
    np.testing.assert_array_equal(y_list, F.rnn(**args)[0])
