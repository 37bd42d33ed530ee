"""`GET /v1/monitoring`: behind the API key, the served model's monitor as JSON (and as
Prometheus gauges on /metrics); a bundle without a monitoring reference says so."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.security import key_digest

SHIPPED = Path(__file__).resolve().parents[3] / "models" / "default"


def _row(version: str, measured: float) -> dict:
    return {"model_version": version, "mcv_fl": 88.0, "mchc_g_dl": 33.0, "rdw_cv_pct": 13.5,
            "quality_score": 0.4, "quality_status": "ok", "hematocrit_pct": 41.0,
            "lower_pct": 36.0, "upper_pct": 46.0, "measured_hematocrit_pct": measured}


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
        monitor.observe_many([_row(version, 40.0), _row(version, 50.0)])
        (model,) = client.get("/v1/monitoring").json()["models"]
        assert model["reference"] is True and model["samples_seen"] == 2
        assert model["drift"]["threshold"] > 1.0 and model["drift"]["window_samples"] == 2
        assert model["agreement"]["bias_pct"] == -4.0 and model["agreement"]["mae_pct"] == 5.0
        assert model["agreement"]["interval_coverage"] == 0.5
        assert model["quality"]["share"]["ok"] == 1.0
        metrics = client.get("/metrics").text
        assert f'hct_interval_coverage{{model_version="{version}"}} 0.5' in metrics
        assert f'hct_agreement_bias{{model_version="{version}"}} -4.0' in metrics


def test_stored_predictions_feed_the_monitor_from_the_api_and_from_batch_jobs(settings):
    """Every prediction stored by the online path and by a batch job reaches the monitor."""
    import time

    from tests.service.api.test_batches_api import _wait, export_csv
    from tests.service.conftest import prediction_body

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
