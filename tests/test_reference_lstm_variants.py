"""Tests of the NumPy reference for the LSTM variants (fastrnn.reference.lstm_variants):
every gradient vs central finite differences in float64 for each option alone and in
combination, exact equality with the plain LSTM reference when every option is off,
zoneout limits, CIFG, cell clipping, dh_total, packed-sequence semantics, bad input.

Finite-difference tolerance: central differences with eps = 1e-6 on a loss of size
O(10) have a truncation error ~eps^2 * |L'''| ~ 1e-12 and a rounding error
~1e-16 * |L| / eps ~ 1e-9, so rtol = 1e-6 with atol = 1e-8 is a tight check
(a wrong term in any gradient is off by O(1e-2) or more) that never flakes.
"""
import numpy as np
import pytest

from fastrnn.reference import lstm_backward, lstm_forward
from fastrnn.reference.lstm_variants import lstm_variants_backward, lstm_variants_forward

EPS = 1e-6
RTOL, ATOL = 1e-6, 1e-8
TINY = dict(T=4, B=3, I=3, H=4)
CLIP = 0.9


def make_case(seed, options=(), T=4, B=3, I=3, H=4, dtype=np.float64, bias=True,
              lengths="mixed"):
    """Random forward keyword arguments and output gradients for the given options.

    options: subset of {"coupled", "peephole", "clip", "ln", "input_mask",
    "recurrent_mask", "dropconnect", "zoneout", "zoneout_eval"}.
    """
    options = set(options)
    rng = np.random.default_rng(seed)
    G = (3 if "coupled" in options else 4) * H
    s = 1.0 / np.sqrt(H)

    def draw(*shape, scale=1.0):
        return (rng.uniform(-1, 1, shape) * scale).astype(dtype)

    kw = dict(x=draw(T, B, I), w_ih=draw(G, I, scale=2 * s), w_hh=draw(G, H, scale=2 * s),
              h0=draw(B, H), c0=draw(B, H))
    if bias:
        kw.update(b_ih=draw(G, scale=s), b_hh=draw(G, scale=s))
    if lengths == "mixed":
        values = rng.integers(1, T + 1, B)
        values[0], values[1] = T, 1
        kw["lengths"] = values
    elif lengths is not None:
        kw["lengths"] = np.asarray(lengths)
    if "coupled" in options:
        kw["coupled"] = True
    if "peephole" in options:
        kw["peephole"] = (None if "coupled" in options else draw(H), draw(H), draw(H))
    if "clip" in options:
        kw["c0"] = draw(B, H, scale=3.0)   # large cells, so that some get clipped
        kw["cell_clip"] = CLIP
    if "ln" in options:
        kw.update(ln_ih=(1 + draw(G, scale=0.5)), ln_hh=(1 + draw(G, scale=0.5)),
                  ln_c=(1 + draw(H, scale=0.5), draw(H, scale=0.5)))
    keep = 0.7   # dropout keep probability; masks are scaled by 1 / keep

    def dropout_mask(*shape):
        m = (rng.random(shape) < keep) / keep
        m.flat[0], m.flat[1] = 0.0, 1 / keep    # both values present
        return m.astype(dtype)

    if "input_mask" in options:
        kw["input_mask"] = dropout_mask(B, I)
    if "recurrent_mask" in options:
        kw["recurrent_mask"] = dropout_mask(B, H)
    if "dropconnect" in options:
        kw["weight_hh_mask"] = dropout_mask(G, H)
    if "zoneout" in options:
        for name in ("zoneout_h", "zoneout_c"):
            z = (rng.random((T, B, H)) < 0.3).astype(dtype)
            z.flat[0], z.flat[1] = 0.0, 1.0
            kw[name] = z
    if "zoneout_eval" in options:
        kw["zoneout_h"] = np.full((T, B, H), 0.3, dtype=dtype)
        kw["zoneout_c"] = np.full((T, B, H), 0.2, dtype=dtype)
    grads = dict(dy=draw(T, B, H), dh_n=draw(B, H), dc_n=draw(B, H))
    return kw, grads


def loss(kw, grads):
    y, h_n, c_n, _ = lstm_variants_forward(**kw)
    return np.sum(grads["dy"] * y) + np.sum(grads["dh_n"] * h_n) + np.sum(grads["dc_n"] * c_n)


