"""The README's commands and curls run as written in a copy of the repository, and leave no file
of it changed or added (`git status --porcelain` stays empty).

The copy holds the working tree's files (tracked and not ignored) committed in a fresh git
repository. CLI commands run in this process through the `hct` app (the tiny sizes below
replace the README's full ones); the curls run in bash against a real `hct serve` (uvicorn)
on a free port with a temporary SQLite database.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
# The README's sizes, shrunk so the whole chain runs in seconds; the commands stay as written.
TINY = {"simulate": ["--patients", "120"], "baselines": ["--n-boot", "20"],
        "train": ["--epochs", "1", "--preset", "tiny"], "evaluate": ["--n-boot", "20"]}


def _block_after(marker: str) -> str:
    tail = README.split(marker, 1)[1]
    return tail.split("```sh\n", 1)[1].split("```", 1)[0]


def _git(copy: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=copy, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("clone")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    _git(copy, "init", "-q")
    _git(copy, "add", "-A")
    _git(copy, "commit", "-qm", "copy")
    return copy


def test_readme_commands_write_only_where_told_or_under_runs(repo_copy, monkeypatch):
    from typer.testing import CliRunner

    from service.cli import app
    from service.settings import get_settings

    lines = _block_after("<!-- readme-commands").replace("\\\n", " ").splitlines()
    commands = [shlex.split(line.split("  #")[0]) for line in lines
                if line.startswith(".venv/bin/hct ")]
    assert [c[1] for c in commands] == ["ingest", "score", "simulate", "baselines", "train",
                                        "evaluate", "export"]
    monkeypatch.chdir(repo_copy)
    for name in [k for k in os.environ if k.startswith("HCT_")]:
        monkeypatch.delenv(name)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        for command in commands:
            args = command[1:] + TINY.get(command[1], [])
            result = runner.invoke(app, args)
            assert result.exit_code == 0, (args, result.output)
        bundle = repo_copy / "runs" / "model"
        card = json.loads((bundle / "card.json").read_text())
        assert card["version"].startswith("dev-") and card["version"] != "0.1.0"
        again = runner.invoke(app, commands[-1][1:])  # the same export again: refused
        assert again.exit_code == 1 and "--force" in again.stderr
        shipped = [a if a != "runs/model" else "models/default" for a in commands[-1][1:]]
        assert runner.invoke(app, shipped).exit_code == 1  # never over the shipped bundle
    finally:
        get_settings.cache_clear()
    assert _git(repo_copy, "status", "--porcelain") == ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readme_curls_work_from_a_fresh_copy(repo_copy, tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HCT_")}
    env |= {"HCT_PORT": str(port), "HCT_DATABASE_URL": f"sqlite:///{tmp_path / 'hct.db'}",
            "HCT_UPLOAD_DIR": str(tmp_path / "uploads"), "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve"], cwd=repo_copy,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stdout.read().decode()
            assert time.monotonic() < deadline, "the server never became ready"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        block = _block_after("<!-- readme-curls").replace("127.0.0.1:8000",
                                                           f"127.0.0.1:{port}")
        assert block.count("curl ") >= 9
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=repo_copy,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        assert '"hematocrit_pct"' in run.stdout and '"resourceType": "Observation"' in run.stdout
        assert "hct_http_requests_total" in run.stdout
        results = (repo_copy / "runs" / "results.csv").read_text()
        assert results.startswith("seq,patient_id")
        assert _git(repo_copy, "status", "--porcelain") == ""
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0].decode()
    assert not re.search(r"^(ERROR|CRITICAL)|\[E:onnxruntime", log, re.M), log
