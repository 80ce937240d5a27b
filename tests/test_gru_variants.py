"""GRU variants (layer norm, recurrent dropout, zoneout, input dropout, DropConnect,
per-step gradient clipping): the NumPy reference against central finite differences,
the fused kernel (fastrnn.kernels.gru_variants) against the reference."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastrnn.kernels import blas
from fastrnn.kernels import gru_variants as K
from fastrnn.reference import gru as R_gru
from fastrnn.reference import gru_variants as R

from cases import PoisonedNumpy, finite_difference, mixed_lengths

GRADS = ("dx", "dh0", "dw_ih", "dw_hh", "db_ih", "db_hh", "dln_ih", "dln_hh")
ALL = ("ln", "recurrent", "zoneout", "input", "weight")
OPTIONS = {  # name -> options switched on
    "none": (),
    "ln": ("ln",),
    "recurrent": ("recurrent",),
    "zoneout": ("zoneout",),
    "zoneout_eval": ("zoneout_eval",),
    "input": ("input",),
    "weight": ("weight",),
    "all": ALL,
    "all_eval": ("ln", "recurrent", "zoneout_eval", "input", "weight"),
}
SHAPES = [  # (T, B, I, H): B <= 2 takes the hand-written product, B >= 3 BLAS; no H a multiple of 8
    (1, 1, 3, 5),
    (6, 1, 4, 9),
    (5, 2, 3, 7),
    (7, 5, 4, 9),
    (1, 4, 2, 3),
]


def make_case(steps, batch, n_in, hidden, options, *, dtype=np.float64, seed=0, lengths="mixed", bias=True,
              p=0.3):
    """Random reference arguments (never zeros) and output gradients.

    lengths: "mixed" (includes T and, for B > 1, 1), None, or a list.
    Masks are drawn like the layers will: dropout masks 0 or 1/(1-p); training
    zoneout 0/1 (1 keeps the previous state); evaluation zoneout the constant p.
    """
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(hidden)

    def draw(*shape, s=1.0):
        return (rng.uniform(-1, 1, shape) * s).astype(dtype)

    def dropout_mask(*shape):
        keep = rng.random(shape) >= p
        keep.flat[0] = True  # never an all-zero mask
        return (keep / (1 - p)).astype(dtype)

    args = dict(x=draw(steps, batch, n_in), w_ih=draw(3 * hidden, n_in, s=2 * scale),
                w_hh=draw(3 * hidden, hidden, s=2 * scale), h0=draw(batch, hidden))
    if bias:
        args.update(b_ih=draw(3 * hidden, s=scale), b_hh=draw(3 * hidden, s=scale))
    if isinstance(lengths, str):
        args["lengths"] = mixed_lengths(rng, steps, batch)
    elif lengths is not None:
        args["lengths"] = np.asarray(lengths)
    if "ln" in options:
        args.update(ln_ih=(1 + draw(3 * hidden, s=0.3)).astype(dtype), ln_hh=(1 + draw(3 * hidden, s=0.3)).astype(dtype))
    if "input" in options:
        args["input_mask"] = dropout_mask(batch, n_in)
    if "recurrent" in options:
        args["recurrent_mask"] = dropout_mask(batch, hidden)
    if "weight" in options:
        args["weight_hh_mask"] = dropout_mask(3 * hidden, hidden)
    if "zoneout" in options:
        args["zoneout_h"] = (rng.random((steps, batch, hidden)) < p).astype(dtype)
    if "zoneout_eval" in options:
        args["zoneout_h"] = np.full((steps, batch, hidden), p, dtype)
    grads = dict(dy=draw(steps, batch, hidden), dh_n=draw(batch, hidden))
    return args, grads


def run_reference(args, grads, clip=np.inf):
    y, h_n, cache = R.gru_variants_forward(**args)
    g = R.gru_variants_backward(cache, grads["dy"], grads["dh_n"], clip=clip)
    g["trace"] = g.pop("dh_total")
    return dict(y=y, h_n=h_n), g


def fused_arguments(args):
    """The driver's positional arguments for a reference case: the caller applies
    input dropout and DropConnect outside the kernel."""
    x, w_hh = args["x"], args["w_hh"]
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    dtype = x.dtype
    if "input_mask" in args:
        x = x * args["input_mask"][None]
    if "weight_hh_mask" in args:
        w_hh = w_hh * args["weight_hh_mask"]
    zeros = np.zeros(3 * hidden, dtype)
    lengths = np.asarray(args.get("lengths", np.full(batch, steps)), dtype=np.int64)
    return (np.ascontiguousarray(x), args["w_ih"], np.ascontiguousarray(w_hh), args.get("b_ih", zeros),
            args.get("b_hh", zeros), args["h0"], lengths), (args.get("ln_ih"), args.get("ln_hh"),
                                                            args.get("recurrent_mask"), args.get("zoneout_h"))


def run_fused(args, grads, clip=np.inf, training=True):
    """Forward + backward through the fused drivers; gradients mapped back through
    the caller-side masks like the reference's."""
    front, options = fused_arguments(args)
    y, h_n, saved = K.gru_variants_forward(*front, training, *options)
    if not training:
        return dict(y=y, h_n=h_n), saved
    trace = np.full(y.shape, np.nan, y.dtype)
    result = K.gru_variants_backward(saved, grads["dy"], grads["dh_n"], clip, trace)
    g = dict(zip(GRADS, result))
    if "input_mask" in args:
        g["dx"] = g["dx"] * args["input_mask"][None]
    if "weight_hh_mask" in args:
        g["dw_hh"] = g["dw_hh"] * args["weight_hh_mask"]
    if "b_ih" not in args:
        g["db_ih"] = g["db_hh"] = None
    g["trace"] = trace
    return dict(y=y, h_n=h_n), g


