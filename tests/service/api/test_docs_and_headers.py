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


def _basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"anyone:{password}".encode()).decode()}


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/model"), ("GET", "/v1/predictions"), ("POST", "/v1/predictions/fcs"),
    ("POST", "/v1/batches")])
def test_v1_refuses_http_basic_and_says_to_send_the_key_header(keyed, method, path):
    # a browser resends cached Basic credentials cross-site: /v1 must not take them
    r = keyed.request(method, path, headers=_basic("key"),
                      files={"file": ("x.csv", b"patient_id\n", "text/csv")}
                      if method == "POST" else None)
    assert r.status_code == 401
    error = r.json()["error"]
    assert error["code"] == "unauthorized" and error["field"] == "header.authorization"
    assert "Basic" in error["message"] and "X-API-Key" in error["message"]
    assert "Basic" not in r.headers["WWW-Authenticate"]  # no browser login prompt on /v1


def test_v1_takes_the_key_header_beside_cached_basic_credentials(keyed):
    assert keyed.get("/v1/model", headers={**_basic("wrong"), "X-API-Key": "key"}).status_code \
        == 200
    assert keyed.get("/v1/model", headers={"X-API-Key": "key"}).status_code == 200
    assert keyed.get("/v1/model", headers={"Authorization": "Bearer key"}).status_code == 200


def test_the_schema_declares_the_key_headers_for_swagger_ui(client):
    schema = client.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"]["name"] == "X-API-Key" and schemes["apiKey"]["in"] == "header"
    operation = schema["paths"]["/v1/predictions"]["post"]
    assert operation["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]


def _policy(header: str) -> dict[str, list[str]]:
    directives = (d.strip().split() for d in header.split(";") if d.strip())
    return {d[0]: d[1:] for d in directives}


@pytest.mark.parametrize("path", ["/", "/web/app.js", "/v1/model", "/healthz", "/metrics",
                                  "/v1/predictions/absent", "/no-such-page"])
def test_every_response_carries_the_strict_browser_policy(client, path):
    r = client.get(path)
    csp = _policy(r.headers["content-security-policy"])
    assert csp["default-src"] == ["'self'"] and csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"] and csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_allow_only_their_own_inline_scripts_by_hash(client, path):
    import hashlib
    import re

    r = client.get(path)
    csp = _policy(r.headers["content-security-policy"])
    inline = re.findall(r"<script>(.*?)</script>", r.text, re.DOTALL)
    hashes = ["'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
              for s in inline]
    assert csp["script-src"] == ["'self'", *hashes]
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"]
    assert csp["default-src"] == ["'self'"]
    assert len(r.headers.get_list("content-security-policy")) == 1
    if path == "/docs":
        assert len(hashes) == 1  # Swagger UI's start-up script
