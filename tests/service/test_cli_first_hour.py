"""The command line as a newcomer meets it: `hct score` never loses work and says how it went
in its exit code; outputs get their folders; errors say their location once and lead with the
cause; numbers are printed as a person reads them."""

import csv
import io

import pytest
from typer.testing import CliRunner

from service.cli import EXIT_ALL_SCORED, EXIT_NOTHING_SCORED, EXIT_SOME_FAILED, app
from tests.service.conftest import cells_for

runner = CliRunner()


def _export(small: int, good: int, *, interleave: bool = False) -> str:
    """`small` samples with too few cells (invalid), then `good` valid ones."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["patient_id", "sample_id", "volume_fl", "hemoglobin_pg",
                     "measured_hematocrit_pct"])
    if interleave:
        a, b = cells_for(40, 300, 1), cells_for(44, 300, 2)
        for x, y in zip(a, b, strict=True):
            writer.writerow(["P1", "S1", f"{x[0]:.2f}", f"{x[1]:.2f}", 40])
            writer.writerow(["P2", "S2", f"{y[0]:.2f}", f"{y[1]:.2f}", 44])
        return out.getvalue()
    for i in range(small + good):
        n = 50 if i < small else 250
        for v, h in cells_for(40, n, i):
            writer.writerow([f"P{i}", f"S{i}", f"{v:.2f}", f"{h:.2f}", 47.98178482055664])
    return out.getvalue()


@pytest.fixture
def offline_env(settings, monkeypatch):
    from service.settings import get_settings

    monkeypatch.setenv("HCT_MODEL_DIR", str(settings.model_dir))
    monkeypatch.setenv("HCT_EXECUTION_PROVIDER", "cpu")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_score_keeps_every_good_row_when_many_samples_in_a_row_are_bad(offline_env, tmp_path):
    export = tmp_path / "export.csv"
    export.write_text(_export(70, 3))  # more bad samples in a row than one scoring block
    out = tmp_path / "results.csv"
    result = runner.invoke(app, ["score", str(export), "--out", str(out)])
    assert result.exit_code == EXIT_SOME_FAILED, result.output
    rows = list(csv.DictReader(out.open()))
    assert [r["status"] for r in rows] == ["error"] * 70 + ["done"] * 3
    assert all(r["error_message"] for r in rows[:70])
    assert result.stdout.count("3 samples scored, 70 errors") == 1  # the summary, once
    assert "Traceback" not in result.output
    assert result.stderr == ""  # not a terminal: no progress redraws, no second summary


def test_score_exit_codes_say_all_scored_or_nothing_scored(offline_env, tmp_path):
    export = tmp_path / "export.csv"
    export.write_text(_export(0, 2))
    assert runner.invoke(app, ["score", str(export), "--out", str(tmp_path / "a.csv")]
                         ).exit_code == EXIT_ALL_SCORED
    export.write_text(_export(3, 0))
    assert runner.invoke(app, ["score", str(export), "--out", str(tmp_path / "b.csv")]
                         ).exit_code == EXIT_NOTHING_SCORED
    missing = runner.invoke(app, ["score", str(tmp_path / "nope.csv")])
    assert missing.exit_code == EXIT_NOTHING_SCORED
    assert runner.invoke(app, ["score"]).exit_code == 2  # usage


def test_score_writes_into_folders_it_creates(offline_env, tmp_path):
    export = tmp_path / "export.csv"
    export.write_text(_export(0, 1))
    out = tmp_path / "new" / "folder" / "results.csv"
    result = runner.invoke(app, ["score", str(export), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists()


def test_simulate_creates_missing_folders_and_refuses_unwritable_ones_cleanly(tmp_path):
    out = tmp_path / "data" / "cohort.h5"
    result = runner.invoke(app, ["simulate", "--patients", "4", "--cells", "20", "--out",
                                 str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists()
    assert result.stderr == ""  # not a terminal: no progress bar in the log
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = runner.invoke(app, ["simulate", "--patients", "4", "--cells", "20", "--out",
                                 str(blocker / "cohort.h5")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output


def test_cli_errors_name_their_location_once(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("patient_id,sample_id,volume_fl\nP,S,90\n")
    result = runner.invoke(app, ["ingest", str(bad)])
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith(f"error: {bad}: ") and line.count("x.csv") == 1, line
    rows = tmp_path / "rows.csv"
    rows.write_text(_export(1, 0))
    result = runner.invoke(app, ["ingest", str(rows)])
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert line.count("rows 1-50") == 1, line


def test_interleaved_samples_lead_with_the_cause_in_a_few_lines(tmp_path):
    export = tmp_path / "interleaved.csv"
    export.write_text(_export(0, 0, interleave=True))
    result = runner.invoke(app, ["ingest", str(export)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert "must be contiguous" in lines[0]
    assert len(lines) <= 15
    assert "more errors" in lines[-1]


def test_ingest_prints_the_measured_hematocrit_rounded(tmp_path):
    export = tmp_path / "export.csv"
    export.write_text(_export(0, 1))
    result = runner.invoke(app, ["ingest", str(export)])
    assert result.exit_code == 0, result.output
    assert "47.98" in result.stdout and "47.981" not in result.stdout


def test_serve_on_a_busy_port_says_so_before_any_start_up_work(settings, tmp_path):
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("HCT_")}
        env |= {"HCT_MODEL_DIR": str(settings.model_dir), "HCT_PORT": str(port),
                "HCT_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}",
                "HCT_EXECUTION_PROVIDER": "cpu", "HCT_UPLOAD_DIR": str(tmp_path / "up")}
        result = subprocess.run([sys.executable, "-m", "service.cli", "serve"], env=env,
                                cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "hct ready" not in result.stderr and "loaded on" not in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "in use" in result.stderr