def parameters(kw):
    """name of the gradient -> the (mutable) input array it belongs to."""
    out = {}
    for k in ("x", "w_ih", "w_hh", "b_ih", "b_hh", "h0", "c0"):
        if kw.get(k) is not None:
            out["d" + k] = kw[k]
    if kw.get("peephole") is not None:
        for name, a in zip(("dw_ci", "dw_cf", "dw_co"), kw["peephole"]):
            if a is not None:
                out[name] = a
    if kw.get("ln_ih") is not None:
        out.update(dln_ih=kw["ln_ih"], dln_hh=kw["ln_hh"], dln_c_gain=kw["ln_c"][0],
                   dln_c_bias=kw["ln_c"][1])
    return out


def numerical_gradient(kw, grads, a):
    num = np.empty_like(a)
    for idx in np.ndindex(a.shape):
        orig = a[idx]
        a[idx] = orig + EPS
        lp = loss(kw, grads)
        a[idx] = orig - EPS
        lm = loss(kw, grads)
        a[idx] = orig
        num[idx] = (lp - lm) / (2 * EPS)
    return num


def clip_margin(cache):
    """Smallest distance of a valid pre-clip cell value from +-clip."""
    c_pre = cache["c_pre"][cache["valid"]]
    return np.min(np.abs(np.abs(c_pre) - cache["cell_clip"]))


ALL_KEYS = ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh", "dw_ci", "dw_cf", "dw_co",
            "dln_ih", "dln_hh", "dln_c_gain", "dln_c_bias", "dh_total")

CONFIGS = {
    "plain": (),
    "coupled": ("coupled",),
    "peephole": ("peephole",),
    "clip": ("clip",),
    "ln": ("ln",),
    "input_mask": ("input_mask",),
    "recurrent_mask": ("recurrent_mask",),
    "dropconnect": ("dropconnect",),
    "zoneout": ("zoneout",),
    "zoneout_eval": ("zoneout_eval",),
    "coupled_peephole": ("coupled", "peephole"),
    "peephole_ln": ("peephole", "ln"),
    "coupled_ln_clip": ("coupled", "ln", "clip"),
    "all": ("peephole", "clip", "ln", "input_mask", "recurrent_mask", "dropconnect", "zoneout"),
    "all_coupled": ("coupled", "peephole", "clip", "ln", "input_mask", "recurrent_mask",
                    "dropconnect", "zoneout"),
}


# ----------------------------------------------------------------------------
# gradients vs central finite differences (float64)
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CONFIGS))
def test_gradients_match_finite_differences(name):
    options = CONFIGS[name]
    kw, grads = make_case(list(CONFIGS).index(name), options, **TINY)
    cache = lstm_variants_forward(**kw)[3]
    if "clip" in options:
        # some cells really are clipped, none within reach of the FD step of the kink
        assert np.any(np.abs(cache["c_pre"][cache["valid"]]) > CLIP)
        assert np.any(np.abs(cache["c_pre"][cache["valid"]]) < CLIP)
        assert clip_margin(cache) > 1e-4
    g = lstm_variants_backward(cache, **grads)
    assert set(g) == set(ALL_KEYS)
    params = parameters(kw)
    for key in ALL_KEYS:
        if key != "dh_total" and key not in params:
            assert g[key] is None, key
    for key, a in params.items():
        ana = g[key]
        assert ana.shape == a.shape and ana.dtype == np.float64, key
        num = numerical_gradient(kw, grads, a)
        assert np.any(num != 0), key
        np.testing.assert_allclose(ana, num, rtol=RTOL, atol=ATOL, err_msg=f"{name}: {key}")


@pytest.mark.parametrize("name", ["ln", "all"])
def test_gradients_without_biases(name):
    kw, grads = make_case(100, CONFIGS[name], bias=False, **TINY)
    g = lstm_variants_backward(lstm_variants_forward(**kw)[3], **grads)
    assert g["db_ih"] is None and g["db_hh"] is None
    for key, a in parameters(kw).items():
        np.testing.assert_allclose(g[key], numerical_gradient(kw, grads, a),
                                   rtol=RTOL, atol=ATOL, err_msg=key)


# ----------------------------------------------------------------------------
# dh_total: finite differences of L w.r.t. an additive perturbation of h_t,
# by running the sequence in two pieces split after step t
# ----------------------------------------------------------------------------

_PER_BATCH = ("input_mask", "recurrent_mask")
_PER_STEP = ("zoneout_h", "zoneout_c")


