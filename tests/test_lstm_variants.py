"""Fused LSTM variants (fastrnn.functional.lstm's variant keywords, kernels.lstm_variants)
against the NumPy reference (fastrnn.reference.lstm_variants, itself checked against
finite differences in test_reference_lstm_variants.py), and the layer options."""
import numpy as np
import pytest

import fastrnn
from fastrnn import functional as F
from fastrnn.kernels import blas
from fastrnn.kernels import lstm_variants as kernels
from fastrnn.kernels import workspace
from fastrnn.reference.lstm_variants import lstm_variants_backward, lstm_variants_forward

from cases import check_layer_grads_by_finite_differences

OPTIONS = ["coupled", "peephole", "clip", "layer_norm", "input_mask", "recurrent_mask", "weight_hh_mask",
           "zoneout", "zoneout_eval"]
COMBOS = [(name,) for name in OPTIONS] + [
    ("coupled", "peephole"), ("peephole", "layer_norm"), ("coupled", "layer_norm", "clip"),
    ("peephole", "clip", "zoneout", "recurrent_mask"),
    tuple(o for o in OPTIONS if o != "zoneout_eval"),
    tuple(o for o in OPTIONS if o not in ("zoneout", "coupled")),
]


def make_case(combo, steps=6, batch=4, n_in=3, hidden=5, dtype=np.float64, seed=0, lengths=(6, 1, 3, 4)):
    """(functional kwargs, reference kwargs, output gradients) for one option combination."""
    rng = np.random.default_rng(seed)
    coupled = "coupled" in combo
    width = (3 if coupled else 4) * hidden

    def r(*shape, scale=0.5):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    base = dict(x=r(steps, batch, n_in, scale=1.0), w_ih=r(width, n_in), w_hh=r(width, hidden), b_ih=r(width),
                b_hh=r(width), h0=r(batch, hidden), c0=r(batch, hidden, scale=1.5),
                lengths=None if lengths is None else np.array(lengths[:batch]))
    fn, ref = {}, {}
    if coupled:
        fn["coupled"] = ref["coupled"] = True
    if "peephole" in combo:
        peep = (None if coupled else r(hidden), r(hidden), r(hidden))
        fn["peephole"] = ref["peephole"] = peep
    if "clip" in combo:
        fn["cell_clip"] = ref["cell_clip"] = 0.7  # |c0| ~ 1.5: many units clip
    if "layer_norm" in combo:
        g_ih, g_hh, g_c, b_c = 1 + r(width), 1 + r(width), 1 + r(hidden), r(hidden)
        fn["layer_norm"] = (g_ih, g_hh, g_c, b_c)
        ref.update(ln_ih=g_ih, ln_hh=g_hh, ln_c=(g_c, b_c))
    for name, shape in (("input_mask", (batch, n_in)), ("recurrent_mask", (batch, hidden)),
                        ("weight_hh_mask", (width, hidden))):
        if name in combo:
            fn[name] = ref[name] = ((rng.random(shape) < 0.7) / 0.7).astype(dtype)
    if "zoneout" in combo:
        for name in ("zoneout_h", "zoneout_c"):
            fn[name] = ref[name] = (rng.random((steps, batch, hidden)) < 0.3).astype(dtype)
    if "zoneout_eval" in combo:
        fn["zoneout_h"], fn["zoneout_c"] = 0.25, 0.1
        ref["zoneout_h"] = np.full((steps, batch, hidden), 0.25, dtype)
        ref["zoneout_c"] = np.full((steps, batch, hidden), 0.1, dtype)
    grads = dict(dy=r(steps, batch, hidden, scale=1.0), dh_n=r(batch, hidden, scale=1.0),
                 dc_n=r(batch, hidden, scale=1.0))
    return base, fn, ref, grads


def run_fused(base, fn, grads, **backward):
    y, h_n, c_n, ctx = F.lstm(**base, training=True, **fn)
    g = F.lstm_backward(ctx, grads["dy"], grads["dh_n"], grads["dc_n"], **backward)
    return (y, h_n, c_n), g


def fused_grad_dict(g):
    out = dict(dx=g.dx, dh0=g.dh0, dc0=g.dc0, dw_ih=g.dw_ih, dw_hh=g.dw_hh, db_ih=g.db_ih, db_hh=g.db_hh)
    peep = getattr(g, "dpeephole", None) or (None, None, None)  # the plain kernel's LSTMGrads has none
    out.update(dw_ci=peep[0], dw_cf=peep[1], dw_co=peep[2])
    ln = getattr(g, "dlayer_norm", None) or (None,) * 4
    out.update(dln_ih=ln[0], dln_hh=ln[1], dln_c_gain=ln[2], dln_c_bias=ln[3])
    return out


