"""Tenants and scopes: a key reads only its tenant's predictions and batches (another tenant's
id answers exactly as a missing one), idempotency keys are the tenant's, routes check scopes,
`admin` reads across tenants, and refused credentials are audited.
"""

import csv
import io
import json
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.api.app import create_app
from service.api.security import key_digest
from service.db.tables import audit_log, batch_jobs, idempotency_keys, predictions
from service.settings import Settings
from tests.service.api.test_batches_api import export_csv
from tests.service.conftest import prediction_body

KEYS = {  # key -> entry in HCT_API_KEYS
    "key-a": "lab-a:predict+read:{}",
    "key-a-next": "lab-a:predict+read:{}",  # lab-a's second key during a rotation
    "key-b": "lab-b:predict+read:{}",
    "reader-a": "lab-a:read:{}",
    "writer-a": "lab-a:predict:{}",
    "ops": "ops:admin:{}",
    "legacy": "{}",  # a bare digest: tenant default, every scope
}


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


A, A2, B, READER, WRITER, ADMIN, LEGACY = (_as(k) for k in KEYS)


@pytest.fixture
def tenants(settings: Settings):
    keyed = settings.model_copy(update={
        "api_keys": [entry.format(key_digest(key)) for key, entry in KEYS.items()]})
    with TestClient(create_app(keyed)) as client:
        yield client


def _missing(kind: str, resource_id: str) -> dict:
    """The body a truly absent id gets."""
    field = "path.prediction_id" if kind == "prediction" else "path.batch_id"
    return {"error": {"code": "not_found", "message": f"{kind} {resource_id!r} does not exist",
                      "field": field}}


