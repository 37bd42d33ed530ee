"""Health, readiness, metrics, the model card, FHIR export, API keys and the audit trail."""

import json
import shutil

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.security import key_digest
from service.db.audit import audit_entries
from service.runtime.bundle import BundleError
from tests.service.conftest import cells_for, metric_value


def _body(sex: str | None = None) -> dict:
    cells = cells_for(42.0, 300, 1)
    body = {"patient_id": "P-7", "sample_id": "S-7", "volume_fl": cells[:, 0].tolist(),
            "hemoglobin_pg": cells[:, 1].tolist()}
    return body if sex is None else {**body, "sex": sex}


def test_health_readiness_and_model_card(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model"]["provider"] == "CPUExecutionProvider"
    assert ready.json()["model"]["io_binding"] is False  # auto: on for CUDA only
    model = ready.json()["model"]
    assert model["precision"] in ("fp32", "int8")
    assert (model["graph_sha256"] == model["sha256"]) == (model["precision"] == "fp32")
    # an int8 graph runs only after agreeing with fp32 on this host
    assert model["precision"] == "fp32" or model["int8_host_check"]["passed"]
    assert ready.json()["database"]["reachable"] is True
    card = client.get("/v1/model").json()
    assert "synthetic" in card["notice"] and "not validated" in card["notice"]
    assert "synthetic" in card["card"]["intended_use"]
    assert card["card"]["onnx_sha256"] == card["onnx_sha256_verified"]


def test_readiness_is_503_when_the_database_is_unreachable(client):
    from service.db.engine import make_engine

    client.app.state.hct.engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["database"]["reachable"] is False
    assert client.get("/healthz").status_code == 200  # alive, just not ready


def test_readiness_reports_the_start_up_inference(client):
    check = client.get("/readyz").json()["model"]["check"]
    assert check["ok"] is True and check["error"] is None
    assert 0.0 < check["value"] < 100.0  # a real hematocrit from the real session


def test_readiness_is_503_when_the_start_up_inference_fails(settings, monkeypatch):
    """A session that loads but cannot answer must not be reported as ready."""
    from service.runtime.onnx_model import OnnxModel

    def broken(self, cells, lengths):
        raise RuntimeError("onnxruntime: kernel failed")

    monkeypatch.setattr(OnnxModel, "predict", broken)
    with TestClient(create_app(settings)) as client:
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "not ready"
        assert r.json()["model"]["check"]["error"] == "RuntimeError: onnxruntime: kernel failed"
        assert r.json()["database"]["reachable"] is True
        assert client.get("/healthz").status_code == 200


def test_metrics_count_what_one_prediction_did(client):
    """Deltas around one request (the registry is process-wide, so absolute values are not
    this test's)."""
    samples = (
        'hct_http_requests_total{method="POST",route="/v1/predictions",status="201"}',
        "hct_batch_size_count", "hct_prediction_latency_seconds_count",
        'hct_inference_seconds_count{provider="CPUExecutionProvider"}',
        'hct_predictions_stored_total{source="api"}')
    before = client.get("/metrics").text
    assert client.post("/v1/predictions", json=_body()).status_code == 201
    after = client.get("/metrics").text
    for sample in samples:
        assert metric_value(after, sample) == metric_value(before, sample) + 1, sample
    assert metric_value(after, "hct_inference_seconds_sum{provider=\"CPUExecutionProvider\"}") > \
        metric_value(before, "hct_inference_seconds_sum{provider=\"CPUExecutionProvider\"}")
    info = [line for line in after.splitlines() if line.startswith("hct_model_info{")]
    assert any('provider="CPUExecutionProvider"' in line and line.endswith(" 1.0")
               for line in info), info


def test_fhir_observation(client):
    created = client.post("/v1/predictions", json=_body(sex="F")).json()
    r = client.get(f"/v1/predictions/{created['id']}/fhir")
    assert r.headers["content-type"].startswith("application/fhir+json")
    obs = r.json()
    assert obs["resourceType"] == "Observation" and obs["status"] == "preliminary"
    assert obs["code"]["coding"][0] == {"system": "http://loinc.org", "code": "20570-8",
                                        "display": "Hematocrit [Volume Fraction] of Blood by "
                                                   "calculation"}
    assert obs["valueQuantity"]["system"] == "http://unitsofmeasure.org"
    assert obs["valueQuantity"]["code"] == "%"
    assert obs["interpretation"][0]["coding"][0]["code"] == created["flag"]
    assert obs["referenceRange"][0]["low"]["value"] == 36.0
    assert obs["referenceRange"][0]["high"]["value"] == 46.0
    assert created["model"]["version"] in obs["method"]["text"]
    assert "not a measured value" in obs["note"][0]["text"]


def test_api_keys_guard_everything_but_health_and_metrics(settings):
    keyed = settings.model_copy(update={"api_keys": [key_digest("s3cret"), key_digest("other")]})
    with TestClient(create_app(keyed)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/readyz").status_code == 200
        missing = client.post("/v1/predictions", json=_body())
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
        wrong = client.get("/v1/model", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "forbidden"
        ok = client.post("/v1/predictions", json=_body(), headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 201
        pid = ok.json()["id"]
        assert client.get(f"/v1/predictions/{pid}",
                          headers={"Authorization": "Bearer other"}).status_code == 200
        with client.app.state.hct.engine.connect() as conn:
            trail = audit_entries(conn, resource_id=pid)
        assert [(e["action"], e["principal"]) for e in trail] == [
            ("create", "key:" + key_digest("s3cret")[:12]),
            ("read", "key:" + key_digest("other")[:12])]


def test_logs_carry_no_patient_ids(client, caplog):
    caplog.set_level("DEBUG", logger="hct")
    client.post("/v1/predictions", json=_body())
    assert "P-7" not in caplog.text and "S-7" not in caplog.text


def test_service_refuses_a_bundle_whose_checksum_differs(settings, bundle_dir, tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle_dir, tampered)
    card = json.loads((tampered / "card.json").read_text())
    card["onnx_sha256"] = "0" * 64
    (tampered / "card.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match=r"does not match card\.json"), \
            TestClient(create_app(settings.model_copy(update={"model_dir": tampered}))):
        pass


@pytest.mark.parametrize(("workers", "intra", "expected"), [
    (0, 0, None),  # auto: one call per core (at most 4), one thread each when more than one
    (1, 0, (1, "default")),
    (3, 2, (3, 2)),
])
def test_readiness_reports_how_the_model_is_run(settings, workers, intra, expected):
    import os

    from service.online import AUTO_MAX_MODEL_WORKERS

    if expected is None:
        n = max(1, min(os.cpu_count() or 1, AUTO_MAX_MODEL_WORKERS))
        expected = (n, 1 if n > 1 else "default")
    settings = settings.model_copy(update={"model_workers": workers,
                                           "intra_op_threads": intra})
    with TestClient(create_app(settings)) as client:
        model = client.get("/readyz").json()["model"]
        assert (model["model_workers"], model["intra_op_threads"]) == expected
        r = client.post("/v1/predictions", json=_body())
        assert r.status_code == 201, r.text


def test_auto_model_calls_share_the_cores_between_processes():
    import os

    from service.online import AUTO_MAX_MODEL_WORKERS, auto_model_workers

    cores = os.cpu_count() or 1
    assert auto_model_workers("cuda", 1) == 1
    assert auto_model_workers("cpu", 1) == max(1, min(cores, AUTO_MAX_MODEL_WORKERS))
    assert auto_model_workers("cpu", cores) == 1  # one process per core: one call each
    assert auto_model_workers("cpu", 4 * cores) == 1  # never fewer than one


def test_database_outage_is_503_with_retry_after_not_500(client):
    """Reads and writes during an outage: a 503 that says so (nothing stored), not a 500."""
    from service.db.engine import make_engine

    state = client.app.state.hct
    down = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    state.online.engine = down  # the write path
    state.engine = down  # the read path
    for r in (client.post("/v1/predictions", json=_body()), client.get("/v1/predictions")):
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "database_unavailable"
        assert r.headers["Retry-After"] == "5"
