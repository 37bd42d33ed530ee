"""The paper-tables benchmark runs end to end at smoke size and writes its JSON + Markdown pair
with the paper's figures beside the rows they belong to, every model trained for a fixed number
of epochs, and a closing section saying where the run agrees with the paper."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bench import paper_tables  # noqa: E402


def test_tiny_run_writes_every_table_4_row_with_the_papers_figures(tmp_path):
    paper_tables.main(["--tiny", "--tasks", "normalvar,hematocrit", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "paper_tables_tiny.json").read_text())
    nv = [r for r in report["set_tasks"] if r["task"] == "normalvar"]
    table4 = [r for r in nv if r["table"] == "Table 4"]
    assert {(r["arch"], r["depth"]) for r in table4} == {
        (a, d) for a, depths in paper_tables.DEPTHS.items() for d, _ in depths}
    steps_per_epoch = -(-paper_tables.TINY.nv_train // 64)
    assert all(r["epochs"] == paper_tables.TINY.epochs for r in nv)  # epochs, not minutes
    assert all(r["steps"] == paper_tables.TINY.epochs * steps_per_epoch for r in nv)
    ds_deep = next(r for r in table4 if (r["arch"], r["depth"]) == ("deepsets_pp", 50))
    assert ds_deep["paper_mse"] == 0.0320
    assert all(r["test_mse"] > 0 for r in nv)

    grid = [r for r in nv if r["table"] == "Tables 1-3"]
    assert len(grid) == 8  # the default cell + 3 norms + 3 residuals + the non-clean path
    default = next(r for r in grid if "the Table 4 run" in r["variant"])
    assert default["test_mse"] == ds_deep["test_mse"]  # reused, not trained again
    assert len({r["variant"] for r in grid}) == 8

    h = report["hematocrit"]
    assert [r["arch"] for r in h["rows"]] == list(paper_tables.DEPTHS)
    assert all(r["epochs"] == paper_tables.TINY.hct_epochs for r in h["rows"])
    assert {"cbc_indices", "moments", "oracle_hct"} <= set(h["baselines"])
    st_pp = h["rows"][-1]
    assert st_pp["paper_mse_deep"] == 18.73 and st_pp["mflop"] > 0 and st_pp["cpu_ms"] > 0

    md = (tmp_path / "paper_tables_tiny.md").read_text()
    assert "cannot be downloaded here" in md and "25.85" in md
    closing = md.split("## Agreement with the paper", 1)[1]
    assert "8.02" in closing and "0.032" in closing and "18.73" in closing
    assert "agree" in closing


def test_digit_sets_label_is_the_variance_of_the_digits_shown():
    images = np.eye(10, 64, dtype=np.float32)  # digit d is the one-hot image e_d
    digits = np.arange(10)
    data = paper_tables.digit_sets(50, images, digits, np.random.default_rng(0), size=7)
    assert data.cells.shape == (50, 7, 64)
    shown = data.cells.argmax(axis=-1)  # [50, 7]: which digit each image is
    np.testing.assert_allclose(data.targets, shown.var(axis=1))


def _set_row(arch: str, depth: int, table: str = "Table 4", variant: str = "family default",
             mse: float = 1.0) -> dict:
    return {"task": "normalvar", "table": table, "model": arch, "arch": arch, "depth": depth,
            "variant": variant, "test_mse": mse}


def test_merged_runs_keep_every_row_and_give_each_grid_its_default_cell():
    grid_cell = "norm=none residual=equivariant path=clean"
    first = {"mode": "tiny", "total_wall_s": 10.0, "set_tasks": [
        _set_row("deepsets_pp", 50, mse=0.5), _set_row("set_transformer_pp", 16, mse=0.7)],
        "hematocrit": {"rows": [{"key": "deepsets@tiny"}], "baselines": {}}}
    later = {"mode": "tiny", "total_wall_s": 5.0, "set_tasks": [
        _set_row("set_transformer_pp", 16, "Tables 1-3", grid_cell, mse=0.9)],
        "hematocrit": {"rows": [{"key": "set_transformer_pp@tiny"}], "baselines": {}}}
    merged = paper_tables.merge_reports([first, later])
    grid = [r for r in merged["set_tasks"] if r["table"] == "Tables 1-3"]
    assert [r["variant"] for r in grid] == [
        "norm=set residual=equivariant path=clean (the Table 4 run)", grid_cell]
    assert grid[0]["test_mse"] == 0.7  # the default cell is the Table 4 row, not retrained
    assert [r["key"] for r in merged["hematocrit"]["rows"]] == [
        "deepsets@tiny", "set_transformer_pp@tiny"]
    assert merged["total_wall_s"] == 15.0