def split_loss(kw, grads, t, delta):
    """L with h_t replaced by h_t + delta (only for sequences valid at t)."""
    x, lengths = kw["x"], kw["lengths"]
    first = dict(kw, x=x[:t + 1], lengths=np.minimum(lengths, t + 1))
    for k in _PER_STEP:
        if kw.get(k) is not None:
            first[k] = kw[k][:t + 1]
    y1, h, c, _ = lstm_variants_forward(**first)
    live = (t < lengths)[:, None]
    h = h + np.where(live, delta, 0)
    total = np.sum(grads["dy"][:t + 1] * y1) + np.sum(grads["dy"][t] * np.where(live, delta, 0))
    rest = lengths - (t + 1)
    more = rest > 0
    done = ~more
    total += np.sum(grads["dh_n"][done] * h[done]) + np.sum(grads["dc_n"][done] * c[done])
    if more.any():
        second = dict(kw, x=x[t + 1:, more], h0=h[more], c0=c[more], lengths=rest[more])
        for k in _PER_BATCH:
            if kw.get(k) is not None:
                second[k] = kw[k][more]
        for k in _PER_STEP:
            if kw.get(k) is not None:
                second[k] = kw[k][t + 1:, more]
        y2, h2, c2, _ = lstm_variants_forward(**second)
        total += (np.sum(grads["dy"][t + 1:, more] * y2) + np.sum(grads["dh_n"][more] * h2)
                  + np.sum(grads["dc_n"][more] * c2))
    return total


@pytest.mark.parametrize("name", ["plain", "zoneout", "all", "all_coupled"])
def test_dh_total_matches_finite_differences(name):
    kw, grads = make_case(200 + list(CONFIGS).index(name), CONFIGS[name], **TINY)
    T, B, H = TINY["T"], TINY["B"], TINY["H"]
    full = loss(kw, grads)
    g = lstm_variants_backward(lstm_variants_forward(**kw)[3], **grads)
    dh_total = g["dh_total"]
    assert dh_total.shape == (T, B, H)
    valid = np.arange(T)[:, None] < kw["lengths"][None, :]
    assert np.all(dh_total[~valid] == 0)
    for t in range(T):
        zero = np.zeros((B, H))
        np.testing.assert_allclose(split_loss(kw, grads, t, zero), full, rtol=1e-12)
        num = np.zeros((B, H))
        for b in range(B):
            for j in range(H):
                d = zero.copy()
                d[b, j] = EPS
                num[b, j] = (split_loss(kw, grads, t, d) - split_loss(kw, grads, t, -d)) / (2 * EPS)
        np.testing.assert_allclose(dh_total[t], num, rtol=RTOL, atol=ATOL, err_msg=f"t={t}")
    # at step 0 the gradient flows on to h0 through the recurrence only
    assert not np.allclose(dh_total[0], g["dh0"])


# ----------------------------------------------------------------------------
# equality with the plain LSTM reference, zoneout limits
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_options_off_equal_plain_lstm_exactly(dtype, bias):
    kw, grads = make_case(300 + bias, (), T=5, B=4, I=3, H=6, dtype=dtype, bias=bias)
    args = [kw[k] for k in ("x", "w_ih", "w_hh")] + [kw.get("b_ih"), kw.get("b_hh"),
                                                      kw["h0"], kw["c0"], kw["lengths"]]
    y, h_n, c_n, cache = lstm_forward(*args)
    yv, hv, cv, cache_v = lstm_variants_forward(*args)
    for a, b in ((y, yv), (h_n, hv), (c_n, cv)):
        assert b.dtype == dtype
        np.testing.assert_array_equal(b, a)
    ref = lstm_backward(cache, **grads)
    ours = lstm_variants_backward(cache_v, **grads)
    for k, v in ref.items():
        if v is None:
            assert ours[k] is None, k
        else:
            assert ours[k].dtype == dtype, k
            np.testing.assert_array_equal(ours[k], v, err_msg=k)


