"""The cost table covers every family at both presets, and the bundle comparison scores two real
bundles on one test split with a paired reference, writing the JSON + Markdown pair."""

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from bench import arch_cost, bundle_compare  # noqa: E402
from model.factory import ARCHITECTURES  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_cost_rows_cover_every_family_at_cpu_and_paper_size():
    rows = arch_cost.measure(cells=50, repeats=1)
    assert {(r["arch"], r["size"]) for r in rows} >= {
        (a, s) for a in ARCHITECTURES for s in ("cpu", "paper")}
    by = {(r["arch"], r["size"]): r for r in rows}
    for arch in ARCHITECTURES:  # the paper size costs more than the cpu size
        assert by[(arch, "paper")]["mflop"] > by[(arch, "cpu")]["mflop"] > 0
    assert "| Set Transformer++ | small |" in arch_cost.to_markdown(rows, 50)


def test_bundle_compare_scores_both_bundles_against_the_first(tmp_path):
    from ingestion.synthetic.cohort import simulate_cohort

    data = tmp_path / "cohort.h5"
    simulate_cohort(data, 60, 200, seed=3)
    bundle_compare.main(["--data", str(data), "--repeats", "1", "--out", str(tmp_path),
                         str(ROOT / "models/default"), str(ROOT / "models/set_transformer_pp")])
    report = json.loads((tmp_path / "bundle_compare.json").read_text())
    first, second = report["rows"]
    assert first["architecture"] == "Deep Sets++"
    assert second["architecture"] == "Set Transformer++"
    assert first["mse_reduction_vs_reference_pct"]["value"] == 0.0
    assert second["mse"]["value"] > 0 and second["batch1_ms"] > 0
    assert "hct-set-transformer-pp" in (tmp_path / "bundle_compare.md").read_text()
