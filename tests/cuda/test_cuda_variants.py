"""CUDA variant kernels (fastrnn.cuda.lstm_variants / gru_variants through
fastrnn.functional with device="cuda") against the CPU variant kernels and the NumPy
references: every option alone, combinations, all together, both dtypes, lengths,
every gradient. Tiny shapes with config.TILE = 2 (4-thread blocks): H = 5 makes the
element-wise kernels end in a partial block and the per-row (layer norm) kernels
stride over more elements than threads."""
import numpy as np
import pytest

import fastrnn
from fastrnn import functional as F
from fastrnn.cuda import _device, common, config, gru, gru_variants, lstm, lstm_variants
from fastrnn.cuda._device import cuda
from fastrnn.reference import gru_variants as RG
from fastrnn.reference import lstm_variants as RL

STEPS, BATCH, N_IN, HIDDEN = 3, 2, 3, 5
LENGTHS = (3, 1)

LSTM_OPTIONS = ["coupled", "peephole", "clip", "layer_norm", "input_mask", "recurrent_mask", "weight_hh_mask",
                "zoneout", "zoneout_eval"]
LSTM_COMBOS = [(name,) for name in LSTM_OPTIONS] + [
    ("coupled", "peephole"),
    ("peephole", "layer_norm", "clip"),
    ("coupled", "layer_norm", "zoneout", "recurrent_mask"),
    tuple(o for o in LSTM_OPTIONS if o != "zoneout_eval"),               # all (training zoneout)
    tuple(o for o in LSTM_OPTIONS if o not in ("zoneout", "coupled")),   # all (evaluation zoneout), i, f, g, o
]
GRU_OPTIONS = ["layer_norm", "input_mask", "recurrent_mask", "weight_hh_mask", "zoneout", "zoneout_eval"]
GRU_COMBOS = [(name,) for name in GRU_OPTIONS] + [
    ("layer_norm", "recurrent_mask"),
    tuple(o for o in GRU_OPTIONS if o != "zoneout_eval"),
    tuple(o for o in GRU_OPTIONS if o != "zoneout"),
]
LSTM_GRADS = ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh", "dw_ci", "dw_cf", "dw_co", "dln_ih", "dln_hh",
              "dln_c_gain", "dln_c_bias")
GRU_GRADS = ("dx", "dh0", "dw_ih", "dw_hh", "db_ih", "db_hh", "dln_ih", "dln_hh")


def tolerances(dtype):
    # float64: the same operations in another order (GEMM tiles, block reductions): 1e-10.
    # float32: relative to the largest value of each result (layer norm divides by a deviation).
    return (1e-10, 1e-12) if dtype == np.float64 else (1e-4, 1e-4)


def lstm_case(combo, dtype, seed=0, lengths=LENGTHS, bias=True):
    """(functional arguments, variant keywords, reference keywords, output gradients)."""
    rng = np.random.default_rng(seed)
    coupled = "coupled" in combo
    width = (3 if coupled else 4) * HIDDEN

    def r(*shape, scale=0.5):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    base = dict(x=r(STEPS, BATCH, N_IN, scale=1.0), w_ih=r(width, N_IN), w_hh=r(width, HIDDEN),
                h0=r(BATCH, HIDDEN), c0=r(BATCH, HIDDEN, scale=1.5),
                lengths=None if lengths is None else np.array(lengths))
    if bias:
        base.update(b_ih=r(width), b_hh=r(width))
    fn, ref = {}, {}
    if coupled:
        fn["coupled"] = ref["coupled"] = True
    if "peephole" in combo:
        fn["peephole"] = ref["peephole"] = (None if coupled else r(HIDDEN), r(HIDDEN), r(HIDDEN))
    if "clip" in combo:
        fn["cell_clip"] = ref["cell_clip"] = 0.7  # |c0| ~ 1.5: many units clip
    if "layer_norm" in combo:
        g_ih, g_hh, g_c, b_c = 1 + r(width), 1 + r(width), 1 + r(HIDDEN), r(HIDDEN)
        fn["layer_norm"] = (g_ih, g_hh, g_c, b_c)
        ref.update(ln_ih=g_ih, ln_hh=g_hh, ln_c=(g_c, b_c))
    for name, shape in (("input_mask", (BATCH, N_IN)), ("recurrent_mask", (BATCH, HIDDEN)),
                        ("weight_hh_mask", (width, HIDDEN))):
        if name in combo:
            fn[name] = ref[name] = ((rng.random(shape) < 0.7) / 0.7).astype(dtype)
    if "zoneout" in combo:
        for name in ("zoneout_h", "zoneout_c"):
            fn[name] = ref[name] = (rng.random((STEPS, BATCH, HIDDEN)) < 0.3).astype(dtype)
    if "zoneout_eval" in combo:
        fn["zoneout_h"], fn["zoneout_c"] = 0.25, 0.1
        ref["zoneout_h"] = np.full((STEPS, BATCH, HIDDEN), 0.25, dtype)
        ref["zoneout_c"] = np.full((STEPS, BATCH, HIDDEN), 0.1, dtype)
    grads = dict(dy=r(STEPS, BATCH, HIDDEN, scale=1.0), dh_n=r(BATCH, HIDDEN, scale=1.0),
                 dc_n=r(BATCH, HIDDEN, scale=1.0))
    return base, fn, ref, grads


