"""Smoke test of the inference benchmark on a tiny model: report structure, FLOP count, and
that every quantised variant carries a numeric accuracy change.

Speed is the benchmark's job, not this test's: nothing here asserts a timing relation.
"""

import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from bench.flops import flop_count  # noqa: E402
from bench.inference import BenchSettings, parse_args, run  # noqa: E402
from bench.inference_inputs import random_source  # noqa: E402
from bench.inference_report import to_markdown, write_report  # noqa: E402
from model.deepsets import PRESETS, ModelConfig  # noqa: E402

TINY = ModelConfig(hidden=8, blocks=1, decoder_layers=1)
SETTINGS = BenchSettings(batches=(1, 4), set_size=64, repeats=2, warmup=1, settle_s=0.0,
                         accuracy_sets=8, peak_sizes=(128,), peak_tries=1)


def test_flop_count_matches_the_stated_formula():
    h, k, s = 64, 8, 1000
    f = flop_count(PRESETS["cpu"], s)
    assert f["per_cell_matmul"] == 2 * 2 * h + k * 2 * 2 * h * h + 2 * h * h
    assert f["per_cell_elementwise"] == 3 * 2 + k * (2 * h + 2 * 8 * h + 2 * h + 2 * h) + 12 * h
    per_set = f["per_set_decoder_etc"]
    assert per_set == 3 * (2 * h * h + 2 * h) + 2 * h + 1 + h + 2
    assert f["per_set"] == s * (f["per_cell_matmul"] + f["per_cell_elementwise"]) + per_set
    assert 0.9 < f["matmul_share"] < 1.0


def test_cli_defaults_are_the_issues():
    args = parse_args([])
    assert args.preset is None and args.batches == [1, 8, 64] and args.set_size == 1000
    assert args.checkpoint is None and args.bundle is None and args.data is None


def test_tiny_run_reports_every_variant_with_accuracy(tmp_path):
    report = run(random_source(TINY, "tiny test model"), SETTINGS, progress=False)
    json_path, md_path = write_report(report, tmp_path)
    loaded = json.loads(json_path.read_text())

    for key in ("model", "settings", "flops", "peak_gflops", "cuda", "engines", "quantisation",
                "accuracy", "results", "machine", "notes"):
        assert key in loaded
    machine = loaded["machine"]
    assert machine["cpu_model"] and machine["cpu_count"] >= 1
    assert machine["torch"] and machine["onnxruntime"] and machine["providers_used"]
    assert loaded["model"]["random_init"] is True
    assert any("not depend on the weights" in n for n in loaded["notes"])
    assert isinstance(loaded["cuda"]["available"], bool) and loaded["cuda"]["note"]
    assert loaded["peak_gflops"]["cpu_by_threads"]

    names = {e["name"] for e in loaded["engines"]}
    assert {"torch eager fp32, 1 thr", "ORT fp32 DISABLE_ALL, 2 thr", "ORT fp32 BASIC, 1 thr",
            "ORT fp32 ALL, 2 thr", "ORT int8 per-tensor ALL, 1 thr",
            "ORT int8 per-channel ALL, 2 thr"} <= names
    rows = loaded["results"]
    assert len(rows) == len(names) * 2 and {r["batch"] for r in rows} == {1, 4}
    for r in rows:
        for key in ("ms_median", "ms_p90", "patients_per_s", "gflops"):
            assert r[key] > 0 and math.isfinite(r[key])
        assert r["pct_of_peak"] is None or r["pct_of_peak"] > 0

    int8 = [r for r in rows if "int8" in r["engine"]]
    assert int8
    for r in int8:
        assert not r["accuracy_reference"]
        for key in ("accuracy_max_abs_diff_pct", "accuracy_mean_abs_diff_pct"):
            assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] >= 0
    assert loaded["accuracy"]["reference"] == "torch-fp32"
    assert all(info["quantised_nodes"] > 0 for info in loaded["quantisation"].values())

    markdown = md_path.read_text()
    assert markdown == to_markdown(loaded)
    assert "| ORT int8 per-channel ALL, 2 thr | 4 |" in markdown and "FLOP formula" in markdown