def assert_close(actual, expected, rtol, atol, what):
    for key, value in expected.items():
        if value is None:
            assert actual.get(key) is None, f"{what}: {key} should be None"
            continue
        got = actual[key]
        assert got is not None, f"{what}: {key} missing"
        assert got.dtype == value.dtype, f"{what}: {key} dtype {got.dtype} != {value.dtype}"
        np.testing.assert_allclose(got, value, rtol=rtol, atol=atol, err_msg=f"{what}: {key}")


# --------------------------------------------------------------------------- reference


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_reference_gradients_match_finite_differences(option, batch):
    args, grads = make_case(4, batch, 3, 4, OPTIONS[option], seed=11 + batch)

    def loss():
        y, h_n, _ = R.gru_variants_forward(**args)
        return float(np.sum(y * grads["dy"]) + np.sum(h_n * grads["dh_n"]))

    _, g = run_reference(args, grads)
    wrt = dict(dx="x", dh0="h0", dw_ih="w_ih", dw_hh="w_hh", db_ih="b_ih", db_hh="b_hh", dln_ih="ln_ih",
               dln_hh="ln_hh")
    for grad_name, arg_name in wrt.items():
        if arg_name not in args:
            assert g[grad_name] is None, grad_name
            continue
        numeric = finite_difference(loss, args[arg_name])
        np.testing.assert_allclose(g[grad_name], numeric, rtol=1e-6, atol=1e-8, err_msg=f"{option} {grad_name}")


def test_reference_without_bias_has_no_bias_gradients():
    args, grads = make_case(3, 2, 3, 4, ALL, bias=False)
    _, g = run_reference(args, grads)
    assert g["db_ih"] is None and g["db_hh"] is None
    assert g["dln_ih"] is not None and g["dln_hh"] is not None