def gru_case(combo, dtype, seed=0, lengths=LENGTHS, bias=True, p=0.3):
    rng = np.random.default_rng(seed)
    width = 3 * HIDDEN

    def r(*shape, scale=0.5):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    base = dict(x=r(STEPS, BATCH, N_IN, scale=1.0), w_ih=r(width, N_IN), w_hh=r(width, HIDDEN), h0=r(BATCH, HIDDEN),
                lengths=None if lengths is None else np.array(lengths))
    if bias:
        base.update(b_ih=r(width), b_hh=r(width))
    fn, ref = {}, {}
    if "layer_norm" in combo:
        g_ih, g_hh = 1 + r(width, scale=0.3), 1 + r(width, scale=0.3)
        fn["layer_norm"] = (g_ih, g_hh)
        ref.update(ln_ih=g_ih, ln_hh=g_hh)
    for name, shape in (("input_mask", (BATCH, N_IN)), ("recurrent_mask", (BATCH, HIDDEN)),
                        ("weight_hh_mask", (width, HIDDEN))):
        if name in combo:
            fn[name] = ref[name] = ((rng.random(shape) >= p) / (1 - p)).astype(dtype)
    if "zoneout" in combo:
        fn["zoneout_h"] = ref["zoneout_h"] = (rng.random((STEPS, BATCH, HIDDEN)) < p).astype(dtype)
    if "zoneout_eval" in combo:
        fn["zoneout_h"] = p
        ref["zoneout_h"] = np.full((STEPS, BATCH, HIDDEN), p, dtype)
    grads = dict(dy=r(STEPS, BATCH, HIDDEN, scale=1.0), dh_n=r(BATCH, HIDDEN, scale=1.0))
    return base, fn, ref, grads


def lstm_grad_dict(g):
    out = dict(dx=g.dx, dh0=g.dh0, dc0=g.dc0, dw_ih=g.dw_ih, dw_hh=g.dw_hh, db_ih=g.db_ih, db_hh=g.db_hh)
    out.update(zip(("dw_ci", "dw_cf", "dw_co"), g.dpeephole or (None,) * 3))
    out.update(zip(("dln_ih", "dln_hh", "dln_c_gain", "dln_c_bias"), g.dlayer_norm or (None,) * 4))
    return out


def gru_grad_dict(g):
    out = dict(dx=g.dx, dh0=g.dh0, dw_ih=g.dw_ih, dw_hh=g.dw_hh, db_ih=g.db_ih, db_hh=g.db_hh)
    out.update(zip(("dln_ih", "dln_hh"), g.dlayer_norm or (None, None)))
    return out


def run_lstm(base, fn, grads, device, training=True):
    y, h_n, c_n, ctx = F.lstm(**base, training=training, device=device, **fn)
    if not training:
        assert ctx is None
        return dict(y=y, h_n=h_n, c_n=c_n), None
    g = F.lstm_backward(ctx, grads["dy"], grads["dh_n"], grads["dc_n"])
    assert type(g) is F.LSTMVariantGrads
    return dict(y=y, h_n=h_n, c_n=c_n), lstm_grad_dict(g)


