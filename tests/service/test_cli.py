"""The `hct` command line: `ingest` prints a table or one clear error; `score` runs the
service pipeline offline into a CSV."""

import csv

from typer.testing import CliRunner

from service.cli import app
from tests.service.test_batches_api import export_csv

runner = CliRunner()


def test_ingest_prints_a_table_and_bad_files_exit_1(tmp_path):
    good = tmp_path / "export.csv"
    good.write_bytes(export_csv(3, bad=(1,)))
    result = runner.invoke(app, ["ingest", str(good)])
    assert result.exit_code == 1  # one sample failed: reported, and the exit code says so
    assert "P0000" in result.stdout and "P0002" in result.stdout
    assert "2 samples read, 1 errors" in result.stdout
    bad = tmp_path / "bad.fcs"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    result = runner.invoke(app, ["ingest", str(bad)])
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error:") and len(result.stderr.splitlines()) == 1


def test_score_uses_the_service_pipeline(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("HCT_MODEL_DIR", str(settings.model_dir))
    monkeypatch.setenv("HCT_EXECUTION_PROVIDER", "cpu")
    from service.settings import get_settings

    get_settings.cache_clear()
    export = tmp_path / "export.csv"
    export.write_bytes(export_csv(5, bad=(2,)))
    out = tmp_path / "results.csv"
    result = runner.invoke(app, ["score", str(export), "--out", str(out)])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "4 samples scored, 1 errors" in result.stdout
    rows = list(csv.DictReader(out.open()))
    assert [r["status"] for r in rows] == ["done", "done", "error", "done", "done"]
    assert all(float(r["hematocrit_pct"]) > 0 for r in rows if r["status"] == "done")
    assert rows[0]["onnx_sha256"] and rows[0]["cbc_indices"]


def test_python_dash_m_runs_the_same_cli():
    """`python -m service.cli` (no installed script needed) must run, not exit 0 silently."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "service.cli", "ingest", "/nonexistent.csv"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "nonexistent.csv" in result.stderr + result.stdout
