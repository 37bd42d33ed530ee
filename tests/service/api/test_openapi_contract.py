"""The OpenAPI document lists every status and media type the service really sends: each
operation of the app is called in the ways that produce each of its answers (success, replay,
missing/invalid/insufficient key, unknown id, reused idempotency key, too large, invalid,
database down), and every answer must be documented for that operation.
"""

import io
import time
import zipfile
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.security import key_digest
from service.db.engine import make_engine
from tests.service.api.test_api_inputs import _fcs
from tests.service.api.test_batches_api import export_csv
from tests.service.conftest import prediction_body

KEY, READER = {"X-API-Key": "full"}, {"X-API-Key": "reader"}
WRITER = {"X-API-Key": "writer"}  # predict only: reads are insufficient_scope
WRONG = {"X-API-Key": "wrong"}
ADMIN = {"X-API-Key": "admin"}
MAX_BODY, MAX_UPLOAD = 200_000, 64 * 1024
_MULTIPART = "multipart/form-data; boundary=xyz"
_UNREADABLE_MULTIPART = [  # (body, content-type): each a 400 from the multipart parser
    (b"abc", "multipart/form-data"),  # no boundary
    (b"garbage", _MULTIPART),  # no part at all
    (b"--xyz\r\n\r\nabc\r\n--xyz--\r\n", _MULTIPART),  # a part without a name
    (b"".join(b'--xyz\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i
              for i in range(1001)) + b"--xyz--\r\n", _MULTIPART),  # over 1,000 fields
]


@dataclass
class Call:
    method: str
    template: str  # the operation's path in the OpenAPI document
    path: str
    status: int
    kw: dict = field(default_factory=dict)


@pytest.fixture
def app_client(settings):
    keyed = settings.model_copy(update={
        "api_keys": [f"lab:predict+read:{key_digest('full')}", f"lab:read:{key_digest('reader')}",
                     f"lab:predict:{key_digest('writer')}", f"ops:admin:{key_digest('admin')}"],
        "max_body_bytes": MAX_BODY, "max_upload_bytes": MAX_UPLOAD})
    with TestClient(create_app(keyed)) as client:
        yield client


