"""Property-based check: for any small shape, lengths, dtype and cell, the fused
kernels agree with the NumPy reference (forward and backward)."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cases import CELLS, assert_close, make_inputs, run_fused, run_reference, tolerances


@st.composite
def problems(draw):
    cell = draw(st.sampled_from(sorted(CELLS)))
    steps = draw(st.integers(1, 6))
    batch = draw(st.integers(1, 5))
    n_in = draw(st.integers(1, 4))
    hidden = draw(st.integers(1, 9))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    lengths = draw(st.none() | st.lists(st.integers(1, steps), min_size=batch, max_size=batch))
    bias = draw(st.booleans())
    initial_state = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return cell, steps, batch, n_in, hidden, dtype, lengths, bias, initial_state, seed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_fused_matches_reference(problem):
    cell, steps, batch, n_in, hidden, dtype, lengths, bias, initial_state, seed = problem
    args, grads = make_inputs(cell, steps, batch, n_in, hidden, dtype, seed=seed, bias=bias,
                              initial_state=initial_state, lengths=lengths)
    (fwd_rtol, fwd_atol), (grad_rtol, grad_atol) = tolerances(dtype)
    out, g = run_fused(cell, args, grads)
    ref_out, ref_g = run_reference(cell, args, grads)
    assert_close(out, ref_out, fwd_rtol, fwd_atol, f"{cell} forward")
    assert_close(g, ref_g, grad_rtol, grad_atol, f"{cell} backward")