def assert_close(actual, expected, rtol, atol, what):
    assert set(actual) <= set(expected), what
    for key, value in actual.items():
        if expected[key] is None:
            assert value is None, f"{what}: {key} should be None"
            continue
        assert value is not None, f"{what}: {key} missing"
        assert value.dtype == expected[key].dtype, f"{what}: {key} dtype"
        scale = np.abs(expected[key]).max() if expected[key].size else 1.0
        np.testing.assert_allclose(value, expected[key], rtol=rtol, atol=atol * max(1.0, scale),
                                   err_msg=f"{what}: {key}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "+".join(c))
def test_matches_reference(combo, dtype):
    base, fn, ref, grads = make_case(combo, dtype=dtype, seed=len(combo))
    (y, h_n, c_n), g = run_fused(base, fn, grads)
    ry, rh, rc, cache = lstm_variants_forward(**base, **ref)
    rg = lstm_variants_backward(cache, grads["dy"], grads["dh_n"], grads["dc_n"])
    # float64: the same operations in another order (BLAS vs matmul, fused loops): 1e-10.
    # float32: the rational tanh (abs error 4e-7) plus float32 rounding through 6
    # steps and layer norm's division by a deviation; 2e-4 relative to the largest value.
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (2e-4, 2e-4)
    assert_close(dict(y=y, h_n=h_n, c_n=c_n), dict(y=ry, h_n=rh, c_n=rc), rtol, atol, "forward")
    assert_close(fused_grad_dict(g), rg, rtol, atol, "backward")


@pytest.mark.parametrize("shape", [(1, 1, 2, 3), (5, 1, 3, 9), (4, 2, 3, 7), (3, 5, 2, 11)],
                         ids=lambda s: "T%dB%dI%dH%d" % s)
def test_shapes_and_small_batches(shape):
    steps, batch, n_in, hidden = shape
    combo = ("peephole", "layer_norm", "clip", "zoneout", "recurrent_mask")
    lengths = tuple([steps] + [max(1, steps - k) for k in range(1, batch)])
    base, fn, ref, grads = make_case(combo, steps, batch, n_in, hidden, seed=steps * 10 + batch, lengths=lengths)
    (y, h_n, c_n), g = run_fused(base, fn, grads)
    ry, rh, rc, cache = lstm_variants_forward(**base, **ref)
    rg = lstm_variants_backward(cache, grads["dy"], grads["dh_n"], grads["dc_n"])
    assert_close(dict(y=y, h_n=h_n, c_n=c_n), dict(y=ry, h_n=rh, c_n=rc), 1e-10, 1e-12, "forward")
    assert_close(fused_grad_dict(g), rg, 1e-10, 1e-12, "backward")


@pytest.mark.parametrize("combo", [("peephole", "layer_norm", "clip", "zoneout", "recurrent_mask"), ("coupled",)],
                         ids=lambda c: "+".join(c))
def test_backward_without_packed_weights(combo, monkeypatch):
    """Large W_hh skip the packed copy of the per-step product (blas.pack_for_rows)."""
    monkeypatch.setattr(blas, "_PACK_LIMIT", 0)
    base, fn, ref, grads = make_case(combo, 5, 4, 3, 7, seed=5, lengths=(5, 3, 5, 1))
    _, g = run_fused(base, fn, grads)
    _, _, _, cache = lstm_variants_forward(**base, **ref)
    rg = lstm_variants_backward(cache, grads["dy"], grads["dh_n"], grads["dc_n"])
    assert_close(fused_grad_dict(g), rg, 1e-10, 1e-12, "backward")


def test_no_lengths_and_no_biases():
    base, fn, ref, grads = make_case(("peephole", "layer_norm", "zoneout"), lengths=None, seed=3)
    base["b_ih"] = base["b_hh"] = None
    (y, _, _), g = run_fused(base, fn, grads)
    ry, _, _, cache = lstm_variants_forward(**base, **ref)
    rg = lstm_variants_backward(cache, grads["dy"], grads["dh_n"], grads["dc_n"])
    np.testing.assert_allclose(y, ry, rtol=1e-10, atol=1e-12)
    assert g.db_ih is None and g.db_hh is None
    assert_close(fused_grad_dict(g), rg, 1e-10, 1e-12, "backward")


@pytest.mark.parametrize("combo", [("peephole", "clip"), tuple(o for o in OPTIONS if o != "zoneout_eval")],
                         ids=lambda c: "+".join(c))
def test_hidden_grads_and_per_step_clip(combo):
    base, fn, ref, grads = make_case(combo, seed=11)
    ry, _, _, cache = lstm_variants_forward(**base, **ref)
    rg = lstm_variants_backward(cache, grads["dy"], grads["dh_n"], grads["dc_n"])
    trace = np.full_like(ry, np.nan)
    run_fused(base, fn, grads, hidden_grads_out=trace)
    np.testing.assert_allclose(trace, rg["dh_total"], rtol=1e-10, atol=1e-12)
    bound = 0.5 * np.abs(rg["dh_total"]).max()
    _, g_clipped = run_fused(base, fn, grads, hidden_grads_out=trace, clip_per_step=bound)
    assert np.abs(trace).max() <= bound
    assert np.isclose(np.abs(trace).max(), bound)
    _, g_huge = run_fused(base, fn, grads, clip_per_step=1e30)
    _, g_plain = run_fused(base, fn, grads)
    for a, b in zip(fused_grad_dict(g_huge).values(), fused_grad_dict(g_plain).values()):
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert not np.allclose(g_clipped.dh0, g_plain.dh0)


def test_outputs_fully_written(monkeypatch):
    """Every buffer the driver allocates starts as NaN; no NaN may reach a result."""
    real_empty, real_empty_like = np.empty, np.empty_like
    monkeypatch.setattr(kernels.np, "empty", lambda *a, **k: np.full_like(real_empty(*a, **k), np.nan))
    monkeypatch.setattr(kernels.np, "empty_like", lambda *a, **k: np.full_like(real_empty_like(*a, **k), np.nan))
    workspace.clear()  # reused scratch buffers come from np.empty too (same module object)
    for combo in COMBOS:
        workspace.clear()
        base, fn, _, grads = make_case(combo, seed=5)
        (y, h_n, c_n), g = run_fused(base, fn, grads)
        for value in (y, h_n, c_n, *[v for v in fused_grad_dict(g).values() if v is not None]):
            assert np.isfinite(value).all(), combo


def test_plain_options_take_the_plain_kernel_and_match_it():
    base, fn, _, grads = make_case((), seed=2)
    (y, h_n, c_n), g = run_fused(base, fn, grads)
    assert type(g).__name__ == "LSTMGrads"
    # All-ones masks and zero zoneout run the variant kernel: same numbers up to rounding.
    ones = dict(recurrent_mask=np.ones_like(base["h0"]), zoneout_h=0.0, zoneout_c=0.0)
    (y2, h2, c2), g2 = run_fused(base, ones, grads)
    assert type(g2).__name__ == "LSTMVariantGrads"
    np.testing.assert_allclose(y2, y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g2.dw_hh, g.dw_hh, rtol=1e-12, atol=1e-14)


def test_zoneout_all_ones_keeps_the_initial_state():
    base, fn, _, grads = make_case(("peephole",), seed=4)
    keep = np.ones(base["x"].shape[:2] + (5,))
    y, h_n, c_n, _ = F.lstm(**base, zoneout_h=keep, zoneout_c=keep, **fn)
    np.testing.assert_array_equal(h_n, base["h0"])
    np.testing.assert_array_equal(c_n, base["c0"])


@pytest.mark.parametrize("kwargs,match", [
    (dict(cell_clip=0.0), "cell_clip"), (dict(cell_clip="1"), "cell_clip"), (dict(cell_clip=np.inf), "cell_clip"),
    (dict(peephole=(None, np.zeros(5), np.zeros(5))), "w_ci"),
    (dict(peephole=(np.zeros(4), np.zeros(5), np.zeros(5))), "w_ci"),
    (dict(peephole=np.zeros((3, 5))), "peephole"),
    (dict(layer_norm=(np.ones(20), np.ones(20), np.ones(5))), "layer_norm"),
    (dict(layer_norm=(np.ones(20), np.ones(19), np.ones(5), np.zeros(5))), r"layer_norm\[1\]"),
    (dict(recurrent_mask=np.ones((4, 4))), "recurrent_mask"),
    (dict(input_mask=np.ones((4, 3), np.float32)), "input_mask"),
    (dict(weight_hh_mask=np.ones((15, 5))), "weight_hh_mask"),
    (dict(zoneout_h=1.5), "zoneout_h"), (dict(zoneout_c=np.full((6, 4, 5), 2.0)), "zoneout_c"),
    (dict(zoneout_h=np.ones((6, 4, 4))), "zoneout_h"), (dict(coupled="yes"), "coupled"),
])
def test_bad_variant_arguments(kwargs, match):
    base, _, _, _ = make_case(())
    with pytest.raises((ValueError, TypeError), match=match):
        F.lstm(**base, **kwargs)


def test_coupled_needs_three_gate_blocks_and_no_projection():
    base, _, _, _ = make_case(())
    with pytest.raises(ValueError, match="G = 3"):
        F.lstm(**base, coupled=True)  # 4H rows given
    base, fn, _, _ = make_case(("peephole",))
    w_hr = np.zeros((3, 5))
    base["w_hh"], base["h0"] = base["w_hh"][:, :3].copy(), base["h0"][:, :3].copy()
    with pytest.raises(ValueError, match="w_hr"):
        F.lstm(**base, w_hr=w_hr, **fn)


# --- the layer options --------------------------------------------------------------------
@pytest.mark.parametrize("options", [
    dict(peephole=True), dict(coupled_gates=True, peephole=True), dict(layer_norm=True), dict(cell_clip=0.5),
    dict(zoneout=(0.3, 0.2)), dict(input_dropout=0.2, recurrent_dropout=0.3, weight_dropout=0.2),
    dict(peephole=True, coupled_gates=True, layer_norm=True, cell_clip=1.0, zoneout=0.2, recurrent_dropout=0.2),
], ids=lambda o: "+".join(o))
def test_layer_gradients_by_finite_differences(options):
    rng = np.random.default_rng(0)
    layer = fastrnn.LSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=1, **options)
    x, lengths = rng.standard_normal((5, 3, 3)), np.array([5, 2, 4])
    dy = rng.standard_normal((5, 3, 8))
    names = [n for n, _ in layer.named_parameters() if n.startswith(("weight_c", "ln_"))][:4]
    check_layer_grads_by_finite_differences(layer, x, lengths=lengths, dy=dy,
                                            names=names + ["weight_hh_l1_reverse", "bias_ih_l0"])