@pytest.mark.parametrize("explicit", [False, True], ids=["absent", "identity"])
@pytest.mark.parametrize("lengths", [None, "mixed"])
def test_reference_with_options_off_equals_plain_gru(lengths, explicit):
    args, grads = make_case(5, 4, 3, 6, (), seed=3, lengths=lengths)
    plain_y, plain_h, cache = R_gru.gru_forward(**args)
    plain_g = R_gru.gru_backward(cache, **grads)
    if explicit:  # masks of ones and zeta = 0 are the identity
        steps, batch, n_in = args["x"].shape
        hidden = args["h0"].shape[1]
        args.update(input_mask=np.ones((batch, n_in)), recurrent_mask=np.ones((batch, hidden)),
                    weight_hh_mask=np.ones((3 * hidden, hidden)), zoneout_h=np.zeros((steps, batch, hidden)))
    out, g = run_reference(args, grads)
    np.testing.assert_allclose(out["y"], plain_y, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(out["h_n"], plain_h, rtol=1e-14, atol=1e-15)
    for key, value in plain_g.items():
        np.testing.assert_allclose(g[key], value, rtol=1e-13, atol=1e-15, err_msg=key)
    assert g["dln_ih"] is None and g["dln_hh"] is None


def test_reference_trace_is_the_total_gradient_of_each_state():
    """trace[t, b] = dL/dh_t with h_t perturbed where the loss sees it (as y_t and as
    the state entering step t + 1): dy_t plus the dh0 of the reference run on the
    rest of sequence b from h_t (dh_n at its last step). Independent of the trace code."""
    args, grads = make_case(5, 3, 3, 4, ALL, seed=5, lengths=[5, 1, 3])
    out, g = run_reference(args, grads)
    steps, batch, _ = args["x"].shape
    for b, length in enumerate(args["lengths"]):
        for t in range(steps):
            if t >= length:
                assert np.all(g["trace"][t, b] == 0)
                continue
            if t == length - 1:
                expected = grads["dy"][t, b] + grads["dh_n"][b]
            else:
                rest = dict(x=args["x"][t + 1:length, b:b + 1], w_ih=args["w_ih"], w_hh=args["w_hh"],
                            b_ih=args["b_ih"], b_hh=args["b_hh"], h0=out["y"][t, b:b + 1],
                            ln_ih=args["ln_ih"], ln_hh=args["ln_hh"], input_mask=args["input_mask"][b:b + 1],
                            recurrent_mask=args["recurrent_mask"][b:b + 1], weight_hh_mask=args["weight_hh_mask"],
                            zoneout_h=args["zoneout_h"][t + 1:length, b:b + 1])
                _, _, cache = R.gru_variants_forward(**rest)
                later = R.gru_variants_backward(cache, grads["dy"][t + 1:length, b:b + 1], grads["dh_n"][b:b + 1])
                expected = grads["dy"][t, b] + later["dh0"][0]
            np.testing.assert_allclose(g["trace"][t, b], expected, rtol=1e-12, atol=1e-14, err_msg=f"t={t} b={b}")
    # Without clipping the last valid state's total reaches dh0 of a length-1 sequence.
    np.testing.assert_allclose(g["trace"][0, 1], grads["dy"][0, 1] + grads["dh_n"][1], rtol=0, atol=0)


def test_reference_validates_arguments():
    args, grads = make_case(3, 2, 3, 4, ())
    with pytest.raises(ValueError, match="ln_ih"):
        R.gru_variants_forward(**args, ln_ih=np.ones(12))
    with pytest.raises(ValueError, match="recurrent_mask"):
        R.gru_variants_forward(**args, recurrent_mask=np.ones((2, 5)))
    with pytest.raises(ValueError, match="zoneout_h"):
        R.gru_variants_forward(**args, zoneout_h=np.ones((2, 2, 4)))
    with pytest.raises(TypeError, match="input_mask"):
        R.gru_variants_forward(**args, input_mask=np.ones((2, 3), np.float32))
    _, _, cache = R.gru_variants_forward(**args)
    with pytest.raises(ValueError, match="clip"):
        R.gru_variants_backward(cache, grads["dy"], clip=-1.0)


# --------------------------------------------------------------------------- fused kernel


@pytest.mark.parametrize("lengths", [None, "mixed"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T%dB%dI%dH%d" % s)
@pytest.mark.parametrize("option", list(OPTIONS))
def test_fused_matches_reference_float64(option, shape, lengths):
    args, grads = make_case(*shape, OPTIONS[option], seed=sum(shape), lengths=lengths)
    out, g = run_fused(args, grads)
    ref_out, ref_g = run_reference(args, grads)
    assert_close(out, ref_out, 1e-10, 1e-12, f"{option} forward")
    assert_close(g, ref_g, 1e-10, 1e-12, f"{option} backward")


@pytest.mark.parametrize("option", list(OPTIONS))
def test_fused_without_packed_weights(option, monkeypatch):
    """Large W_hh skip the packed copy of the per-step product (blas.pack_for_rows)."""
    monkeypatch.setattr(blas, "_PACK_LIMIT", 0)
    args, grads = make_case(6, 4, 3, 7, OPTIONS[option], seed=4, lengths="mixed")
    _, g = run_fused(args, grads)
    _, ref_g = run_reference(args, grads)
    assert_close(g, ref_g, 1e-10, 1e-12, f"{option} backward")


def _as(d, dtype):
    return {k: (None if v is None else (v.astype(dtype) if v.dtype.kind == "f" else v)) for k, v in d.items()}


@pytest.mark.parametrize("shape", SHAPES + [(20, 6, 5, 11)], ids=lambda s: "T%dB%dI%dH%d" % s)
@pytest.mark.parametrize("option", list(OPTIONS))
def test_fused_matches_reference_float32(option, shape):
    """float32 kernel against the float64 reference on the same (float32-rounded)
    inputs. The kernel's tanh/sigmoid are a rational approximation with ~2.4e-7
    absolute error and every sum (BLAS, layer-norm mean/variance) is float32 (eps
    6e-8); errors compound over T steps and through the gradient GEMMs, and layer
    norm divides by a row standard deviation of order 1 here. Hence ~1e-4 relative
    on gradients with an absolute floor (cases.tolerances' float32 bounds)."""
    args, grads = make_case(*shape, OPTIONS[option], dtype=np.float32, seed=sum(shape))
    out, g = run_fused(args, grads)
    ref_out, ref_g = run_reference(_as(args, np.float64), _as(grads, np.float64))
    assert_close(out, _as(ref_out, np.float32), 1e-5, 2e-6, f"{option} forward")
    assert_close(g, _as(ref_g, np.float32), 1e-4, 2e-5, f"{option} backward")


def test_float32_at_a_realistic_size():
    """All options at T=50, B=8, I=64, H=128 (rows of 3H = 384 for layer norm): the
    float32 kernel stays within 1e-5 of the float64 reference relative to each
    result's largest entry (measured ~1e-6)."""
    args, grads = make_case(50, 8, 64, 128, ALL, dtype=np.float32, seed=1)
    out, g = run_fused(args, grads)
    ref_out, ref_g = run_reference(_as(args, np.float64), _as(grads, np.float64))
    for key, value in list(ref_out.items()) + list(ref_g.items()):
        got = (out if key in out else g)[key]
        assert got.dtype == np.float32, key
        assert np.max(np.abs(got - value)) <= 1e-5 * np.max(np.abs(value)), key


@pytest.mark.parametrize("option", ["none", "all"])
def test_fused_without_bias(option):
    args, grads = make_case(4, 3, 3, 5, OPTIONS[option], bias=False, seed=2)
    out, g = run_fused(args, grads)
    ref_out, ref_g = run_reference(args, grads)
    assert_close(out, ref_out, 1e-10, 1e-12, option)
    assert_close(g, ref_g, 1e-10, 1e-12, option)


def test_fused_with_options_off_equals_plain_fused_gru():
    from fastrnn import functional as F
    args, grads = make_case(6, 4, 3, 7, (), seed=9)
    y, h_n, ctx = F.gru(**args, training=True)
    plain = F.gru_backward(ctx, **grads)
    out, g = run_fused(args, grads)
    np.testing.assert_allclose(out["y"], y, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(out["h_n"], h_n, rtol=1e-13, atol=1e-15)
    for key, value in plain._asdict().items():
        np.testing.assert_allclose(g[key], value, rtol=1e-12, atol=1e-14, err_msg=key)
    assert g["dln_ih"] is None and g["dln_hh"] is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_inference_matches_training_forward(option, dtype):
    args, grads = make_case(5, 3, 2, 4, OPTIONS[option], dtype=dtype)
    inference, saved = run_fused(args, grads, training=False)
    assert saved is None
    training, _ = run_fused(args, grads)
    for key in ("y", "h_n"):
        assert inference[key].dtype == dtype
        np.testing.assert_array_equal(inference[key], training[key])


@pytest.mark.parametrize("option", ["none", "all"])
def test_padded_outputs_zero_and_state_frozen(option):
    args, grads = make_case(6, 4, 3, 5, OPTIONS[option], dtype=np.float32, lengths=[6, 1, 3, 2])
    out, g = run_fused(args, grads)
    for b, n in enumerate(args["lengths"]):
        assert np.all(out["y"][n:, b] == 0)
        assert np.all(g["trace"][n:, b] == 0)
        np.testing.assert_array_equal(out["h_n"][b], out["y"][n - 1, b])


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("option", ["none", "ln", "all", "all_eval"])
def test_every_output_is_written(option, batch, monkeypatch):
    """Outputs and workspaces poisoned with NaN (and the trace handed in as NaN): any
    element the kernels forget to write, or read before writing, shows up."""
    args, grads = make_case(5, batch, 3, 6, OPTIONS[option], lengths="mixed")
    clean = run_fused(args, grads)  # compiles before the module globals change
    clean_inference = run_fused(args, grads, training=False)[0]
    monkeypatch.setattr(K, "np", PoisonedNumpy())
    poisoned = run_fused(args, grads)
    poisoned_inference = run_fused(args, grads, training=False)[0]
    for part_clean, part_poisoned in zip(clean + (clean_inference,), poisoned + (poisoned_inference,)):
        for key, value in part_poisoned.items():
            if value is None:
                continue
            assert np.all(np.isfinite(value)), f"{key} has unwritten elements"
            np.testing.assert_array_equal(value, part_clean[key])


@pytest.mark.parametrize("option", ["none", "all"])
def test_backward_can_run_twice(option):
    args, grads = make_case(4, 3, 2, 5, OPTIONS[option])
    front, options = fused_arguments(args)
    saved = K.gru_variants_forward(*front, True, *options)[2]
    first = K.gru_variants_backward(saved, grads["dy"], grads["dh_n"])
    second = K.gru_variants_backward(saved, grads["dy"], grads["dh_n"])
    for a, b in zip(first, second):
        if a is not None:
            np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- zoneout


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_zoneout_all_ones_keeps_h0_forever(dtype):
    args, grads = make_case(6, 3, 3, 5, ("zoneout", "ln", "recurrent"), dtype=dtype, lengths=[6, 1, 4])
    args["zoneout_h"][:] = 1
    out, g = run_fused(args, grads)
    ref_out, ref_g = run_reference(args, grads)
    for b, n in enumerate(args["lengths"]):
        np.testing.assert_array_equal(out["y"][:n, b], np.broadcast_to(args["h0"][b], (n, 5)))
        np.testing.assert_array_equal(ref_out["y"][:n, b], np.broadcast_to(args["h0"][b], (n, 5)))
    np.testing.assert_array_equal(out["h_n"], args["h0"])
    # The gradient passes straight through: dh0 is the sum of dy over the valid steps plus dh_n.
    mask = np.arange(6)[:, None] < args["lengths"][None, :]
    expected = grads["dh_n"].astype(np.float64) + np.sum(grads["dy"] * mask[..., None], axis=0)
    np.testing.assert_allclose(g["dh0"], expected.astype(dtype), rtol=1e-6 if dtype == np.float32 else 1e-14)
    for key in ("dw_ih", "dw_hh", "db_ih", "db_hh", "dln_ih", "dln_hh"):
        assert np.all(g[key] == 0), key


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_zoneout_all_zeros_equals_no_zoneout(dtype):
    args, grads = make_case(6, 4, 3, 5, ("ln", "recurrent"), dtype=dtype)
    plain = run_fused(args, grads)
    args["zoneout_h"] = np.zeros((6, 4, 5), dtype)
    zoned = run_fused(args, grads)
    for part_plain, part_zoned in zip(plain, zoned):
        for key, value in part_plain.items():
            np.testing.assert_allclose(part_zoned[key], value, rtol=1e-13 if dtype == np.float64 else 1e-6,
                                       atol=0, err_msg=key)


def test_eval_zoneout_is_the_convex_combination():
    """Evaluation zoneout (zeta = p) gives h_t = p h_{t-1} + (1 - p) GRU(h_{t-1}):
    checked one step against the plain reference GRU, and the fused kernel against it."""
    p = 0.3
    args, grads = make_case(1, 3, 4, 5, ("zoneout_eval",), p=p)
    plain = {k: v for k, v in args.items() if k != "zoneout_h"}
    h_tilde = R_gru.gru_forward(**plain)[0][0]
    expected = p * args["h0"] + (1 - p) * h_tilde
    out, _ = run_fused(args, grads)
    ref_out, _ = run_reference(args, grads)
    np.testing.assert_allclose(ref_out["y"][0], expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(out["y"][0], expected, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- clipping and trace


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("option", ["none", "all"])
def test_trace_equals_reference_total_gradient(option, dtype):
    """The fused trace against the reference's total dL/dh_t (itself checked against
    per-suffix gradients above); NaN-filled on entry, so every entry is written."""
    args, grads = make_case(6, 4, 3, 5, OPTIONS[option], dtype=dtype, seed=4)
    _, g = run_fused(args, grads)
    ref_g = run_reference(_as(args, np.float64), _as(grads, np.float64))[1]
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (1e-4, 2e-5)
    np.testing.assert_allclose(g["trace"], ref_g["trace"].astype(dtype), rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("option", ["none", "all"])
def test_clip_bounds_every_trace_entry_and_matches_reference(option, dtype):
    args, grads = make_case(8, 4, 3, 5, OPTIONS[option], dtype=dtype, seed=8)
    grads["dy"] *= 3
    clip = 0.5
    _, g = run_fused(args, grads, clip=clip)
    assert np.all(np.abs(g["trace"]) <= dtype(clip))
    assert np.any(np.abs(g["trace"]) == dtype(clip)), "the bound should bind somewhere"
    ref_g = run_reference(_as(args, np.float64), _as(grads, np.float64), clip=clip)[1]
    assert np.all(np.abs(ref_g["trace"]) <= clip)
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (1e-4, 2e-5)
    assert_close(g, _as(ref_g, dtype), rtol, atol, f"{option} clip")
    _, unclipped = run_fused(args, grads)
    assert not np.allclose(g["dh0"], unclipped["dh0"])


@pytest.mark.parametrize("option", ["none", "all"])
def test_huge_clip_equals_no_clip(option):
    args, grads = make_case(6, 4, 3, 5, OPTIONS[option], seed=6)
    _, exact = run_fused(args, grads)
    _, clipped = run_fused(args, grads, clip=1e30)
    for key, value in exact.items():
        if value is not None:
            np.testing.assert_array_equal(clipped[key], value, err_msg=key)


def test_backward_without_trace_matches_with_trace():
    args, grads = make_case(5, 3, 3, 4, ALL)
    front, options = fused_arguments(args)
    saved = K.gru_variants_forward(*front, True, *options)[2]
    with_trace = K.gru_variants_backward(saved, grads["dy"], grads["dh_n"], 0.7, np.empty((5, 3, 4)))
    without = K.gru_variants_backward(saved, grads["dy"], grads["dh_n"], 0.7)
    for a, b in zip(with_trace, without):
        np.testing.assert_array_equal(a, b)


def test_driver_rejects_bad_options():
    args, grads = make_case(3, 2, 3, 4, ("ln",))
    front, (ln_ih, ln_hh, mask, zeta) = fused_arguments(args)
    with pytest.raises(ValueError, match="ln_ih and ln_hh"):
        K.gru_variants_forward(*front, True, ln_ih, None, mask, zeta)
    saved = K.gru_variants_forward(*front, True, ln_ih, ln_hh, mask, zeta)[2]
    with pytest.raises(ValueError, match="clip"):
        K.gru_variants_backward(saved, grads["dy"], grads["dh_n"], -1.0)
    with pytest.raises(ValueError, match="clip"):
        K.gru_variants_backward(saved, grads["dy"], grads["dh_n"], np.nan)
    with pytest.raises(ValueError, match="trace"):
        K.gru_variants_backward(saved, grads["dy"], grads["dh_n"], np.inf, np.empty((3, 2, 5)))
    with pytest.raises(TypeError, match="trace"):
        K.gru_variants_backward(saved, grads["dy"], grads["dh_n"], np.inf, np.empty((3, 2, 4), np.float32))


# --------------------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None)
@given(steps=st.integers(1, 6), batch=st.integers(1, 5), n_in=st.integers(1, 4), hidden=st.integers(1, 10),
       options=st.sets(st.sampled_from(ALL + ("zoneout_eval",))), dtype=st.sampled_from([np.float64, np.float32]),
       seed=st.integers(0, 2 ** 16), bias=st.booleans(), clip=st.sampled_from([np.inf, 0.3]))
def test_property_fused_matches_reference(steps, batch, n_in, hidden, options, dtype, seed, bias, clip):
    if "zoneout" in options and "zoneout_eval" in options:
        options = options - {"zoneout_eval"}
    args, grads = make_case(steps, batch, n_in, hidden, options, dtype=dtype, seed=seed, bias=bias)
    out, g = run_fused(args, grads, clip=clip)
    ref_out, ref_g = run_reference(_as(args, np.float64), _as(grads, np.float64), clip=clip)
    if dtype == np.float64:
        assert_close(out, ref_out, 1e-10, 1e-12, "forward")
        assert_close(g, ref_g, 1e-9, 1e-12, "backward")
    else:
        assert_close(out, _as(ref_out, dtype), 1e-5, 2e-6, "forward")
        assert_close(g, _as(ref_g, dtype), 2e-4, 5e-5, "backward")
