"""The paper-tables benchmark runs end to end at smoke size and writes its JSON + Markdown pair
with the paper's figures beside the rows they belong to."""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from bench import paper_tables  # noqa: E402


def test_tiny_run_writes_every_table_4_row_with_the_papers_figures(tmp_path):
    paper_tables.main(["--tiny", "--tasks", "normalvar,digitvar,hematocrit", "--out",
                       str(tmp_path)])
    report = json.loads((tmp_path / "paper_tables_tiny.json").read_text())
    nv = [r for r in report["set_tasks"] if r["task"] == "normalvar"]
    assert {(r["arch"], r["depth"]) for r in nv} == {
        (a, d) for a, depths in paper_tables.DEPTHS.items() for d, _ in depths}
    ds_deep = next(r for r in nv if (r["arch"], r["depth"]) == ("deepsets_pp", 50))
    assert ds_deep["paper_mse"] == 0.0320
    assert all(r["test_mse"] > 0 for r in report["set_tasks"])
    assert {r["task"] for r in report["set_tasks"]} == {"normalvar", "digitvar"}
    h = report["hematocrit"]
    assert [r["arch"] for r in h["rows"]] == list(paper_tables.DEPTHS)
    assert {"cbc_indices", "moments", "oracle_hct"} <= set(h["baselines"])
    st_pp = h["rows"][-1]
    assert st_pp["paper_mse_deep"] == 18.73 and st_pp["mflop"] > 0 and st_pp["cpu_ms"] > 0
    md = (tmp_path / "paper_tables_tiny.md").read_text()
    assert "cannot be downloaded here" in md and "25.85" in md
