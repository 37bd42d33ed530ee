"""The docs and the schema need a key when keys are on; every API response carries
`Cache-Control: no-store` and `X-Content-Type-Options: nosniff` (they carry patient data)."""

import base64

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.api.app import create_app
from service.api.security import key_digest
from service.db.tables import audit_log
from tests.service.api.test_batches_api import export_csv
from tests.service.conftest import prediction_body

DOCS = ("/docs", "/redoc", "/openapi.json")


@pytest.fixture
def keyed(settings):
    entries = [f"lab-a:read:{key_digest('reader')}", f"lab-a:predict+read:{key_digest('key')}"]
    with TestClient(create_app(settings.model_copy(update={"api_keys": entries}))) as client:
        yield client


@pytest.mark.parametrize("path", DOCS)
def test_docs_and_schema_need_a_valid_key_when_keys_are_on(keyed, path):
    missing = keyed.get(path)
    assert missing.status_code == 401
    assert 'Basic realm="hct"' in missing.headers["WWW-Authenticate"]  # a browser asks
    assert keyed.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert keyed.get(path, headers={"Authorization": "Bearer reader"}).status_code == 200
    basic = base64.b64encode(b"anyone:key").decode()
    assert keyed.get(path, headers={"Authorization": f"Basic {basic}"}).status_code == 200
    with keyed.app.state.hct.engine.connect() as conn:
        denied = conn.execute(select(audit_log.c.principal, audit_log.c.resource_id).where(
            audit_log.c.action == "denied")).all()
    assert [tuple(d) for d in denied] == [("anonymous", f"GET {path}"),
                                          ("key:" + key_digest("wrong")[:12], f"GET {path}")]


def test_docs_and_schema_are_open_without_keys(client):
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200


def test_every_api_response_is_no_store_and_nosniff(client, settings):
    created = client.post("/v1/predictions", json=prediction_body("P-H"))
    pid = created.json()["id"]
    job = client.post("/v1/batches", files={"file": ("x.csv", export_csv(1), "text/csv")})
    responses = [
        created, job,
        client.get(f"/v1/predictions/{pid}"), client.get(f"/v1/predictions/{pid}/fhir"),
        client.get("/v1/predictions", params={"patient_id": "P-H"}),
        client.get(f"/v1/batches/{job.json()['id']}"),
        client.get(f"/v1/batches/{job.json()['id']}/results"),
        client.get("/v1/predictions/absent"),  # 404
        client.post("/v1/predictions", json={"patient_id": "P-H"}),  # 422
        client.get("/v1/model"),
        client.post("/v1/predictions", content=b"x" * (settings.max_body_bytes + 1),
                    headers={"content-type": "application/json"}),  # 413
    ]
    assert [r.status_code for r in responses] == [201, 202, 200, 200, 200, 200, 200, 404, 422,
                                                  200, 413]
    for r in responses:
        assert r.headers["cache-control"] == "no-store", r.request.url
        assert r.headers["x-content-type-options"] == "nosniff", r.request.url
    assert client.get("/healthz").headers["x-content-type-options"] == "nosniff"
