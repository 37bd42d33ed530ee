"""A 404 on an id lookup leaves an audit row (key fingerprint, client, whose id it was), so a
tenant probing another tenant's prediction or batch ids leaves a trail; the answer stays
byte-identical to the one an absent id gets, and takes about as long.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.api.security import key_digest
from service.db.tables import audit_log
from tests.service.api.test_batches_api import export_csv
from tests.service.api.test_tenants_api import ADMIN, A, B, _predict, _wait, tenants  # noqa: F401

FP_B = "key:" + key_digest("key-b")[:12]
SAME_ANSWER_HEADERS = ("content-type", "content-length", "cache-control", "www-authenticate")


def _not_found_rows(client: TestClient) -> list[dict]:
    with client.app.state.hct.engine.connect() as conn:
        rows = conn.execute(select(audit_log).where(audit_log.c.action == "not_found")
                            .order_by(audit_log.c.id)).all()
    return [r._asdict() | {"detail": json.loads(r.detail)} for r in rows]


def _owned_ids(client: TestClient) -> tuple[str, str]:
    """A prediction and a finished batch of lab-a."""
    pid = _predict(client, A, "MRN-PROBED")["id"]
    job = client.post("/v1/batches", files={"file": ("x.csv", export_csv(1), "text/csv")},
                      headers=A).json()["id"]
    assert _wait(client, job, A)["status"] == "done"
    return pid, job


def test_probing_another_tenants_ids_is_audited_and_answers_as_an_absent_id(tenants):  # noqa: F811
    pid, job = _owned_ids(tenants)
    paths = {pid: ["/v1/predictions/{}", "/v1/predictions/{}/fhir", "/v1/predictions/{}/hl7"],
             job: ["/v1/batches/{}", "/v1/batches/{}/results", "/v1/predictions/{}"]}
    for owned, templates in paths.items():
        absent = str(uuid.uuid4())  # an id of the same shape that nobody has
        for template in templates:
            probe = tenants.get(template.format(owned), headers=B)
            plain = tenants.get(template.format(absent), headers=B)
            assert probe.status_code == plain.status_code == 404
            assert probe.content == plain.content.replace(absent.encode(), owned.encode())
            for header in SAME_ANSWER_HEADERS:
                assert probe.headers.get(header) == plain.headers.get(header), header
    rows = _not_found_rows(tenants)
    assert len(rows) == 12 and {(r["principal"], r["tenant"]) for r in rows} == {(FP_B, "lab-b")}
    probes = [r for r in rows if r["resource_id"] in (pid, job)]
    assert [(r["resource"], r["resource_id"], r["detail"]["request"]) for r in probes] == [
        ("prediction", pid, f"GET /v1/predictions/{pid}"),
        ("prediction", pid, f"GET /v1/predictions/{pid}/fhir"),
        ("prediction", pid, f"GET /v1/predictions/{pid}/hl7"),
        ("batch", job, f"GET /v1/batches/{job}"),
        ("batch", job, f"GET /v1/batches/{job}/results"),
        ("prediction", job, f"GET /v1/predictions/{job}")]
    assert {(r["detail"]["other_tenant"], r["detail"]["owner_tenant"], r["detail"]["client"])
            for r in probes} == {(True, "lab-a", "testclient")}
    assert [r["detail"]["owner_resource"] for r in probes] == ["prediction"] * 3 + ["batch"] * 3
    misses = [r for r in rows if r not in probes]
    assert {(r["detail"]["other_tenant"], r["detail"]["owner_tenant"]) for r in misses} == {
        (False, None)}
    assert not [r for r in rows if "key-b" in json.dumps(r, default=str)]  # never the key


def test_the_owner_and_an_admin_reading_an_id_leave_no_not_found_row(tenants):  # noqa: F811
    pid, job = _owned_ids(tenants)
    for headers in (A, ADMIN):
        assert tenants.get(f"/v1/predictions/{pid}", headers=headers).status_code == 200
        assert tenants.get(f"/v1/batches/{job}", headers=headers).status_code == 200
    assert _not_found_rows(tenants) == []
    assert tenants.get("/v1/predictions/nobodys-id", headers=ADMIN).status_code == 404
    (row,) = _not_found_rows(tenants)
    assert row["tenant"] == "ops" and row["detail"]["owner_tenant"] is None


def test_a_probe_takes_about_as_long_as_a_miss(tenants):  # noqa: F811
    pid, _ = _owned_ids(tenants)
    absent = str(uuid.uuid4())

    def seconds(path: str) -> float:
        start = time.perf_counter()
        assert tenants.get(path, headers=B).status_code == 404
        return time.perf_counter() - start

    probe, miss = [], []
    for _ in range(25):  # interleaved, so load on the machine hits both alike
        probe.append(seconds(f"/v1/predictions/{pid}"))
        miss.append(seconds(f"/v1/predictions/{absent}"))
    ratio = statistics.median(probe) / statistics.median(miss)
    assert 0.5 < ratio < 2.0, (statistics.median(probe), statistics.median(miss))
    assert len(_not_found_rows(tenants)) == 50
