"""The variant section of the benchmark report runs and reports every case (tiny size)."""
import numpy as np

from fastrnn.bench_variants import format_variant_section, variant_cases, variant_rows

TINY = dict(steps=3, batch=2, inputs=4, hidden=5)


def test_variant_rows_cover_every_case_and_format():
    rows, torch_rows = variant_rows(rounds=1, settle_s=0.0, size=TINY)
    names = {(cell, name) for cell, name, _, _ in rows}
    for cell in ("lstm", "gru"):
        assert {(cell, n) for n in variant_cases(cell, 3, 2, 4, 5)} <= names
    assert all(ms > 0 and plain > 0 for _, _, ms, plain in rows)
    text = format_variant_section(rows, torch_rows)
    assert "layer_norm" in text and "coupled_gates" in text


def test_variant_cases_use_the_variant_kernels():
    cases = variant_cases("lstm", 3, 2, 4, 5)
    weights, keywords = cases["coupled_gates"]
    assert weights[0].shape == (15, 4) and keywords == {"coupled": True}
    assert cases["zoneout"][1]["zoneout_h"].dtype == np.float32