def _predict(client: TestClient, headers: dict, patient: str, **kw) -> dict:
    r = client.post("/v1/predictions", json=prediction_body(patient, **kw), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def _wait(client: TestClient, job_id: str, headers: dict) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = client.get(f"/v1/batches/{job_id}", headers=headers).json()
        if status["status"] in ("done", "failed"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def _rows(client, table):
    with client.app.state.hct.engine.connect() as conn:
        return [r._asdict() for r in conn.execute(select(table)).all()]


def test_another_tenants_prediction_answers_404_as_if_absent(tenants):
    pid = _predict(tenants, A, "MRN-A1")["id"]
    for path in (f"/v1/predictions/{pid}", f"/v1/predictions/{pid}/fhir",
                 f"/v1/predictions/{pid}/hl7"):
        foreign = tenants.get(path, headers=B)
        assert foreign.status_code == 404
        assert foreign.json() == _missing("prediction", pid)
        assert foreign.headers["content-type"] == "application/json"
        assert tenants.get(path, headers=A).status_code == 200
        assert tenants.get(path, headers=A2).status_code == 200  # same tenant, other key
        # a bare digest holds every scope, admin included, as before tenants existed
        assert tenants.get(path, headers=LEGACY).status_code == 200


def test_hl7_of_another_tenants_prediction_is_404_and_the_tenants_own_is_audited(tenants):
    pid = _predict(tenants, A, "MRN-HL7-A")["id"]
    foreign = tenants.get(f"/v1/predictions/{pid}/hl7", headers=B)
    assert foreign.status_code == 404 and foreign.json() == _missing("prediction", pid)
    assert "MRN-HL7-A" not in foreign.text
    own = tenants.get(f"/v1/predictions/{pid}/hl7", headers=READER)
    assert own.status_code == 200
    assert own.headers["content-type"].startswith("x-application/hl7-v2+er7")
    assert own.text.startswith("MSH|") and "MRN-HL7-A" in own.text
    assert own.headers["cache-control"] == "no-store"
    assert tenants.get(f"/v1/predictions/{pid}/hl7", headers=ADMIN).status_code == 200
    trail = [(r["action"], r["tenant"], r["principal"], r["resource_id"])
             for r in _rows(tenants, audit_log) if r["action"] == "hl7"]
    assert trail == [("hl7", "lab-a", "key:" + key_digest("reader-a")[:12], pid),
                     ("hl7", "ops", "key:" + key_digest("ops")[:12], pid)]


def test_a_prediction_404_names_a_batch_id_only_to_the_batchs_tenant(tenants):
    created = tenants.post("/v1/batches", files={"file": ("x.csv", export_csv(1), "text/csv")},
                           headers=A)
    job = created.json()["id"]
    foreign = tenants.get(f"/v1/predictions/{job}", headers=B)
    assert foreign.status_code == 404 and foreign.json() == _missing("prediction", job)
    own = tenants.get(f"/v1/predictions/{job}", headers=A)
    assert own.status_code == 404 and "is a batch id" in own.json()["error"]["message"]
    assert _wait(tenants, job, A)["status"] == "done"


def test_listing_shows_only_the_tenants_rows_with_and_without_a_patient_filter(tenants):
    a = _predict(tenants, A, "MRN-SHARED", seed=1)["id"]
    b = _predict(tenants, B, "MRN-SHARED", seed=2)["id"]
    _predict(tenants, B, "MRN-B-ONLY", seed=3)
    for params in ({}, {"patient_id": "MRN-SHARED"}, {"limit": 500}):
        page_a = tenants.get("/v1/predictions", params=params, headers=A).json()
        assert [p["id"] for p in page_a["items"]] == [a] and page_a["total"] == 1
    page_b = tenants.get("/v1/predictions", params={"patient_id": "MRN-SHARED"},
                         headers=B).json()
    assert [p["id"] for p in page_b["items"]] == [b] and page_b["total"] == 1
    assert tenants.get("/v1/predictions", params={"patient_id": "MRN-B-ONLY"},
                       headers=A).json()["total"] == 0
    assert tenants.get("/v1/predictions", headers=B).json()["total"] == 2


def test_another_tenants_batch_status_and_results_answer_404(tenants):
    created = tenants.post("/v1/batches", files={"file": ("x.csv", export_csv(3), "text/csv")},
                           headers=A)
    assert created.status_code == 202, created.text
    job = created.json()["id"]
    assert _wait(tenants, job, A)["status"] == "done"
    for path in (f"/v1/batches/{job}", f"/v1/batches/{job}/results",
                 f"/v1/batches/{job}/results?format=json"):
        foreign = tenants.get(path, headers=B)
        assert foreign.status_code == 404 and foreign.json() == _missing("batch", job)
    results = tenants.get(f"/v1/batches/{job}/results", headers=A)
    ids = [r["prediction_id"] for r in csv.DictReader(io.StringIO(results.text))]
    assert len(ids) == 3
    # the job's predictions are the job's tenant's, on every route
    for pid in ids:
        assert tenants.get(f"/v1/predictions/{pid}", headers=A).status_code == 200
        assert tenants.get(f"/v1/predictions/{pid}", headers=B).status_code == 404
    assert tenants.get("/v1/predictions", headers=B).json()["total"] == 0
    stored = {r["id"]: r["tenant"] for r in _rows(tenants, predictions)}
    assert {stored[pid] for pid in ids} == {"lab-a"}
    assert {r["tenant"] for r in _rows(tenants, batch_jobs)} == {"lab-a"}


def test_another_tenants_idempotency_key_creates_a_new_resource(tenants):
    key = {"Idempotency-Key": "same-key"}
    body = prediction_body("MRN-IDEM", seed=4)
    first = tenants.post("/v1/predictions", json=body, headers={**A, **key})
    theirs = tenants.post("/v1/predictions", json=body, headers={**B, **key})
    assert first.status_code == 201 and theirs.status_code == 201, theirs.text
    assert theirs.json()["id"] != first.json()["id"]
    assert "Idempotent-Replayed" not in theirs.headers
    assert tenants.get(f"/v1/predictions/{theirs.json()['id']}", headers=B).status_code == 200
    # a second key of the same tenant (rotation overlap) replays the tenant's resource
    again = tenants.post("/v1/predictions", json=body, headers={**A2, **key})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    # the same holds for batch uploads
    key = {"Idempotency-Key": "same-batch-key"}
    data = export_csv(2)
    up_a = tenants.post("/v1/batches", files={"file": ("x.csv", data, "text/csv")},
                        headers={**A, **key})
    up_b = tenants.post("/v1/batches", files={"file": ("x.csv", data, "text/csv")},
                        headers={**B, **key})
    assert up_a.status_code == 202 and up_b.status_code == 202, up_b.text
    assert up_a.json()["id"] != up_b.json()["id"]
    rows = _rows(tenants, idempotency_keys)
    assert sorted((r["tenant"], r["resource"]) for r in rows) == [
        ("lab-a", "batch"), ("lab-a", "prediction"), ("lab-b", "batch"), ("lab-b", "prediction")]


def test_admin_reads_across_tenants(tenants):
    a = _predict(tenants, A, "MRN-A", seed=5)["id"]
    b = _predict(tenants, B, "MRN-B", seed=6)["id"]
    assert tenants.get(f"/v1/predictions/{a}", headers=ADMIN).status_code == 200
    assert tenants.get(f"/v1/predictions/{b}/fhir", headers=ADMIN).status_code == 200
    assert tenants.get("/v1/predictions", headers=ADMIN).json()["total"] == 2
    assert tenants.get("/v1/predictions", params={"patient_id": "MRN-B"},
                       headers=ADMIN).json()["total"] == 1


@pytest.mark.parametrize(("method", "path", "headers", "scope"), [
    ("post", "/v1/predictions", READER, "predict"),
    ("post", "/v1/predictions/fcs", READER, "predict"),
    ("post", "/v1/batches", READER, "predict"),
    ("get", "/v1/predictions", WRITER, "read"),
    ("get", "/v1/predictions/some-id", WRITER, "read"),
    ("get", "/v1/predictions/some-id/fhir", WRITER, "read"),
    ("get", "/v1/predictions/some-id/hl7", WRITER, "read"),
    ("post", "/v1/cells/fcs", WRITER, "read"),
    ("get", "/v1/cells/reference", WRITER, "read"),
    ("get", "/v1/batches/some-id", WRITER, "read"),
    ("get", "/v1/batches/some-id/results", WRITER, "read"),
    ("get", "/v1/model", WRITER, "read"),
])
def test_a_key_without_the_scope_is_403_naming_it(tenants, method, path, headers, scope):
    r = getattr(tenants, method)(path, headers=headers)
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["code"] == "insufficient_scope" and repr(scope) in error["message"]
    assert f'scope="{scope}"' in r.headers["WWW-Authenticate"]


def test_scoped_keys_do_what_their_scopes_allow(tenants):
    pid = _predict(tenants, WRITER, "MRN-W")["id"]
    assert tenants.get(f"/v1/predictions/{pid}", headers=READER).status_code == 200


def test_audit_rows_carry_the_tenant_and_the_searched_patient(tenants, caplog):
    caplog.set_level("DEBUG")
    pid = _predict(tenants, A, "MRN-0042424242")["id"]
    tenants.get(f"/v1/predictions/{pid}", headers=A2)
    tenants.get("/v1/predictions", params={"patient_id": "MRN-0042424242"}, headers=A)
    tenants.get("/v1/predictions", headers=B)
    trail = [(r["action"], r["tenant"], r["principal"]) for r in _rows(tenants, audit_log)]
    fp = {k: "key:" + key_digest(k)[:12] for k in KEYS}
    assert trail == [("create", "lab-a", fp["key-a"]), ("read", "lab-a", fp["key-a-next"]),
                     ("search", "lab-a", fp["key-a"]), ("list", "lab-b", fp["key-b"])]
    search, listing = (json.loads(r["detail"]) for r in _rows(tenants, audit_log)[2:])
    assert search == {"patient_id": "MRN-0042424242", "limit": 50, "offset": 0,
                      "returned": 1, "total": 1}
    assert listing["patient_id"] is None and listing["total"] == 0
    server_logs = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]
    assert server_logs and not [m for m in server_logs if "MRN-0042424242" in m]


def test_refused_credentials_are_audited_with_fingerprint_and_client(tenants):
    assert tenants.get("/v1/predictions").status_code == 401
    assert tenants.get("/v1/predictions", headers=_as("stolen-guess")).status_code == 403
    assert tenants.post("/v1/predictions", json={}, headers=READER).status_code == 403
    denied = [r for r in _rows(tenants, audit_log) if r["action"] == "denied"]
    assert [(r["principal"], r["tenant"], r["resource_id"]) for r in denied] == [
        ("anonymous", None, "GET /v1/predictions"),
        ("key:" + key_digest("stolen-guess")[:12], None, "GET /v1/predictions"),
        ("key:" + key_digest("reader-a")[:12], "lab-a", "POST /v1/predictions")]
    details = [json.loads(r["detail"]) for r in denied]
    assert [(d["status"], d["code"]) for d in details] == [
        (401, "unauthorized"), (403, "forbidden"), (403, "insufficient_scope")]
    assert {d["client"] for d in details} == {"testclient"}


def test_without_keys_everything_is_the_default_tenant(client):
    pid = _predict(client, {}, "MRN-DEV")["id"]
    assert client.get(f"/v1/predictions/{pid}").status_code == 200
    assert {r["tenant"] for r in _rows(client, predictions)} == {"default"}
    assert {r["tenant"] for r in _rows(client, audit_log)} == {"default"}


@pytest.mark.parametrize(("entry", "problem"), [
    ("lab-a:predict+write:" + "0" * 64, "scopes"),
    ("Lab A:read:" + "0" * 64, "tenant"),
    ("lab-a:read", "TENANT:SCOPES:SHA256HEX"),
    ("lab-a:read:s3cret", "sha256 hex digests"),
])
def test_malformed_key_entries_are_refused_at_start_up(entry, problem):
    with pytest.raises(ValueError, match=problem):
        Settings(api_keys=entry, _env_file=None)


def test_key_entries_parse_tenant_and_scopes():
    digest = key_digest("k")
    settings = Settings(api_keys=f"lab-a:predict+read:{digest},\n{key_digest('old')}",
                        _env_file=None)
    first, bare = settings.key_entries
    assert (first.tenant, sorted(first.scopes), first.digest) == ("lab-a", ["predict", "read"],
                                                                  digest)
    assert (bare.tenant, sorted(bare.scopes)) == ("default", ["admin", "predict", "read"])
