"""Ids and paging at the HTTP edge: control characters (NUL included) are refused with 422 on
every route before anything reaches the database or the log, and `offset`/`limit` are bounded,
so an integer past 64 bits is a 422 on SQLite and PostgreSQL alike (it was a 500).
"""

from __future__ import annotations

import logging

import pytest

from tests.reliability.corpus import good_fcs
from tests.service.conftest import prediction_body

MRN = "MRN-0042424242"

GETS = [
    ("/v1/predictions/abc%00def", "path"),
    ("/v1/predictions/abc%1Bdef/fhir", "path"),
    ("/v1/batches/%00", "path"),
    ("/v1/batches/job%7F/results", "path"),
    (f"/v1/predictions?patient_id={MRN}%00", "query.patient_id"),
    ("/v1/predictions?patient_id=P%0A1", "query.patient_id"),
    ("/v1/batches/x/results?format=csv%00", "query.format"),
]


@pytest.mark.parametrize(("url", "field"), GETS)
def test_control_characters_in_path_and_query_are_422_naming_the_place(client, url, field):
    r = client.get(url)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "control_character" and error["field"] == field
    assert MRN not in r.text  # the answer does not echo the id either


@pytest.mark.parametrize("bad", ["P\x00-1", "P-\x7f", "P\x85", "\x1b[31mP"])
def test_control_characters_in_json_ids_are_422(client, bad):
    for field in ("patient_id", "sample_id"):
        r = client.post("/v1/predictions", json={**prediction_body("P-1"), field: bad})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == f"body.{field}"


def test_control_characters_in_fcs_form_ids_are_422(client):
    for field in ("patient_id", "sample_id"):
        r = client.post("/v1/predictions/fcs", files={"file": ("ok.fcs", good_fcs())},
                        data={field: "P\x7f1"})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == f"body.{field}"


def test_control_characters_in_idempotency_key_are_422(client):
    r = client.post("/v1/predictions", json=prediction_body("P-1"),
                    headers={"Idempotency-Key": "key\x7f1"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "header.Idempotency-Key"


def test_printable_unicode_ids_still_work(client):
    r = client.post("/v1/predictions", json=prediction_body("Pätient-Ø 1"))
    assert r.status_code == 201, r.text
    listed = client.get("/v1/predictions", params={"patient_id": "Pätient-Ø 1"}).json()
    assert listed["total"] == 1


@pytest.mark.parametrize("offset", ["9223372036854775808", "10000001", "-1", "1e3"])
def test_offset_out_of_bounds_is_422_on_every_database(client, offset):
    r = client.get(f"/v1/predictions?offset={offset}")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "query.offset"


def test_largest_offset_allowed_is_an_empty_page(client):
    r = client.get("/v1/predictions?offset=10000000&limit=500")
    assert r.status_code == 200 and r.json()["items"] == []


@pytest.mark.parametrize("limit", ["0", "501", "9223372036854775808"])
def test_limit_out_of_bounds_is_422(client, limit):
    r = client.get(f"/v1/predictions?limit={limit}")
    assert r.status_code == 422 and r.json()["error"]["field"] == "query.limit"


def test_nul_in_patient_id_search_never_reaches_the_database_or_the_log(client, caplog):
    caplog.set_level(logging.DEBUG)
    r = client.get(f"/v1/predictions?patient_id={MRN}%00")
    assert r.status_code == 422
    for path in (f"/v1/predictions/{MRN}%00", f"/v1/predictions/{MRN}%00/fhir",
                 f"/v1/batches/{MRN}%00", f"/v1/batches/{MRN}%00/results"):
        assert client.get(path).status_code == 422
    server_side = [r.getMessage() for r in caplog.records  # httpx logs the client's own URL
                   if not r.name.startswith(("httpx", "httpcore"))]
    assert server_side and not any(MRN in line for line in server_side)