def _calls(client: TestClient) -> list[Call]:
    """Every operation, in each way that gives a different status; ids made on the way."""
    body = prediction_body("P-API", seed=1)
    pid = client.post("/v1/predictions", json=body, headers=KEY).json()["id"]
    job = client.post("/v1/batches", headers=KEY,
                      files={"file": ("x.csv", export_csv(1), "text/csv")}).json()["id"]
    failed = _failed_job(client)
    fcs = {"files": {"file": ("s.fcs", _fcs())}, "data": {"patient_id": "P-FCS"}}
    csv_file = {"files": {"file": ("y.csv", export_csv(2), "text/csv")}}
    calls: list[Call] = []
    for template, path in (("/v1/predictions", "/v1/predictions"),
                           ("/v1/predictions/fcs", "/v1/predictions/fcs"),
                           ("/v1/batches", "/v1/batches")):
        created = 202 if template == "/v1/batches" else 201
        kw = {"json": body} if template == "/v1/predictions" else (
            fcs if template == "/v1/predictions/fcs" else csv_file)
        other = ({"json": prediction_body("P-API", seed=2)} if template == "/v1/predictions"
                 else {"files": {"file": ("s.fcs", _fcs())}, "data": {"patient_id": "P-FCS2"}}
                 if template.endswith("fcs")
                 else {"files": {"file": ("z.csv", export_csv(3), "text/csv")}})
        invalid = ({"json": {"patient_id": "P"}} if template == "/v1/predictions"
                   else {"files": {"file": ("e.bin", b"")}})
        limit = MAX_UPLOAD if template == "/v1/batches" else MAX_BODY
        idem = {**KEY, "Idempotency-Key": f"k-{template}"}
        calls += [
            Call("post", template, path, created, {**kw, "headers": KEY}),
            Call("post", template, path, created, {**kw, "headers": idem}),
            Call("post", template, path, 200, {**kw, "headers": idem}),  # replay
            Call("post", template, path, 409, {**other, "headers": idem}),
            Call("post", template, path, 401, kw),
            Call("post", template, path, 403, {**kw, "headers": WRONG}),
            Call("post", template, path, 403, {**kw, "headers": READER}),  # scope
            Call("post", template, path, 422, {**invalid, "headers": KEY}),
            Call("post", template, path, 413, {"content": b"x" * (limit + 1),
                                               "headers": {**KEY, "content-type": "text/csv"}}),
        ]
        if template != "/v1/predictions":  # a multipart body that cannot be parsed
            calls += [Call("post", template, path, 400, {"content": body, "headers": {
                **KEY, "content-type": media}}) for body, media in _UNREADABLE_MULTIPART]
    reads = [("/v1/predictions/{prediction_id}", f"/v1/predictions/{pid}", "/v1/predictions/x"),
             ("/v1/predictions/{prediction_id}/fhir", f"/v1/predictions/{pid}/fhir",
              "/v1/predictions/x/fhir"),
             ("/v1/predictions/{prediction_id}/hl7", f"/v1/predictions/{pid}/hl7",
              "/v1/predictions/x/hl7"),
             ("/v1/cells/reference", "/v1/cells/reference", None),
             ("/v1/batches/{batch_id}", f"/v1/batches/{job}", "/v1/batches/x"),
             ("/v1/batches/{batch_id}/results", f"/v1/batches/{job}/results",
              "/v1/batches/x/results"),
             ("/v1/predictions", "/v1/predictions", None),
             ("/v1/model", "/v1/model", None),
             ("/v1/monitoring", "/v1/monitoring", None)]
    for template, path, absent in reads:
        calls += [Call("get", template, path, 200, {"headers": READER}),
                  Call("get", template, path, 401),
                  Call("get", template, path, 403, {"headers": WRONG}),
                  Call("get", template, path, 403, {"headers": WRITER})]  # scope
        if absent:
            calls.append(Call("get", template, absent, 404, {"headers": READER}))
    calls += [
        Call("get", "/v1/batches/{batch_id}/results", f"/v1/batches/{job}/results?format=json",
             200, {"headers": READER}),
        Call("get", "/v1/batches/{batch_id}/results", f"/v1/batches/{job}/results?format=x",
             422, {"headers": READER}),
        Call("get", "/v1/batches/{batch_id}/results", f"/v1/batches/{job}/results", 406,
             {"headers": {**READER, "Accept": "application/xml"}}),
        Call("get", "/v1/batches/{batch_id}/results", f"/v1/batches/{failed}/results", 409,
             {"headers": READER}),
        *[Call("post", "/v1/cells/fcs", "/v1/cells/fcs", status, kw) for status, kw in (
            (200, {"files": {"file": ("s.fcs", _fcs())}, "data": {"patient_id": "P-C"},
                   "headers": READER}),
            (401, {"files": {"file": ("s.fcs", _fcs())}}),
            (403, {"files": {"file": ("s.fcs", _fcs())}, "headers": WRONG}),
            (403, {"files": {"file": ("s.fcs", _fcs())}, "headers": WRITER}),  # scope
            (422, {"files": {"file": ("e.fcs", b"")}, "headers": READER}),
            (413, {"content": b"x" * (MAX_BODY + 1),
                   "headers": {**READER, "content-type": "text/csv"}}),
            *[(400, {"content": body, "headers": {**READER, "content-type": media}})
              for body, media in _UNREADABLE_MULTIPART])],
        *[Call("post", "/v1/predictions/bulk", "/v1/predictions/bulk", status, kw)
          for status, kw in (
              (200, {"json": {"samples": [prediction_body("P-B", seed=3)]}, "headers": KEY}),
              (401, {"json": {"samples": [prediction_body("P-B", seed=3)]}}),
              (403, {"json": {"samples": [prediction_body("P-B", seed=3)]},
                     "headers": WRONG}),
              (403, {"json": {"samples": [prediction_body("P-B", seed=3)]},
                     "headers": READER}),  # scope
              (415, {"content": b"x", "headers": {**KEY, "content-type": "text/plain"}}),
              (422, {"json": {"samples": []}, "headers": KEY}),
              (400, {"content": b"not an arrow stream",
                     "headers": {**KEY,
                                 "content-type": "application/vnd.apache.arrow.stream"}}))],
        Call("get", "/v1/predictions", "/v1/predictions?limit=0", 422, {"headers": READER}),
        Call("get", "/v1/monitoring", "/v1/monitoring?tenant=Not%20A%20Tenant", 422,
             {"headers": READER}),
        Call("get", "/v1/monitoring", "/v1/monitoring?tenant=another-lab", 403,
             {"headers": READER}),  # a tenant's key naming another tenant
        *[Call("get", "/v1/hl7/outbox", "/v1/hl7/outbox", status, kw) for status, kw in (
            (200, {"headers": ADMIN}), (401, {}), (403, {"headers": WRONG}),
            (403, {"headers": READER}))],  # scope
        *[Call("post", "/v1/hl7/outbox/requeue", "/v1/hl7/outbox/requeue", status, kw)
          for status, kw in (
              (200, {"headers": ADMIN}), (200, {"json": {"ids": [1]}, "headers": ADMIN}),
              (401, {}), (403, {"headers": WRONG}), (403, {"headers": KEY}),  # scope
              (422, {"json": {"ids": "all"}, "headers": ADMIN}))],
        Call("get", "/healthz", "/healthz", 200), Call("get", "/readyz", "/readyz", 200),
        Call("get", "/metrics", "/metrics", 200),
    ]
    return calls