def run_gru(base, fn, grads, device, training=True, reset_after=True):
    y, h_n, ctx = F.gru(**base, training=training, device=device, reset_after=reset_after, **fn)
    if not training:
        assert ctx is None
        return dict(y=y, h_n=h_n), None
    g = F.gru_backward(ctx, grads["dy"], grads["dh_n"])
    assert type(g) is F.GRUVariantGrads
    return dict(y=y, h_n=h_n), gru_grad_dict(g)


def reference_lstm(base, ref, grads):
    y, h_n, c_n, cache = RL.lstm_variants_forward(**base, **ref)
    g = RL.lstm_variants_backward(cache, grads["dy"], grads["dh_n"], grads["dc_n"])
    return dict(y=y, h_n=h_n, c_n=c_n), {k: g[k] for k in LSTM_GRADS}


def reference_gru(base, ref, grads):
    y, h_n, cache = RG.gru_variants_forward(**base, **ref)
    g = RG.gru_variants_backward(cache, grads["dy"], grads["dh_n"])
    return dict(y=y, h_n=h_n), {k: g[k] for k in GRU_GRADS}


def assert_close(actual, expected, rtol, atol, what):
    assert set(actual) == set(expected), what
    for key, want in expected.items():
        got = actual[key]
        if want is None:
            assert got is None, f"{what}: {key} should be None"
            continue
        assert isinstance(got, np.ndarray), f"{what}: {key} is {type(got).__name__}"
        assert got.dtype == want.dtype and got.shape == want.shape, f"{what}: {key}"
        scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale, err_msg=f"{what}: {key}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("combo", LSTM_COMBOS, ids=lambda c: "+".join(c))
def test_lstm_variants_match_cpu_and_reference(combo, dtype):
    base, fn, ref, grads = lstm_case(combo, dtype, seed=len(combo))
    rtol, atol = tolerances(dtype)
    out, g = run_lstm(base, fn, grads, "cuda")
    cpu_out, cpu_g = run_lstm(base, fn, grads, "cpu")
    ref_out, ref_g = reference_lstm(base, ref, grads)
    assert_close(out, ref_out, rtol, atol, "CUDA forward vs reference")
    assert_close(g, ref_g, rtol, atol, "CUDA backward vs reference")
    assert_close(out, cpu_out, rtol, atol, "forward vs CPU")
    assert_close(g, cpu_g, rtol, atol, "backward vs CPU")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("combo", GRU_COMBOS, ids=lambda c: "+".join(c))
def test_gru_variants_match_cpu_and_reference(combo, dtype):
    base, fn, ref, grads = gru_case(combo, dtype, seed=len(combo))
    rtol, atol = tolerances(dtype)
    out, g = run_gru(base, fn, grads, "cuda")
    cpu_out, cpu_g = run_gru(base, fn, grads, "cpu")
    ref_out, ref_g = reference_gru(base, ref, grads)
    assert_close(out, ref_out, rtol, atol, "CUDA forward vs reference")
    assert_close(g, ref_g, rtol, atol, "CUDA backward vs reference")
    assert_close(out, cpu_out, rtol, atol, "forward vs CPU")
    assert_close(g, cpu_g, rtol, atol, "backward vs CPU")


@pytest.mark.parametrize("combo", [("input_mask",), ("input_mask", "weight_hh_mask")], ids="+".join)
def test_gru_reset_before_masks_match_cpu(combo):
    """Input dropout and DropConnect alone run on the plain kernels, either reset form."""
    base, fn, _, grads = gru_case(combo, np.float64, seed=5)
    out, g = run_gru(base, fn, grads, "cuda", reset_after=False)
    cpu_out, cpu_g = run_gru(base, fn, grads, "cpu", reset_after=False)
    assert_close(out, cpu_out, 1e-10, 1e-12, "forward vs CPU")
    assert_close(g, cpu_g, 1e-10, 1e-12, "backward vs CPU")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_no_lengths_no_biases(cell):
    if cell == "lstm":
        base, fn, ref, grads = lstm_case(("peephole", "layer_norm", "zoneout"), np.float64, seed=3, lengths=None,
                                         bias=False)
        out, g = run_lstm(base, fn, grads, "cuda")
        ref_out, ref_g = reference_lstm(base, ref, grads)
    else:
        base, fn, ref, grads = gru_case(("layer_norm", "zoneout"), np.float64, seed=3, lengths=None, bias=False)
        out, g = run_gru(base, fn, grads, "cuda")
        ref_out, ref_g = reference_gru(base, ref, grads)
    assert g["db_ih"] is None and g["db_hh"] is None
    assert_close(out, ref_out, 1e-10, 1e-12, "forward")
    assert_close(g, ref_g, 1e-10, 1e-12, "backward")


