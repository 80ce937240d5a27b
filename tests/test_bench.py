"""The benchmark report (fastrnn.bench) runs end to end and prints the expected table.

Only the smallest case is run (RNN at S1, quick repeats, no compile timing), in a
subprocess as ``python -m fastrnn.bench`` would be. No timing is asserted.
"""
import json
import os
import subprocess
import sys

import pytest

from fastrnn import bench


def _table_rows(text):
    return [line.split() for line in text.splitlines() if line.split()[:1] in (["lstm"], ["gru"], ["rnn"])]


def test_report_smallest_run(tmp_path):
    out_json = tmp_path / "report.json"
    env = dict(os.environ, OPENBLAS_CORETYPE="Haswell")  # the report must drop it by re-executing
    done = subprocess.run(
        [sys.executable, "-m", "fastrnn.bench", "--quick", "--sizes", "S1", "--cells", "rnn",
         "--no-compile-time", "--no-layers", "--no-variants", "--json", str(out_json)],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    text = done.stdout

    assert "threads  2" in text and "CPU" in text and "numba" in text
    assert "removed OPENBLAS_CORETYPE" in text
    header = next(line for line in text.splitlines() if line.startswith("cell"))
    assert header.split()[:4] == ["cell", "size", "mode", "fastrnn"]
    rows = _table_rows(text)
    assert [row[:3] for row in rows] == [["rnn", "S1", "fwd"], ["rnn", "S1", "fwd+bwd"]]
    for row in rows:
        assert len(row) == 11, row
        assert float(row[3]) > 0  # fastrnn ms
        assert row[10].endswith("%")  # fraction of the GEMM roofline
    assert "compile time" not in text

    report = json.loads(out_json.read_text())
    assert report["machine"]["threads"] == 2 and report["machine"]["removed_env"] == ["OPENBLAS_CORETYPE"]
    assert [(r["cell"], r["size"], r["mode"]) for r in report["rows"]] == [("rnn", "S1", "fwd"), ("rnn", "S1", "fwd+bwd")]
    fwd, train = report["rows"]
    assert train["flops"] == 3 * fwd["flops"] == 3 * 2 * 200 * 1 * 1 * 64 * (16 + 64)
    assert fwd["median_s"]["fastrnn"] > 0 and fwd["gflops"] > 0 and fwd["gemm_gflops"] > 0


def test_row_formatting_marks_missing_implementations():
    row = bench.Row("lstm", "S2", "fwd+bwd", flops=10 ** 9, gemm_gflops=100.0)
    row.timings["fastrnn"] = bench.Timing(0.01, [0.01])
    row.timings["numpy"] = bench.Timing(0.05, [0.05])
    cells = bench.format_row(row).split()
    assert cells == ["lstm", "S2", "fwd+bwd", "10.000", "50.000", "-", "-", "5.0x", "100.0", "100.0", "100%"]
    assert len(bench.format_row(row)) == len(bench.table_header().splitlines()[0])


def test_repeat_policy_and_arguments():
    policy = bench.DEFAULT_POLICY
    assert policy.repeats(1e-6) == policy.max_repeats
    assert policy.repeats(0.4) == policy.min_repeats
    assert policy.repeats(10.0) == policy.slow_min_repeats
    args = bench.parse_args(["--sizes", "s1,S4", "--cells", "GRU"])
    assert [s.name for s in args.sizes] == ["S1", "S4"] and [c.name for c in args.cells] == ["gru"]
    with pytest.raises(SystemExit):
        bench.parse_args(["--sizes", "S9"])


@pytest.mark.parametrize("argv,message", [(["--seed", "-1"], "--seed must be a non-negative int"),
                                          (["--json", "/no/such/folder/r.json"], "does not exist or is not writable")])
def test_bad_arguments_stop_before_the_run(argv, message, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
    assert message in capsys.readouterr().err


def test_missing_torch_is_skipped_cleanly(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    cell, size = bench.CELLS["rnn"], bench.Size("tiny", 2, 2, 3, 4)
    inputs = bench.make_inputs(cell, size)
    with pytest.raises(bench.Unavailable, match="torch"):
        bench.make_runner("torch", cell, "fwd", inputs)
    row = bench.run_row(cell, size, "fwd", ["torch"], inputs, 1.0, bench.QUICK_POLICY)
    assert not row.timings and "torch" in row.skipped
    assert bench.format_row(row).split()[3:6] == ["-", "-", "-"]


def test_layer_section_format():
    from fastrnn.bench_layers import format_layer_section
    text = format_layer_section([("LSTM layer fwd S2", 0.010, 0.011, "functional"),
                                 ("GRU 2-layer bidir lengths fwd", 0.02, None, "torch packed")],
                                [("LSTM stream step", 3.0, 45.0), ("GRU stream step", 2.5, None)])
    assert "LSTM layer fwd S2" in text and "1.10x" in text and "15.00x" in text
    assert text.count("-" * 100) == 2


def test_stream_rows_run():
    from fastrnn.bench_layers import stream_rows
    rows = stream_rows(calls=20)
    assert [r[0].split()[0] for r in rows] == ["LSTM", "GRU", "RNN"]
    assert all(r[1] > 0 for r in rows)