def test_neutral_masks_equal_no_masks_exactly():
    """Masks of ones and zoneout of zeros change nothing."""
    kw, grads = make_case(310, ("peephole", "ln", "clip"), **TINY)
    T, B, I, H = TINY["T"], TINY["B"], TINY["I"], TINY["H"]
    neutral = dict(kw, input_mask=np.ones((B, I)), recurrent_mask=np.ones((B, H)),
                   weight_hh_mask=np.ones((4 * H, H)), zoneout_h=np.zeros((T, B, H)),
                   zoneout_c=np.zeros((T, B, H)))
    a = lstm_variants_forward(**kw)
    b = lstm_variants_forward(**neutral)
    for p, q in zip(a[:3], b[:3]):
        np.testing.assert_array_equal(q, p)
    ga = lstm_variants_backward(a[3], **grads)
    gb = lstm_variants_backward(b[3], **grads)
    for k in ALL_KEYS:
        np.testing.assert_array_equal(gb[k], ga[k], err_msg=k)


@pytest.mark.parametrize("coupled", [False, True])
def test_zoneout_all_ones_keeps_initial_state(coupled):
    options = ("coupled", "peephole", "ln") if coupled else ("peephole", "ln")
    kw, grads = make_case(320 + coupled, options, **TINY)
    T, B, H = TINY["T"], TINY["B"], TINY["H"]
    kw.update(zoneout_h=np.ones((T, B, H)), zoneout_c=np.ones((T, B, H)))
    y, h_n, c_n, cache = lstm_variants_forward(**kw)
    np.testing.assert_array_equal(h_n, kw["h0"])
    np.testing.assert_array_equal(c_n, kw["c0"])
    valid = np.arange(T)[:, None] < kw["lengths"][None, :]
    np.testing.assert_array_equal(y, np.where(valid[..., None], kw["h0"][None], 0))
    g = lstm_variants_backward(cache, **grads)
    # every gradient goes straight to the initial state, none to the weights or x
    np.testing.assert_allclose(g["dh0"], np.sum(np.where(valid[..., None], grads["dy"], 0), axis=0)
                               + grads["dh_n"], rtol=1e-14)
    np.testing.assert_array_equal(g["dc0"], grads["dc_n"])
    for k in ("dx", "dw_ih", "dw_hh", "db_ih", "db_hh", "dw_cf", "dw_co", "dln_ih", "dln_hh",
              "dln_c_gain", "dln_c_bias"):
        assert np.all(g[k] == 0), k


def test_zoneout_each_state_alone():
    """zoneout_h alone keeps h (not c); zoneout_c alone keeps c (not h)."""
    kw, _ = make_case(330, (), **TINY)
    T, B, H = TINY["T"], TINY["B"], TINY["H"]
    _, h_n, c_n, _ = lstm_variants_forward(**kw, zoneout_h=np.ones((T, B, H)))
    np.testing.assert_array_equal(h_n, kw["h0"])
    assert not np.allclose(c_n, kw["c0"])
    _, h_n, c_n, _ = lstm_variants_forward(**kw, zoneout_c=np.ones((T, B, H)))
    np.testing.assert_array_equal(c_n, kw["c0"])
    assert not np.allclose(h_n, kw["h0"])


# ----------------------------------------------------------------------------
# CIFG, peephole, clipping, layer norm: specific properties
# ----------------------------------------------------------------------------

def test_coupled_gates():
    kw, grads = make_case(400, ("coupled", "peephole"), **TINY)
    H = TINY["H"]
    assert kw["w_ih"].shape == (3 * H, TINY["I"]) and kw["w_hh"].shape == (3 * H, H)
    cache = lstm_variants_forward(**kw)[3]
    gates = cache["gates"]
    i, f = gates[..., :H], gates[..., H:2 * H]
    np.testing.assert_array_equal(i, 1 - f)
    assert np.all((f > 0) & (f < 1))
    g = lstm_variants_backward(cache, **grads)
    assert g["dw_ci"] is None and g["dw_cf"].shape == (H,) and g["dw_co"].shape == (H,)
    assert g["dw_ih"].shape == (3 * H, TINY["I"]) and g["db_ih"].shape == (3 * H,)