@pytest.mark.parametrize("cell,combo", [("lstm", ("layer_norm", "peephole", "clip", "zoneout_eval")),
                                        ("lstm", ("coupled", "recurrent_mask", "zoneout_eval")),
                                        ("gru", ("layer_norm", "recurrent_mask", "zoneout_eval"))],
                         ids=lambda v: v if isinstance(v, str) else "+".join(v))
def test_inference_matches_training(cell, combo):
    """Inference keeps (1, B, .) scratches instead of per-step buffers: same outputs."""
    case, run = (lstm_case, run_lstm) if cell == "lstm" else (gru_case, run_gru)
    base, fn, _, grads = case(combo, np.float32, seed=2)
    out, _ = run(base, fn, grads, "cuda")
    out_inference, _ = run(base, fn, grads, "cuda", training=False)
    for key, value in out.items():
        np.testing.assert_array_equal(out_inference[key], value, err_msg=key)


@pytest.fixture
def poisoned_all(monkeypatch):
    """Every device allocation of the CUDA drivers (variant stand-ins included)
    NaN-filled: anything read before it is written shows up as NaN."""
    def empty(shape, dtype):
        return _device.cuda.to_device(np.full(shape, np.nan, np.dtype(dtype)))

    for module in (common, lstm, gru, lstm_variants, gru_variants):
        monkeypatch.setattr(module, "empty", empty)


@pytest.mark.parametrize("cell,combo", [
    ("lstm", tuple(o for o in LSTM_OPTIONS if o != "zoneout_eval")),
    ("lstm", ("peephole", "clip")),
    ("gru", tuple(o for o in GRU_OPTIONS if o != "zoneout_eval")),
    ("gru", ("recurrent_mask",)),
], ids=lambda v: v if isinstance(v, str) else "+".join(v))
def test_every_output_written_and_padding_zero(cell, combo, poisoned_all):
    lengths = (3, 1)
    case, run = (lstm_case, run_lstm) if cell == "lstm" else (gru_case, run_gru)
    base, fn, _, grads = case(combo, np.float32, seed=4, lengths=lengths)
    out, g = run(base, fn, grads, "cuda")
    for name, value in {**out, **g}.items():
        if value is not None:
            assert np.all(np.isfinite(value)), f"{cell}: {name} holds NaN (read before written)"
    for b, n in enumerate(lengths):
        assert np.all(out["y"][n:, b] == 0)
        np.testing.assert_array_equal(out["h_n"][b], out["y"][n - 1, b])


@pytest.mark.parametrize("tile", [1, 3])  # one-thread blocks; 9-thread blocks (a tree that is not a power of 2)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_other_tile_sizes(cell, tile, monkeypatch):
    monkeypatch.setattr(config, "TILE", tile)
    if cell == "lstm":
        base, fn, ref, grads = lstm_case(("peephole", "layer_norm", "recurrent_mask"), np.float64, seed=tile)
        out, g = run_lstm(base, fn, grads, "cuda")
        ref_out, ref_g = reference_lstm(base, ref, grads)
    else:
        base, fn, ref, grads = gru_case(("layer_norm", "recurrent_mask"), np.float64, seed=tile)
        out, g = run_gru(base, fn, grads, "cuda")
        ref_out, ref_g = reference_gru(base, ref, grads)
    assert_close(out, ref_out, 1e-10, 1e-12, f"forward TILE={tile}")
    assert_close(g, ref_g, 1e-10, 1e-12, f"backward TILE={tile}")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_repeated_runs_are_bit_identical(cell):
    if cell == "lstm":
        base, fn, _, grads = lstm_case(("peephole", "layer_norm", "zoneout"), np.float32, seed=9)
        run = run_lstm
    else:
        base, fn, _, grads = gru_case(("layer_norm", "recurrent_mask"), np.float32, seed=9)
        run = run_gru
    first_out, first_g = run(base, fn, grads, "cuda")
    second_out, second_g = run(base, fn, grads, "cuda")
    for key, value in {**first_out, **first_g}.items():
        if value is not None:
            np.testing.assert_array_equal(value, {**second_out, **second_g}[key], err_msg=key)


