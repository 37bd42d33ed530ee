"""Installing prints no setuptools deprecation banner (the licence is an SPDX expression), and
no test writes into pytest's progress line."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_building_the_metadata_prints_no_deprecation_banner(tmp_path):
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    script = ("import setuptools.build_meta as b, os; os.mkdir('meta'); "
              "print(b.prepare_metadata_for_build_wheel('meta'))")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "Deprecat" not in output and "project.license" not in output, output
    metadata = next((tmp_path / "meta").glob("*.dist-info")) / "METADATA"
    assert "License-Expression: Apache-2.0" in metadata.read_text()


def test_no_test_prints_past_pytest_capture():
    """`capsys.disabled()` or the real stdout/stderr put text into the progress dots."""
    offenders = []
    for path in (ROOT / "tests").rglob("*.py"):
        text = path.read_text()
        if re.search(r"capsys\.disabled\(|sys\.__std(out|err)__", text) and path.name != \
                Path(__file__).name:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_fcs_corpus_summary_is_logged_not_printed():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/ingestion/test_fcs_corpus.py::test_corpus_summary"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout
    assert "FCS corpus" not in result.stdout