def test_layer_parameter_names_and_save_load(tmp_path):
    layer = fastrnn.LSTM(3, 4, peephole=True, coupled_gates=True, layer_norm=True, zoneout=(0.2, 0.1), seed=0)
    names = list(dict(layer.named_parameters()))
    assert names == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_cf_l0", "weight_co_l0",
                     "ln_weight_ih_l0", "ln_weight_hh_l0", "ln_weight_c_l0", "ln_bias_c_l0"]
    assert layer.weight_ih_l0.shape == (12, 3) and layer.ln_weight_ih_l0.shape == (12,)
    path = tmp_path / "m"
    fastrnn.nn.save(layer, path)
    loaded = fastrnn.nn.load(path)
    assert loaded.variants == layer.variants
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    layer.eval(), loaded.eval()
    np.testing.assert_array_equal(loaded(x)[0], layer(x)[0])


def test_layer_regularizers_are_seeded_and_off_in_eval():
    x = np.random.default_rng(0).standard_normal((8, 3, 3))
    make = lambda: fastrnn.LSTM(3, 4, dtype=np.float64, seed=5, input_dropout=0.3, recurrent_dropout=0.3,
                                weight_dropout=0.3, zoneout=0.2)
    a, b = make(), make()
    np.testing.assert_array_equal(a(x)[0], b(x)[0])  # same seed, same masks
    assert not np.array_equal(a(x)[0], a(x)[0])       # fresh masks per call in training
    a.eval()
    np.testing.assert_array_equal(a(x)[0], a(x)[0])   # deterministic in eval
    plain = fastrnn.LSTM(3, 4, dtype=np.float64, seed=5, zoneout=0.2)
    plain.load_state_dict(a.state_dict())
    plain.eval()
    np.testing.assert_array_equal(plain(x)[0], a(x)[0])  # eval: only zoneout's expectation remains


