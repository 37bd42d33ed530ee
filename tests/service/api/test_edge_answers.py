"""Answers at the edges a newcomer meets first: numbers sent as strings are refused naming the
field; a batch id on a prediction route says it is one; an oversized body sent without a
Content-Length is counted and logged as the 413 the client gets."""

import logging

import pytest

from tests.service.conftest import metric_value, prediction_body


@pytest.mark.parametrize(("field", "value", "where"), [
    ("rbc_count_e12_per_l", "4.5", "body.rbc_count_e12_per_l"),
    ("measured_hematocrit_pct", "41.0", "body.measured_hematocrit_pct"),
    ("age_years", "50", "body.age_years"),
])
def test_a_lab_value_sent_as_a_string_is_422_naming_the_field(client, field, value, where):
    r = client.post("/v1/predictions", json=prediction_body("P-str") | {field: value})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == where


def test_a_cell_value_sent_as_a_string_is_422_naming_its_index(client):
    body = prediction_body("P-str2")
    body["volume_fl"][5] = "89.84"
    r = client.post("/v1/predictions", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "body.volume_fl[5]"
    assert client.post("/v1/predictions", json=prediction_body("P-int") | {
        "age_years": 50}).status_code == 201  # an integer is still a number


def test_a_batch_id_on_a_prediction_route_says_it_is_a_batch_id(client):
    from tests.service.api.test_batches_api import export_csv

    job_id = client.post("/v1/batches", files={"file": ("e.csv", export_csv(1), "text/csv")}
                         ).json()["id"]
    r = client.get(f"/v1/predictions/{job_id}/fhir")
    assert r.status_code == 404
    assert "is a batch id" in r.json()["error"]["message"]
    assert f"/v1/batches/{job_id}" in r.json()["error"]["message"]
    plain = client.get("/v1/predictions/does-not-exist")
    assert plain.status_code == 404 and "batch" not in plain.json()["error"]["message"]


def test_an_oversized_chunked_body_is_counted_and_logged_as_413(settings, caplog):
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    small = settings.model_copy(update={"max_body_bytes": 4096})

    def chunks():  # a generator body: sent chunked, without a Content-Length
        for _ in range(16):
            yield b" " * 1024

    sample = 'hct_http_requests_total{method="POST",route="%s",status="%s"}'
    with TestClient(create_app(small)) as client:
        before = client.get("/metrics").text
        with caplog.at_level(logging.INFO, logger="hct.access"):
            r = client.post("/v1/predictions", content=chunks(),
                            headers={"content-type": "application/json"})
            sized = client.post("/v1/predictions", content=b" " * 8192,
                                headers={"content-type": "application/json"})
        after = client.get("/metrics").text
    assert r.status_code == 413 and sized.status_code == 413
    counted_413 = sum(metric_value(after, sample % (route, "413"))
                      - metric_value(before, sample % (route, "413"))
                      for route in ("/v1/predictions", "unmatched"))
    counted_500 = sum(metric_value(after, sample % (route, "500"))
                      - metric_value(before, sample % (route, "500"))
                      for route in ("/v1/predictions", "unmatched"))
    assert counted_413 == 2 and counted_500 == 0
    access = [r.getMessage() for r in caplog.records if r.name == "hct.access"]
    assert sum(" 413 " in line for line in access) == 2
    assert not any(" 500 " in line for line in access)