def _on_device(args):
    return {k: (cuda.to_device(v) if isinstance(v, np.ndarray) else v) for k, v in args.items()}


def test_device_arrays_in_device_arrays_out():
    """Device x, weights, states, dy: device results, nested gradient tuples included
    (the option arrays themselves are host arrays, validated like on the CPU)."""
    base, fn, _, grads = lstm_case(("peephole", "layer_norm", "input_mask", "weight_hh_mask"), np.float64, seed=1)
    host_out, host_g = run_lstm(base, fn, grads, "cuda")
    y, h_n, c_n, ctx = F.lstm(**_on_device(base), training=True, device="cuda", **fn)
    dev = _on_device(grads)
    g = lstm_grad_dict(F.lstm_backward(ctx, dev["dy"], dev["dh_n"], dev["dc_n"]))
    for name, got in {**dict(y=y, h_n=h_n, c_n=c_n), **g}.items():
        assert not isinstance(got, np.ndarray) and hasattr(got, "copy_to_host"), name
        want = host_out[name] if name in host_out else host_g[name]
        np.testing.assert_array_equal(got.copy_to_host(), want, err_msg=name)
    base, fn, _, grads = gru_case(("layer_norm", "zoneout"), np.float32, seed=1)
    _, host_g = run_gru(base, fn, grads, "cuda")
    *_, ctx = F.gru(**_on_device(base), training=True, device="cuda", **fn)
    g = gru_grad_dict(F.gru_backward(ctx, **_on_device(grads)))
    for name, got in g.items():
        np.testing.assert_array_equal(got.copy_to_host(), host_g[name], err_msg=name)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cpu_only_backward_options_still_refused(cell):
    if cell == "lstm":
        base, fn, _, grads = lstm_case(("layer_norm",), np.float64)
        *_, ctx = F.lstm(**base, training=True, device="cuda", **fn)
        backward = F.lstm_backward
    else:
        base, fn, _, grads = gru_case(("zoneout",), np.float64)
        *_, ctx = F.gru(**base, training=True, device="cuda", **fn)
        backward = F.gru_backward
    with pytest.raises(NotImplementedError, match="clip_per_step"):
        backward(ctx, **grads, clip_per_step=1.0)
    with pytest.raises(NotImplementedError, match="hidden_grads_out"):
        backward(ctx, **grads, hidden_grads_out=np.zeros_like(grads["dy"]))
    with pytest.raises(NotImplementedError, match="check_finite"):
        backward(ctx, **grads, check_finite=True)


@pytest.mark.parametrize("cls,options", [
    ("LSTM", dict(peephole=True, layer_norm=True, cell_clip=2.0, recurrent_dropout=0.3, zoneout=0.2,
                  input_dropout=0.2, weight_dropout=0.2)),
    ("GRU", dict(layer_norm=True, recurrent_dropout=0.3, zoneout=0.2)),
])
def test_layer_with_variants_to_cuda_matches_cpu(cls, options):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 2, 3))
    lengths = np.array([3, 1])
    cpu = getattr(fastrnn, cls)(3, 4, bidirectional=True, dtype=np.float64, seed=1, **options)
    gpu = getattr(fastrnn, cls)(3, 4, bidirectional=True, dtype=np.float64, seed=1, **options).to("cuda")
    y_cpu, _ = cpu(x, lengths=lengths)
    y_gpu, _ = gpu(x, lengths=lengths)
    np.testing.assert_allclose(y_gpu, y_cpu, rtol=1e-10, atol=1e-12)
    dy = rng.uniform(-1, 1, y_cpu.shape)
    dx_cpu, _ = cpu.backward(dy)
    dx_gpu, _ = gpu.backward(dy)
    np.testing.assert_allclose(dx_gpu, dx_cpu, rtol=1e-10, atol=1e-12)
    for (name, p_cpu), (_, p_gpu) in zip(cpu.named_parameters(), gpu.named_parameters()):
        np.testing.assert_allclose(p_gpu.grad, p_cpu.grad, rtol=1e-10, atol=1e-12, err_msg=name)