def test_coupled_equals_standard_with_one_minus_f():
    """At one step from c0 with h0 = 0 the CIFG cell equals a standard cell whose
    input gate is 1 - f: sigmoid(-a) = 1 - sigmoid(a), so use negated f weights."""
    kw, _ = make_case(410, ("coupled",), T=1, B=2, I=3, H=4, lengths=None)
    H = 4
    w_ih, b_ih, b_hh = kw["w_ih"], kw["b_ih"], kw["b_hh"]
    std = dict(x=kw["x"], w_ih=np.concatenate([-w_ih[:H], w_ih]),
               w_hh=np.zeros((4 * H, H)), b_ih=np.concatenate([-b_ih[:H], b_ih]),
               b_hh=np.concatenate([-b_hh[:H], b_hh]), h0=np.zeros((2, H)), c0=kw["c0"])
    _y_c, h_c, c_c, _ = lstm_variants_forward(**dict(kw, w_hh=np.zeros((3 * H, H)),
                                                    h0=np.zeros((2, H))))
    _y_s, h_s, c_s, _ = lstm_forward(**std)
    np.testing.assert_allclose(c_c, c_s, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(h_c, h_s, rtol=1e-14, atol=1e-15)


def test_peephole_uses_old_cell_for_i_f_and_new_clipped_cell_for_o():
    kw, _ = make_case(420, ("peephole", "clip"), T=1, B=2, I=3, H=4, lengths=None)
    H = 4
    w_ci, w_cf, w_co = kw["peephole"]
    _, _, _, cache = lstm_variants_forward(**kw)
    _, _, _, plain = lstm_variants_forward(**dict(kw, peephole=None))
    a = plain["gates"][0]   # activations without peephole: recover pre-activations
    logit = lambda p: np.log(p / (1 - p))
    c0, c_new = kw["c0"], cache["c_tilde"][0]
    i, f, o = (cache["gates"][0][:, k * H:(k + 1) * H] for k in (0, 1, 3))
    np.testing.assert_allclose(logit(i), logit(a[:, :H]) + w_ci * c0, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(logit(f), logit(a[:, H:2 * H]) + w_cf * c0, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(logit(o), logit(a[:, 3 * H:]) + w_co * c_new, rtol=1e-9, atol=1e-12)
    assert np.all(np.abs(c_new) <= CLIP)


def test_cell_clip_clips_and_blocks_the_gradient():
    """One step, no recurrence and no LN on the cell: the gate gradients of a clipped
    unit are exactly zero, those of an unclipped one are not."""
    kw, grads = make_case(430, ("peephole", "clip"), T=1, B=1, I=3, H=6, lengths=None)
    _y, _h_n, c_n, cache = lstm_variants_forward(**kw)
    c_pre = cache["c_pre"][0, 0]
    clipped = np.abs(c_pre) > CLIP
    assert clipped.any() and (~clipped).any()
    np.testing.assert_array_equal(c_n[0][clipped], np.sign(c_pre[clipped]) * CLIP)
    np.testing.assert_array_equal(c_n[0][~clipped], c_pre[~clipped])
    g = lstm_variants_backward(cache, **grads)
    H = 6
    for k in (0, 1, 2):   # i, f, g rows of the clipped units: no gradient
        rows = g["db_ih"][k * H:(k + 1) * H]
        assert np.all(rows[clipped] == 0), k
        assert np.all(rows[~clipped] != 0), k
    assert np.all(g["db_ih"][3 * H:] != 0)     # o still learns (tanh of the clipped cell)
    assert np.all(g["dc0"][0][clipped] == 0)
    assert np.all(g["dc0"][0][~clipped] != 0)
    assert np.all(g["dw_cf"][clipped] == 0) and np.all(g["dw_ci"][clipped] == 0)
    # without clipping the same entries have a gradient
    g0 = lstm_variants_backward(lstm_variants_forward(**dict(kw, cell_clip=None))[3], **grads)
    assert np.all(g0["db_ih"][:3 * H] != 0)


def _ln(v):
    return (v - v.mean(axis=-1, keepdims=True)) / np.sqrt(v.var(axis=-1, keepdims=True) + 1e-5)


def _sig(v):
    return 1 / (1 + np.exp(-v))


@pytest.mark.parametrize("name", ["all", "all_coupled", "zoneout_eval"])
def test_forward_follows_the_equations(name):
    """A second, literal transcription of the module docstring's equations (full
    lengths), so the forward semantics are pinned independently of the backward."""
    kw, _ = make_case(800 + list(CONFIGS).index(name), CONFIGS[name], lengths=None, **TINY)
    T, B, I, H = TINY["T"], TINY["B"], TINY["I"], TINY["H"]
    coupled = kw.get("coupled", False)
    G = (3 if coupled else 4) * H
    ones = np.ones
    m_x = kw.get("input_mask", ones((B, I)))
    m_h = kw.get("recurrent_mask", ones((B, H)))
    M = kw.get("weight_hh_mask", ones((G, H)))
    zh = kw.get("zoneout_h", np.zeros((T, B, H)))
    zc = kw.get("zoneout_c", np.zeros((T, B, H)))
    w_ci, w_cf, w_co = kw.get("peephole", (None, np.zeros(H), np.zeros(H)))
    if w_ci is None:
        w_ci = np.zeros(H)
    clip = kw.get("cell_clip", np.inf)
    ln = kw.get("ln_ih") is not None
    h, c = kw["h0"], kw["c0"]
    ys = []
    for t in range(T):
        a_ih = (kw["x"][t] * m_x) @ kw["w_ih"].T
        a_hh = (h * m_h) @ (kw["w_hh"] * M).T
        if ln:
            A = _ln(a_ih) * kw["ln_ih"] + kw["b_ih"] + _ln(a_hh) * kw["ln_hh"] + kw["b_hh"]
        else:
            A = a_ih + kw["b_ih"] + a_hh + kw["b_hh"]
        blocks = dict(zip("fgo" if coupled else "ifgo", np.split(A, G // H, axis=1)))
        f = _sig(blocks["f"] + w_cf * c)
        i = 1 - f if coupled else _sig(blocks["i"] + w_ci * c)
        g = np.tanh(blocks["g"])
        ct = np.clip(f * c + i * g, -clip, clip)
        o = _sig(blocks["o"] + w_co * ct)
        if ln:
            ht = o * np.tanh(_ln(ct) * kw["ln_c"][0] + kw["ln_c"][1])
        else:
            ht = o * np.tanh(ct)
        c = zc[t] * c + (1 - zc[t]) * ct
        h = zh[t] * h + (1 - zh[t]) * ht
        ys.append(h)
    y, h_n, c_n, _ = lstm_variants_forward(**kw)
    np.testing.assert_allclose(y, np.stack(ys), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n, h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c_n, c, rtol=1e-12, atol=1e-14)


def test_layer_norm_statistics():
    kw, _ = make_case(440, ("ln",), **TINY)
    _, _, _, cache = lstm_variants_forward(**kw)
    # LN over all G*H entries of a row together, biased variance, eps 1e-5
    np.testing.assert_allclose(cache["n_ih"], _ln(kw["x"] @ kw["w_ih"].T), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cache["n_hh"], _ln(cache["h_prev"] @ kw["w_hh"].T), rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_allclose(cache["n_c"], _ln(cache["c_tilde"]), rtol=1e-12, atol=1e-14)
    for n in (cache["n_ih"], cache["n_hh"], cache["n_c"]):
        np.testing.assert_allclose(n.mean(axis=-1), 0, atol=1e-13)
        var = n.var(axis=-1)
        assert np.all(var < 1) and np.all(var > 0.9)   # var / (var + 1e-5)
    # LN output is invariant to scaling the projection weights (up to the eps)
    y1 = lstm_variants_forward(**kw)[0]
    y2 = lstm_variants_forward(**dict(kw, w_ih=kw["w_ih"] * 10))[0]
    np.testing.assert_allclose(y2, y1, rtol=1e-3, atol=1e-4)


def test_input_mask_zero_column_has_no_effect_on_that_input():
    kw, grads = make_case(450, ("input_mask",), **TINY)
    m = kw["input_mask"]
    assert (m == 0).any()
    g = lstm_variants_backward(lstm_variants_forward(**kw)[3], **grads)
    assert np.all(g["dx"][:, m == 0] == 0)
    kw2 = dict(kw, x=kw["x"] + np.where(m == 0, 5.0, 0.0)[None])
    np.testing.assert_array_equal(lstm_variants_forward(**kw2)[0], lstm_variants_forward(**kw)[0])


def test_dropconnect_zero_entries_get_zero_gradient():
    kw, grads = make_case(460, ("dropconnect",), **TINY)
    m = kw["weight_hh_mask"]
    g = lstm_variants_backward(lstm_variants_forward(**kw)[3], **grads)
    assert np.all(g["dw_hh"][m == 0] == 0) and np.all(g["dw_hh"][m != 0] != 0)


# ----------------------------------------------------------------------------
# packed-sequence semantics, dtypes
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["all", "all_coupled"])
def test_lengths_semantics(name):
    kw, grads = make_case(500, CONFIGS[name], T=5, B=4, I=3, H=4)
    lengths = kw["lengths"]
    assert lengths.min() == 1 and lengths.max() == 5
    y, h_n, c_n, cache = lstm_variants_forward(**kw)
    g = lstm_variants_backward(cache, **grads)
    for b, n in enumerate(lengths):
        assert np.all(y[n:, b] == 0)
        np.testing.assert_array_equal(h_n[b], y[n - 1, b])
        assert np.all(g["dx"][n:, b] == 0)
        # each sequence alone, cut to its length
        sub = dict(kw, x=kw["x"][:n, b:b + 1], h0=kw["h0"][b:b + 1], c0=kw["c0"][b:b + 1],
                   lengths=None, input_mask=kw["input_mask"][b:b + 1],
                   recurrent_mask=kw["recurrent_mask"][b:b + 1],
                   zoneout_h=kw["zoneout_h"][:n, b:b + 1], zoneout_c=kw["zoneout_c"][:n, b:b + 1])
        yb, hb, cb, cache_b = lstm_variants_forward(**sub)
        np.testing.assert_allclose(yb[:, 0], y[:n, b], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(hb[0], h_n[b], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(cb[0], c_n[b], rtol=1e-13, atol=1e-15)
        gb = lstm_variants_backward(cache_b, grads["dy"][:n, b:b + 1], grads["dh_n"][b:b + 1],
                                    grads["dc_n"][b:b + 1])
        for k in ("dh0", "dc0"):
            np.testing.assert_allclose(gb[k][0], g[k][b], rtol=1e-12, atol=1e-14, err_msg=k)
        np.testing.assert_allclose(gb["dx"][:, 0], g["dx"][:n, b], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(gb["dh_total"][:, 0], g["dh_total"][:n, b], rtol=1e-12,
                                   atol=1e-14)
    # dy at padded steps and zoneout values at padded steps have no effect
    pad = np.arange(5)[:, None] >= lengths[None, :]
    dy2 = grads["dy"].copy()
    dy2[pad] = 123.0
    zh2 = kw["zoneout_h"].copy()
    zh2[pad] = 1 - zh2[pad]
    out2 = lstm_variants_forward(**dict(kw, zoneout_h=zh2))
    g2 = lstm_variants_backward(out2[3], dy2, grads["dh_n"], grads["dc_n"])
    for a, b in zip(out2[:3], (y, h_n, c_n)):
        np.testing.assert_array_equal(a, b)
    for k in ALL_KEYS:
        if g[k] is not None:
            np.testing.assert_array_equal(g2[k], g[k], err_msg=k)


@pytest.mark.parametrize("name", ["all", "all_coupled"])
def test_float32_close_to_float64(name):
    kw64, grads64 = make_case(600, CONFIGS[name], **TINY)

    def cast(v):
        if isinstance(v, np.ndarray) and v.dtype == np.float64:
            return v.astype(np.float32)
        if isinstance(v, tuple):
            return tuple(cast(a) for a in v)
        return v

    kw32 = {k: cast(v) for k, v in kw64.items()}
    grads32 = {k: cast(v) for k, v in grads64.items()}
    out64 = lstm_variants_forward(**kw64)
    out32 = lstm_variants_forward(**kw32)
    for a, b in zip(out32[:3], out64[:3]):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    g64 = lstm_variants_backward(out64[3], **grads64)
    g32 = lstm_variants_backward(out32[3], **grads32)
    for k in ALL_KEYS:
        if g64[k] is None:
            assert g32[k] is None, k
            continue
        assert g32[k].dtype == np.float32, k
        np.testing.assert_allclose(g32[k], g64[k], rtol=1e-3, atol=1e-4, err_msg=k)


# ----------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------

def _bad_cases():
    T, B, I, H = TINY["T"], TINY["B"], TINY["I"], TINY["H"]
    v = np.ones(H)
    G4 = np.ones(4 * H)
    return {
        "peephole_not_tuple": (dict(peephole=v), TypeError, "peephole"),
        "peephole_len2": (dict(peephole=(v, v)), TypeError, "peephole"),
        "peephole_wci_missing": (dict(peephole=(None, v, v)), ValueError, "w_ci"),
        "peephole_wci_with_coupled": (dict(coupled=True, w_ih=np.ones((3 * H, I)),
                                           w_hh=np.ones((3 * H, H)), b_ih=None, b_hh=None,
                                           peephole=(v, v, v)), ValueError, "w_ci"),
        "peephole_wcf_shape": (dict(peephole=(v, np.ones(H + 1), v)), ValueError, "w_cf"),
        "peephole_wco_none": (dict(peephole=(v, v, None)), ValueError, "w_co"),
        "peephole_dtype": (dict(peephole=(v, v, v.astype(np.float32))), TypeError, "w_co"),
        "clip_zero": (dict(cell_clip=0.0), ValueError, "cell_clip"),
        "clip_negative": (dict(cell_clip=-1.0), ValueError, "cell_clip"),
        "clip_nan": (dict(cell_clip=float("nan")), ValueError, "cell_clip"),
        "clip_str": (dict(cell_clip="1"), TypeError, "cell_clip"),
        "clip_bool": (dict(cell_clip=True), TypeError, "cell_clip"),
        "ln_partial": (dict(ln_ih=G4, ln_hh=G4), ValueError, "ln_c"),
        "ln_only_c": (dict(ln_c=(v, v)), ValueError, "ln_ih"),
        "ln_ih_shape": (dict(ln_ih=np.ones(3 * H), ln_hh=G4, ln_c=(v, v)), ValueError, "ln_ih"),
        "ln_c_not_pair": (dict(ln_ih=G4, ln_hh=G4, ln_c=v), TypeError, "ln_c"),
        "ln_c_bias_shape": (dict(ln_ih=G4, ln_hh=G4, ln_c=(v, np.ones(H + 1))), ValueError,
                            "ln_c bias"),
        "coupled_4_gates": (dict(coupled=True), ValueError, "w_hh"),
        "coupled_not_bool": (dict(coupled="yes"), TypeError, "coupled"),
        "standard_3_gates": (dict(w_ih=np.ones((3 * H, I)), w_hh=np.ones((3 * H, H))),
                             ValueError, "w_hh"),
        "input_mask_shape": (dict(input_mask=np.ones((B, H))), ValueError, "input_mask"),
        "input_mask_dtype": (dict(input_mask=np.ones((B, I), np.float32)), TypeError,
                             "input_mask"),
        "recurrent_mask_shape": (dict(recurrent_mask=np.ones((T, B, H))), ValueError,
                                 "recurrent_mask"),
        "weight_hh_mask_shape": (dict(weight_hh_mask=np.ones((3 * H, H))), ValueError,
                                 "weight_hh_mask"),
        "zoneout_h_shape": (dict(zoneout_h=np.zeros((B, H))), ValueError, "zoneout_h"),
        "zoneout_c_range": (dict(zoneout_c=np.full((T, B, H), 1.5)), ValueError, "zoneout_c"),
        "zoneout_h_nan": (dict(zoneout_h=np.full((T, B, H), np.nan)), ValueError, "zoneout_h"),
        "c0_shape": (dict(c0=np.ones((B, H + 1))), ValueError, "c0"),
        "lengths_zero": (dict(lengths=np.array([0, 1, 2])), ValueError, "lengths"),
    }


BAD = _bad_cases()


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input(case):
    kw, _ = make_case(700, (), **TINY)
    change, exc, match = BAD[case]
    kw.update(change)
    with pytest.raises(exc, match=match):
        lstm_variants_forward(**kw)


def test_bad_backward_input():
    kw, grads = make_case(710, ("peephole",), **TINY)
    cache = lstm_variants_forward(**kw)[3]
    T, B, H = TINY["T"], TINY["B"], TINY["H"]
    with pytest.raises(ValueError, match="dy"):
        lstm_variants_backward(cache, np.ones((T, B, H + 1)))
    with pytest.raises(TypeError, match="dh_n"):
        lstm_variants_backward(cache, grads["dy"], np.ones((B, H), np.float32))
    with pytest.raises(ValueError, match="dc_n"):
        lstm_variants_backward(cache, grads["dy"], None, np.ones((B + 1, H)))


def test_accepts_lists_and_int_clip():
    """Array-likes are fine for the option arrays; an int clip is a positive number."""
    kw, _ = make_case(720, ("peephole",), **TINY)
    kw2 = dict(kw, peephole=[a.tolist() for a in kw["peephole"]], cell_clip=1)
    kw1 = dict(kw, cell_clip=1.0)
    np.testing.assert_array_equal(lstm_variants_forward(**kw2)[0], lstm_variants_forward(**kw1)[0])
