"""The `hct` command line: `ingest` prints a table or one clear error; `score` runs the
service pipeline offline into a CSV."""

import csv

from typer.testing import CliRunner

from service.cli import app
from tests.service.api.test_batches_api import export_csv

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
    assert result.exit_code == 3, result.output  # some samples failed: said, nothing lost
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


def test_serve_with_two_processes_shares_the_cores_out(settings, tmp_path):
    """`hct serve --workers 2`: both uvicorn processes answer, each sizing its model calls for
    half the cores (they read HCT_WORKERS, which --workers sets for them)."""
    import json
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from service.online import auto_model_workers

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HCT_")}
    env |= {"HCT_MODEL_DIR": str(settings.model_dir), "HCT_PORT": str(port),
            "HCT_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}", "HCT_RUN_JOBS": "false",
            "HCT_EXECUTION_PROVIDER": "cpu", "HCT_UPLOAD_DIR": str(tmp_path / "uploads")}
    server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--workers", "2"],
                              env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        deadline, ready = time.monotonic() + 90, None
        while ready is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    ready = json.loads(r.read())
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()[-3000:]
                assert time.monotonic() < deadline, "server not ready in 90 s"
                time.sleep(0.5)
        assert ready["model"]["model_workers"] == auto_model_workers("cpu", 2)
    finally:
        server.terminate()
        server.wait(timeout=30)
