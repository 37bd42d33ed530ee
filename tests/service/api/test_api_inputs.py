"""Every class of malformed input gets a 4xx naming the field; nothing is stored for it."""

import pytest

from ingestion.fcs.writer import encode_fcs
from tests.service.conftest import cells_for


def _body(n: int = 300, **extra) -> dict:
    cells = cells_for(42.0, n, 0)
    return {"patient_id": "P-9", "sample_id": "S-9", "volume_fl": cells[:, 0].tolist(),
            "hemoglobin_pg": cells[:, 1].tolist(), **extra}


@pytest.mark.parametrize(
    ("mutate", "field", "code"),
    [
        (lambda b: b.pop("patient_id"), "body.patient_id", "invalid_request"),
        (lambda b: b.update(patient_id=""), "body.patient_id", "invalid_request"),
        (lambda b: b.pop("hemoglobin_pg"), "body", "invalid_request"),
        (lambda b: b.update(volume_fl="many"), "body.volume_fl", "invalid_request"),
        (lambda b: b["volume_fl"].__setitem__(4, "x"), "body.volume_fl[4]", "invalid_request"),
        (lambda b: b.update(hemoglobin_pg=b["hemoglobin_pg"][:-1]), "body.hemoglobin_pg",
         "validation"),
        (lambda b: b.update(volume_fl=b["volume_fl"][:50], hemoglobin_pg=b["hemoglobin_pg"][:50]),
         "body.volume_fl", "validation"),
        (lambda b: b["hemoglobin_pg"].__setitem__(9, 150.0), "body.hemoglobin_pg[9]",
         "validation"),
        (lambda b: b.update(cells=[[90, 30]] * 300), "body", "invalid_request"),
        (lambda b: b.update(measured_hematocrit_pct=140), "body.measured_hematocrit_pct",
         "invalid_request"),
        (lambda b: b.update(sex="X"), "body.sex", "invalid_request"),
        (lambda b: b.update(unexpected=1), "body.unexpected", "invalid_request"),
    ],
)
def test_malformed_json_is_422_naming_the_field(client, mutate, field, code):
    body = _body()
    mutate(body)
    r = client.post("/v1/predictions", json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert (err["field"], err["code"]) == (field, code), err
    assert err["message"]
    assert client.get("/v1/predictions").json()["total"] == 0


def test_nan_in_json_is_rejected_as_non_finite(client):
    text = '{"patient_id":"P","sample_id":"S","volume_fl":[NaN' + ",90" * 299 + \
           '],"hemoglobin_pg":[' + ",".join(["30"] * 300) + "]}"
    r = client.post("/v1/predictions", content=text,
                    headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "body.volume_fl[0]"


def test_broken_json_is_422_not_500(client):
    r = client.post("/v1/predictions", content=b'{"patient_id": ',
                    headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"


def test_too_large_body_is_413(settings):
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    small = settings.model_copy(update={"max_body_bytes": 4096})
    with TestClient(create_app(small)) as client:
        r = client.post("/v1/predictions", json=_body())
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "payload_too_large"


def test_too_many_cells_is_422(settings):
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    with TestClient(create_app(settings.model_copy(update={"max_cells": 250}))) as client:
        r = client.post("/v1/predictions", json=_body(300))
        assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_cells"


def _fcs(n: int = 400, **kw) -> bytes:
    cells = cells_for(41.0, n, 2)
    hc = 100 * cells[:, 1] / cells[:, 0]  # g/dL: the analyzer's concentration channel
    return encode_fcs({"V": cells[:, 0], "HC": hc}, **kw)


def test_predict_from_fcs_upload(client):
    data = _fcs(version="3.0", datatype="F", byteorder="big", patient_id="P-F",
                sample_id="S-F")
    r = client.post("/v1/predictions/fcs", files={"file": ("s.fcs", data)},
                    data={"measured_hematocrit_pct": "41.5", "sex": "M"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["patient_id"], body["sample_id"], body["source"]) == ("P-F", "S-F", "fcs")
    assert body["n_cells"] == 400
    assert body["lab"]["sex"] == "M" and body["residuals"] is not None


def test_fcs_ids_can_come_from_the_form(client):
    r = client.post("/v1/predictions/fcs", files={"file": ("well-a1.fcs", _fcs())},
                    data={"patient_id": "P-form"})
    assert r.status_code == 201, r.text
    assert r.json()["patient_id"] == "P-form" and r.json()["sample_id"] == "well-a1"


@pytest.mark.parametrize("data", [_fcs()[:300], b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
                                  b"FCS3.0    garbage"])
def test_corrupt_fcs_is_422(client, data):
    r = client.post("/v1/predictions/fcs", files={"file": ("bad.fcs", data)},
                    data={"patient_id": "P"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"].startswith("fcs_")
    assert r.json()["error"]["field"] == "body.file"


def test_empty_fcs_upload_is_422(client):
    r = client.post("/v1/predictions/fcs", files={"file": ("e.fcs", b"")})
    assert r.status_code == 422 and r.json()["error"]["code"] == "empty"


def test_unknown_prediction_is_404(client):
    r = client.get("/v1/predictions/does-not-exist")
    assert r.status_code == 404 and r.json()["error"]["field"] == "path.prediction_id"


def test_history_is_paginated_newest_first(client):
    ids = [client.post("/v1/predictions", json={**_body(), "sample_id": f"S{i}"}).json()["id"]
           for i in range(5)]
    page = client.get("/v1/predictions", params={"patient_id": "P-9", "limit": 2,
                                                 "offset": 1}).json()
    assert page["total"] == 5 and page["limit"] == 2
    assert [p["id"] for p in page["items"]] == ids[::-1][1:3]
    assert client.get("/v1/predictions", params={"limit": 0}).status_code == 422