def test_layer_dropout_keep_rate():
    layer = fastrnn.LSTM(3, 200, seed=0, recurrent_dropout=0.25)
    args = layer._variant_arguments(0, "", (4, 50, 3), training=True)
    mask = args["recurrent_mask"]
    kept = mask > 0
    assert abs(kept.mean() - 0.75) < 0.01  # 10000 draws: 3 standard deviations ~ 0.013
    np.testing.assert_allclose(mask[kept], 1 / 0.75, rtol=1e-6)
    zone = fastrnn.LSTM(3, 200, seed=0, zoneout=0.1)._variant_arguments(0, "", (40, 50, 3), training=True)
    assert abs(zone["zoneout_h"].mean() - 0.1) < 0.005
    assert fastrnn.LSTM(3, 4, zoneout=0.1)._variant_arguments(0, "", (4, 5, 3), training=False)["zoneout_h"] == 0.1


@pytest.mark.parametrize("kwargs,match", [
    (dict(peephole=1), "peephole"), (dict(cell_clip=-1), "cell_clip"), (dict(zoneout=1.0), "zoneout"),
    (dict(recurrent_dropout=-0.1), "recurrent_dropout"), (dict(zoneout=(0.1, 0.2, 0.3)), "zoneout"),
    (dict(peephole=True, proj_size=2), "proj_size"),
])
def test_layer_bad_options(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fastrnn.LSTM(3, 4, **kwargs)


@pytest.mark.parametrize("cls,options", [
    (fastrnn.LSTM, dict(peephole=True, layer_norm=True, zoneout=0.1, recurrent_dropout=0.3)),
    (fastrnn.GRU, dict(layer_norm=True, zoneout=0.2)),
])
def test_layer_stream_with_variants_equals_the_eval_call(cls, options):
    layer = cls(3, 4, num_layers=2, dtype=np.float64, seed=0, **options)
    x = np.random.default_rng(0).standard_normal((7, 2, 3))
    stream = layer.stream(batch_size=2)
    steps = [stream.step(x[0]), stream.step(x[1]), stream.step(x[2:6]), stream(x[6])]
    y_stream = np.concatenate([steps[0][None], steps[1][None], steps[2], steps[3][None]])
    layer.eval()
    y, state = layer(x)
    np.testing.assert_allclose(y_stream, y, rtol=1e-12, atol=1e-14)
    final = stream.state
    for ours, theirs in zip(final if isinstance(final, tuple) else (final,),
                            state if isinstance(state, tuple) else (state,)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)
    stream.reset()
    np.testing.assert_allclose(stream.step(x[0]), y[0], rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="batch_size"):
        stream.step(x[0, 0])


hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(data=st.data())
def test_random_combinations_match_reference(data):
    """Random option subsets, shapes, lengths and dtypes against the reference."""
    combo = tuple(o for o in OPTIONS if data.draw(st.booleans(), label=o))
    if "zoneout" in combo and "zoneout_eval" in combo:
        combo = tuple(o for o in combo if o != "zoneout_eval")
    steps = data.draw(st.integers(1, 6), label="T")
    batch = data.draw(st.integers(1, 4), label="B")
    hidden = data.draw(st.integers(1, 9), label="H")
    dtype = data.draw(st.sampled_from([np.float64, np.float32]), label="dtype")
    lengths = data.draw(st.one_of(st.none(), st.lists(st.integers(1, steps), min_size=batch, max_size=batch)),
                        label="lengths")
    base, fn, ref, grads = make_case(combo, steps, batch, 3, hidden, dtype=dtype, seed=steps * 7 + batch,
                                     lengths=None if lengths is None else tuple(lengths))
    (y, h_n, c_n), g = run_fused(base, fn, grads)
    ry, rh, rc, cache = lstm_variants_forward(**base, **ref)
    rg = lstm_variants_backward(cache, grads["dy"], grads["dh_n"], grads["dc_n"])
    rtol, atol = (1e-9, 1e-11) if dtype == np.float64 else (2e-4, 2e-4)
    assert_close(dict(y=y, h_n=h_n, c_n=c_n), dict(y=ry, h_n=rh, c_n=rc), rtol, atol, f"forward {combo}")
    assert_close(fused_grad_dict(g), rg, rtol, atol, f"backward {combo}")


def test_forget_bias_init_with_coupled_gates():
    layer = fastrnn.LSTM(3, 4, coupled_gates=True, peephole=True, layer_norm=True, init="orthogonal", seed=0)
    fastrnn.init.initialize(layer, "xavier", forget_bias=1.0, seed=1)
    np.testing.assert_array_equal(layer.bias_ih_l0.data[:4], 1.0)  # f is the first block of a CIFG LSTM
    np.testing.assert_array_equal(layer.bias_hh_l0.data[:4], 0.0)
    np.testing.assert_array_equal(layer.ln_weight_ih_l0.data, 1.0)  # variant parameters keep their own init
