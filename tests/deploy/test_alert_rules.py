"""deploy/alerts.yml is valid and behaves as its promtool unit tests say (Debian's `prometheus`
package provides promtool; CI installs it and must not skip)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMTOOL = shutil.which("promtool")

if PROMTOOL is None and not os.environ.get("CI"):
    pytest.skip("promtool not installed (apt-get install prometheus); CI installs it and runs "
                "these tests", allow_module_level=True)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None, "promtool is required under CI: apt-get install -y prometheus"
    return subprocess.run([PROMTOOL, *args], cwd=DEPLOY, capture_output=True, text=True,
                          timeout=60, check=False)


def test_alert_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_and_stay_silent_as_their_unit_tests_expect() -> None:
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_loads_the_alert_rules() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alerts.yml" in result.stdout + result.stderr