def _failed_job(client: TestClient) -> str:
    """A batch that failed as a whole (a zip without FCS files), once it has failed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "no samples here")
    job = client.post("/v1/batches", headers=KEY, files={
        "file": ("export.zip", buffer.getvalue(), "application/zip")}).json()["id"]
    deadline = time.monotonic() + 60
    while client.get(f"/v1/batches/{job}", headers=READER).json()["status"] != "failed":
        assert time.monotonic() < deadline, "the zip without FCS files did not fail"
        time.sleep(0.1)
    return job


def _outage_calls(client: TestClient) -> list[Call]:
    """The same operations while the database refuses connections."""
    body = prediction_body("P-DOWN", seed=3)
    return [Call("post", "/v1/predictions", "/v1/predictions", 503, {"json": body,
                                                                     "headers": KEY}),
            Call("post", "/v1/predictions/fcs", "/v1/predictions/fcs", 503,
                 {"files": {"file": ("s.fcs", _fcs())}, "data": {"patient_id": "P-DOWN"},
                  "headers": KEY}),
            Call("post", "/v1/batches", "/v1/batches", 503,
                 {"files": {"file": ("x.csv", export_csv(1), "text/csv")}, "headers": KEY}),
            *[Call("get", t, p, 503, {"headers": READER}) for t, p in (
                ("/v1/predictions", "/v1/predictions"),
                ("/v1/predictions/{prediction_id}", "/v1/predictions/x"),
                ("/v1/predictions/{prediction_id}/fhir", "/v1/predictions/x/fhir"),
                ("/v1/predictions/{prediction_id}/hl7", "/v1/predictions/x/hl7"),
                ("/v1/batches/{batch_id}", "/v1/batches/x"),
                ("/v1/batches/{batch_id}/results", "/v1/batches/x/results"))],
            Call("post", "/v1/cells/fcs", "/v1/cells/fcs", 503,
                 {"files": {"file": ("s.fcs", _fcs())}, "data": {"patient_id": "P-C"},
                  "headers": READER}),  # the audit
            Call("get", "/v1/hl7/outbox", "/v1/hl7/outbox", 503, {"headers": ADMIN}),
            Call("post", "/v1/hl7/outbox/requeue", "/v1/hl7/outbox/requeue", 503,
                 {"headers": ADMIN}),
            Call("get", "/readyz", "/readyz", 503)]


def _check(client: TestClient, doc: dict, call: Call) -> tuple[str, str, int, str]:
    r = getattr(client, call.method)(call.path, **call.kw)
    assert r.status_code == call.status, (call, r.text[:300])
    operation = doc["paths"][call.template][call.method]
    documented = operation["responses"].get(str(call.status))
    assert documented is not None, f"{call.method} {call.template} sends {call.status}"
    media = r.headers.get("content-type", "").split(";")[0]
    if r.content:
        assert media in documented.get("content", {}), \
            f"{call.method} {call.template} {call.status} sends {media}"
    if call.status == 503 and call.template.startswith("/v1/"):
        assert "Retry-After" in r.headers and "Retry-After" in documented.get("headers", {})
    return call.method, call.template, call.status, media


def test_every_status_and_media_type_sent_is_in_the_openapi_document(app_client):
    doc = app_client.get("/openapi.json", headers=KEY).json()
    seen = [_check(app_client, doc, c) for c in _calls(app_client)]
    state = app_client.app.state.hct
    down = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    state.engine = state.online.engine = down
    seen += [_check(app_client, doc, c) for c in _outage_calls(app_client)]
    # every operation the app serves (the document is generated from its routes) was called
    operations = {(m, path) for path, ops in doc["paths"].items() for m in ops}
    assert operations == {(m, t) for m, t, _, _ in seen}
    media = {m for *_, m in seen}
    assert {"application/json", "application/fhir+json", "x-application/hl7-v2+er7", "text/csv",
            "text/plain"} <= media


def test_every_multipart_operation_documents_the_400_of_an_unreadable_body(app_client):
    doc = app_client.get("/openapi.json", headers=KEY).json()
    multipart = [(m, path) for path, ops in doc["paths"].items() for m, op in ops.items()
                 if "multipart/form-data" in op.get("requestBody", {}).get("content", {})]
    assert sorted(multipart) == [("post", "/v1/batches"), ("post", "/v1/cells/fcs"),
                                 ("post", "/v1/predictions/fcs")]
    for method, path in multipart:
        documented = doc["paths"][path][method]["responses"].get("400")
        assert documented is not None, f"{method} {path} does not document its 400"
        assert documented["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorResponse")
        for body, media in _UNREADABLE_MULTIPART:
            r = app_client.post(path, content=body, headers={**KEY, "content-type": media})
            assert r.status_code == 400 and r.json()["error"]["field"] == "body", r.text
