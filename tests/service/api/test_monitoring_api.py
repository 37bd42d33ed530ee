"""`GET /v1/monitoring`: behind the API key, the served model's monitor as JSON (and as
Prometheus gauges on /metrics); a bundle without a monitoring reference says so. A tenant's key
sees its own tenant's figures only, an admin key all traffic and each tenant's, and a figure
over fewer than `HCT_MONITORING_MIN_SAMPLES` samples is null with the reason, on /metrics too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.api.app import create_app
from service.api.security import key_digest
from service.db.tables import audit_log
from service.settings import Settings
from tests.service.conftest import metric_value, prediction_body

SHIPPED = Path(__file__).resolve().parents[3] / "models" / "default"
KEYS = {"key-a": "lab-a:predict+read:{}", "key-b": "lab-b:predict+read:{}",
        "ops": "ops:admin:{}"}
A, B, ADMIN = ({"Authorization": f"Bearer {k}"} for k in KEYS)


def _row(version: str, measured: float, tenant: str = "default") -> dict:
    return {"model_version": version, "mcv_fl": 88.0, "mchc_g_dl": 33.0, "rdw_cv_pct": 13.5,
            "quality_score": 0.4, "quality_status": "ok", "hematocrit_pct": 41.0,
            "lower_pct": 36.0, "upper_pct": 46.0, "measured_hematocrit_pct": measured,
            "tenant": tenant}


def _keyed(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={
        "api_keys": [entry.format(key_digest(key)) for key, entry in KEYS.items()], **update})


@pytest.fixture
def tenants(settings: Settings):
    with TestClient(create_app(_keyed(settings))) as client:
        yield client


@pytest.fixture
def shipped_tenants(settings: Settings):
    """The shipped bundle: its card has the interval and quality calibration and a reference."""
    with TestClient(create_app(_keyed(settings, model_dir=SHIPPED))) as client:
        yield client


def _post_samples(client: TestClient, headers: dict, n: int, measured: float,
                  seed: int) -> None:
    """`n` samples with a measured hematocrit, through the bulk route (one request)."""
    samples = [prediction_body(f"P-{seed}-{i}", seed=seed * 1000 + i)
               | {"measured_hematocrit_pct": measured} for i in range(n)]
    r = client.post("/v1/predictions/bulk", json={"samples": samples}, headers=headers)
    assert r.status_code == 200, r.text
    assert all("id" in item for item in r.json()["items"]), r.text


def _view(client: TestClient, headers: dict, **params: str) -> dict:
    r = client.get("/v1/monitoring", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_monitoring_needs_a_key_and_reports_no_reference_for_an_uncalibrated_card(settings):
    keyed = settings.model_copy(update={"api_keys": [key_digest("s3cret")]})
    with TestClient(create_app(keyed)) as client:
        assert client.get("/v1/monitoring").status_code == 401
        body = client.get("/v1/monitoring", headers={"X-API-Key": "s3cret"}).json()
        assert "synthetic" in body["notice"]
        (model,) = body["models"]
        assert model["model_version"] == "test-0" and model["reference"] is False
        assert model["drift"]["status"] == "no reference" and body["alarm"] is False


def test_monitoring_shows_what_the_served_models_monitor_was_fed(settings):
    served = settings.model_copy(update={"model_dir": SHIPPED})
    with TestClient(create_app(served)) as client:
        monitor = client.app.state.hct.monitor
        version = client.app.state.hct.model.bundle.version
        monitor.observe_many([_row(version, 40.0), _row(version, 50.0)] * 10)
        (model,) = client.get("/v1/monitoring").json()["models"]
        assert model["reference"] is True and model["samples_seen"] == 20
        assert model["drift"]["threshold"] > 1.0 and model["drift"]["window_samples"] == 20
        assert model["agreement"]["bias_pct"] == -4.0 and model["agreement"]["mae_pct"] == 5.0
        assert model["agreement"]["interval_coverage"] == 0.5
        assert model["agreement"]["hidden"] is None
        assert model["quality"]["share"]["ok"] == 1.0
        metrics = client.get("/metrics").text
        assert f'hct_interval_coverage{{model_version="{version}"}} 0.5' in metrics
        assert f'hct_agreement_bias{{model_version="{version}"}} -4.0' in metrics


def test_stored_predictions_feed_the_monitor_from_the_api_and_from_batch_jobs(settings):
    """Every prediction stored by the online path and by a batch job reaches the monitor."""
    import time

    from tests.service.api.test_batches_api import _wait, export_csv

    served = settings.model_copy(update={"model_dir": SHIPPED})
    with TestClient(create_app(served)) as client:
        body = prediction_body("P-mon", n=300) | {"measured_hematocrit_pct": 41.0}
        assert client.post("/v1/predictions", json=body).status_code == 201
        (model,) = client.get("/v1/monitoring").json()["models"]
        assert model["samples_seen"] == 1 and model["agreement"]["window_samples"] == 1
        job = client.post("/v1/batches", files={"file": ("x.csv", export_csv(5), "text/csv")})
        assert _wait(client, job.json()["id"])["status"] == "done"
        deadline = time.monotonic() + 10
        while client.get("/v1/monitoring").json()["models"][0]["samples_seen"] < 6:
            assert time.monotonic() < deadline, "batch predictions never reached the monitor"
            time.sleep(0.05)


def test_another_tenants_samples_do_not_change_a_tenants_view(tenants):
    _post_samples(tenants, B, 20, measured=40.0, seed=1)
    before = _view(tenants, B)
    (own,) = before["models"]
    assert own["samples_seen"] == 20 and own["agreement"]["bias_pct"] is not None
    _post_samples(tenants, A, 40, measured=70.0, seed=2)  # lab-a: a very different bias
    assert _view(tenants, B) == before
    assert before["tenant"] == "lab-b" and "tenants" not in before
    (theirs,) = _view(tenants, A)["models"]
    assert theirs["samples_seen"] == 40
    assert theirs["agreement"]["bias_pct"] < own["agreement"]["bias_pct"] - 20
    # a tenant's key may name its own tenant, never another one
    assert _view(tenants, B, tenant="lab-b") == before
    foreign = tenants.get("/v1/monitoring", params={"tenant": "lab-a"}, headers=B)
    assert foreign.status_code == 403 and foreign.json()["error"]["field"] == "query.tenant"
    assert "lab-a" not in foreign.text and "70" not in foreign.text


def test_an_admin_sees_all_traffic_and_each_tenants_figures(tenants):
    _post_samples(tenants, A, 30, measured=70.0, seed=3)
    _post_samples(tenants, B, 20, measured=40.0, seed=4)
    view = _view(tenants, ADMIN)
    assert view["tenant"] is None and view["models"][0]["samples_seen"] == 50
    assert sorted(view["tenants"]) == ["lab-a", "lab-b"]
    for tenant, headers in (("lab-a", A), ("lab-b", B)):
        own = _view(tenants, headers)
        assert view["tenants"][tenant]["models"] == own["models"]
        assert _view(tenants, ADMIN, tenant=tenant)["models"] == own["models"]
    (none,) = _view(tenants, ADMIN, tenant="lab-z")["models"]  # a tenant with no traffic
    assert none["samples_seen"] == 0 and none["agreement"]["bias_pct"] is None
    assert tenants.get("/v1/monitoring", params={"tenant": "Lab A"},
                       headers=ADMIN).status_code == 422


def test_a_cross_tenant_monitoring_query_is_audited(tenants):
    assert tenants.get("/v1/monitoring", params={"tenant": "lab-a"}, headers=B).status_code \
        == 403
    with tenants.app.state.hct.engine.connect() as conn:
        denied = [r._asdict() for r in conn.execute(select(audit_log)).all()
                  if r.action == "denied"]
    assert [(r["principal"], r["tenant"], r["resource_id"]) for r in denied] == [
        ("key:" + key_digest("key-b")[:12], "lab-b", "GET /v1/monitoring")]
    assert json.loads(denied[0]["detail"])["client"] == "testclient"


def test_figures_below_the_minimum_window_are_null_with_the_reason(shipped_tenants):
    tenants = shipped_tenants
    version = tenants.app.state.hct.model.bundle.version
    _post_samples(tenants, A, 19, measured=40.0, seed=5)
    (model,) = _view(tenants, A)["models"]
    agreement, quality = model["agreement"], model["quality"]
    assert agreement["window_samples"] == 19
    assert agreement["bias_pct"] is None and agreement["mae_pct"] is None
    assert agreement["interval_coverage"] is None and agreement["bias_statistic"] is None
    assert agreement["hidden"]["min_samples"] == 20
    assert agreement["hidden"]["samples"]["bias_pct"] == 19
    assert "from 20 samples" in agreement["hidden"]["reason"]
    assert "bias_statistic, interval_coverage: 19 so far" in agreement["hidden"]["reason"]
    assert set(quality["share"].values()) == {None} and quality["hidden"]["min_samples"] == 20
    assert quality["hidden"]["samples"] == {"share": 19}
    assert set(model["drift"]["statistic"].values()) == {None}  # the card's own minimum: 50
    # the all-traffic gauges on the open /metrics hide them too
    text = tenants.get("/metrics").text
    assert math.isnan(metric_value(text, f'hct_agreement_bias{{model_version="{version}"}}'))
    assert math.isnan(metric_value(
        text, f'hct_quality_share{{model_version="{version}",status="ok"}}'))
    _post_samples(tenants, A, 1, measured=40.0, seed=6)
    (model,) = _view(tenants, A)["models"]
    assert model["agreement"]["hidden"] is None and model["quality"]["hidden"] is None
    assert isinstance(model["agreement"]["bias_pct"], float)
    assert sum(model["quality"]["share"].values()) == pytest.approx(1.0)
    text = tenants.get("/metrics").text
    assert metric_value(text, f'hct_agreement_bias{{model_version="{version}"}}') == \
        pytest.approx(model["agreement"]["bias_pct"])


def test_the_minimum_window_is_a_setting(settings):
    lower = settings.model_copy(update={"monitoring_min_samples": 2})
    with TestClient(create_app(lower)) as client:
        monitor = client.app.state.hct.monitor
        monitor.observe_many([_row("test-0", 40.0)])
        body = client.get("/v1/monitoring").json()
        assert body["min_samples"] == 2 and body["models"][0]["agreement"]["bias_pct"] is None
        monitor.observe_many([_row("test-0", 50.0)])
        assert client.get("/v1/monitoring").json()["models"][0]["agreement"]["bias_pct"] == -4.0
    assert Settings(_env_file=None).monitoring_min_samples == 20


def test_a_tenants_batch_job_feeds_only_its_own_view(tenants):
    import time

    from tests.service.api.test_batches_api import export_csv

    job = tenants.post("/v1/batches", files={"file": ("x.csv", export_csv(3), "text/csv")},
                       headers=A)
    assert job.status_code == 202, job.text
    deadline = time.monotonic() + 60
    while _view(tenants, A)["models"][0]["samples_seen"] < 3:
        assert time.monotonic() < deadline, "the batch never reached lab-a's view"
        time.sleep(0.1)
    assert _view(tenants, B)["models"][0]["samples_seen"] == 0
    assert _view(tenants, ADMIN)["tenants"]["lab-a"]["models"][0]["samples_seen"] == 3
