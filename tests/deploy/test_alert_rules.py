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


def _rules(group: str | None = None) -> list[dict]:
    import yaml

    doc = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    return [rule for g in doc["groups"] if group in (None, g["name"]) for rule in g["rules"]]


def test_every_delivery_alert_fires_in_a_unit_test() -> None:
    import yaml

    doc = yaml.safe_load((DEPLOY / "alerts_test.yml").read_text())
    fired = {case["alertname"] for test in doc["tests"] for case in test["alert_rule_test"]
             if case.get("exp_alerts")}
    delivery = {rule["alert"] for rule in _rules("hct-delivery")}
    assert delivery and delivery <= fired, delivery - fired


def test_every_metric_an_alert_reads_is_one_the_service_exports() -> None:
    import re

    from prometheus_client import REGISTRY

    import service.metrics  # noqa: F401  (defines them)

    exported = {m.name for m in REGISTRY.collect()}
    read = {name for rule in _rules() for name in re.findall(r"\bhct_[a-z0-9_]+", rule["expr"])}
    assert read <= exported, read - exported


def test_failed_and_stuck_hl7_deliveries_raise_alerts() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in _rules()}
    assert 'hct_hl7_outbox_messages{status="failed"}' in exprs["HctHl7MessagesFailed"]
    assert 'hct_hl7_outbox_messages{status="pending"}' in exprs["HctHl7BacklogNotDraining"]
