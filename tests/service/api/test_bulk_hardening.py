"""`POST /v1/predictions/bulk` against crafted bodies: Arrow streams whose offsets point
outside their buffers, types the route does not read, out-of-range times, control characters
in ids, counts far over the limit, and the in-flight bulk budget. Every one is a clean 4xx (or
a per-sample error) naming the field, or a 503 with Retry-After; never a 500, a crash, or
bytes that were not in the request.

Offsets far past the body or negative kill an unchecked process outright, so those cases run
against a real server in tests/reliability/test_bulk_server.py; here, the ones an unchecked
reader survives (and answers wrongly).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.arrow_codec import ARROW_STREAM
from tests.reliability.bulk_bodies import (
    MARK,
    N_CELLS,
    one_row_stream,
    patched_id_offset,
    patched_list_offset,
    sample,
    stream,
)

ARROW = {"Content-Type": ARROW_STREAM}


def _post(client: TestClient, data: bytes, **headers: str):
    return client.post("/v1/predictions/bulk", content=data, headers={**ARROW, **headers})


def _cells(n: int = N_CELLS) -> dict[str, pa.Array]:
    one = sample(3, n)
    return {"volume_fl": pa.array([one["volume_fl"]], pa.list_(pa.float32())),
            "hemoglobin_pg": pa.array([one["hemoglobin_pg"]], pa.list_(pa.float32()))}


def _table(**columns: pa.Array) -> pa.Table:
    return pa.table({"patient_id": pa.array(["P-1"]), "sample_id": pa.array(["S-1"]),
                     **_cells(), **columns})


def test_an_untouched_crafting_base_stream_is_scored(client):
    r = _post(client, one_row_stream())
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["patient_id"] == MARK


def test_id_offsets_a_few_kib_past_the_body_are_400_naming_the_column_not_heap_bytes(client):
    r = _post(client, patched_id_offset(len(MARK) + 4096))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_arrow" and error["field"] == "body.patient_id"
    assert "items" not in r.json()


@pytest.mark.parametrize("end", [N_CELLS + 1, N_CELLS + 4096, 2 ** 31 - 1])
def test_list_offsets_past_the_values_are_400_naming_the_column(client, end):
    r = _post(client, patched_list_offset(end))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == "body.volume_fl"


def test_a_stream_cut_inside_its_record_batch_is_400(client):
    data = one_row_stream()
    for cut in (len(data) - 100, len(data) - 1300):
        r = _post(client, data[:cut])
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_arrow"


@pytest.mark.parametrize(("column", "array", "words"), [
    ("patient_id", pa.array(["P-1"]).dictionary_encode(), "not a dictionary"),
    ("patient_id", pa.array(["P-1"], pa.large_string()), "large_string"),
    ("volume_fl", pa.array([sample(3)["volume_fl"]], pa.large_list(pa.float32())),
     "large_list"),
    ("volume_fl", pa.array([[sample(3)["volume_fl"]]], pa.list_(pa.list_(pa.float32()))),
     "list<float32>"),
    ("volume_fl", pa.array([{"v": 1.0}], pa.struct([("v", pa.float32())])), "struct"),
    ("sex", pa.array(["F"]).dictionary_encode(), "not a dictionary"),
    ("age_years", pa.array(["50"]), "float64"),
])
def test_types_the_route_does_not_read_are_422_naming_the_column_and_type(client, column,
                                                                          array, words):
    columns = {"patient_id": pa.array(["P-1"]), "sample_id": pa.array(["S-1"]), **_cells()}
    columns[column] = array
    r = _post(client, stream(pa.table(columns)))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_column_type" and error["field"] == f"body.{column}"
    assert words in error["message"]


def test_a_large_type_is_refused_with_what_to_send_instead(client):
    r = _post(client, stream(_table(sex=pa.array(["F"], pa.large_string()))))
    assert "send string" in r.json()["error"]["message"]


def test_a_stream_of_zero_rows_is_422(client):
    r = _post(client, stream(_table().slice(0, 0)))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "body.samples"


def test_a_repeated_column_is_422_naming_it(client):
    table = _table().append_column("patient_id", pa.array(["P-2"]))
    r = _post(client, stream(table))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "body.patient_id"


@pytest.mark.parametrize(("unit", "ticks"), [("s", 2 ** 62), ("ms", -(2 ** 62)),
                                             ("us", 2 ** 62), ("s", -(2 ** 40))])
def test_a_timestamp_out_of_datetime_range_fails_only_its_row(client, unit, ticks):
    good = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp()) * {"s": 1, "ms": 10 ** 3,
                                                                  "us": 10 ** 6}[unit]
    one = sample(3)
    cells = pa.array([one["volume_fl"]] * 2, pa.list_(pa.float32()))
    table = pa.table({"patient_id": ["P-1", "P-2"], "sample_id": ["S-1", "S-2"],
                      "volume_fl": cells,
                      "hemoglobin_pg": pa.array([one["hemoglobin_pg"]] * 2,
                                                pa.list_(pa.float32())),
                      "collected_at": pa.array([ticks, good], pa.timestamp(unit, tz="UTC"))})
    r = _post(client, stream(table))
    assert r.status_code == 200, r.text
    bad, ok = r.json()["items"]
    assert bad["error"]["field"] == "body.collected_at"
    assert bad["error"]["code"] == "validation"
    assert ok["lab"]["collected_at"].startswith("2024-05-01")


def test_control_characters_in_an_arrow_id_echo_at_most_64_request_characters(client):
    sent = "P\x07" + "A" * 120
    r = _post(client, stream(_table(patient_id=pa.array([sent]))))
    assert r.status_code == 200, r.text
    error = r.json()["items"][0]["error"]
    assert error["field"] == "body.patient_id"
    assert error["message"] == (f"patient_id = {sent[:64] + chr(0x2026)!r}: must not contain "
                                "control characters")


def test_an_arrow_error_row_echoes_the_sent_id_cut_to_the_id_limit(client):
    sent = "P\x1b[31m" + "B" * 300
    r = _post(client, stream(_table(patient_id=pa.array([sent]))), Accept=ARROW_STREAM)
    assert r.status_code == 200, r.text
    row = pa.ipc.open_stream(r.content).read_all().to_pylist()[0]
    assert row["status"] == "error" and row["error_field"] == "body.patient_id"
    assert sent.startswith(row["patient_id"].rstrip("\u2026"))
    assert len(row["patient_id"]) <= 129
    assert "B" * 65 not in row["error_message"]


def test_an_out_of_range_sex_is_echoed_cut_short(client):
    r = _post(client, stream(_table(sex=pa.array(["X" * 10_000]))))
    error = r.json()["items"][0]["error"]
    assert error["field"] == "body.sex" and len(error["message"]) < 200


@pytest.fixture
def limited(settings):
    with TestClient(create_app(settings.model_copy(update={"max_bulk_samples": 100}))) as c:
        yield c


def test_a_hundred_thousand_empty_json_samples_are_413_before_any_is_validated(limited):
    body = json.dumps({"samples": [{}] * 100_000})
    started = time.monotonic()
    r = limited.post("/v1/predictions/bulk", content=body,
                     headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["field"] == "body.samples"
    assert time.monotonic() - started < 2.0


def test_a_hundred_thousand_arrow_rows_are_413(limited):
    n = 100_000
    table = pa.table({"patient_id": pa.array(["P"] * n), "sample_id": pa.array(["S"] * n),
                      "volume_fl": pa.array([[90.0]] * n, pa.list_(pa.float32())),
                      "hemoglobin_pg": pa.array([[30.0]] * n, pa.list_(pa.float32()))})
    r = _post(limited, stream(table))
    assert r.status_code == 413, r.text
    assert "HCT_MAX_BULK_SAMPLES" in r.json()["error"]["message"]


@pytest.mark.parametrize(("body", "field"), [
    (b'{"samples": [{"patient_id": "P"},]}', "body"),
    (b'{"samples": [] , "x": 1}', "body.samples"),
    (b'{"samples": 3}', "body.samples"),
    (b'{"samples": [1], "extra": tru}', "body"),
    (b'[{"samples": [1]}]', "body"),
])
def test_json_envelopes_the_scanner_cannot_read_get_pydantics_422(client, body, field):
    r = client.post("/v1/predictions/bulk", content=body,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


def test_json_samples_that_are_not_objects_fail_only_themselves(client):
    body = json.dumps({"samples": [1, "x", sample(5), None]})
    r = client.post("/v1/predictions/bulk", content=body,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [("error" in i) for i in items] == [True, True, False, True]
    assert items[2]["patient_id"] == "P-5"


def test_a_bulk_body_over_the_in_flight_budget_is_503_with_retry_after(settings):
    app = create_app(settings.model_copy(update={"max_bulk_inflight_bytes": 4096}))
    with TestClient(app) as client:
        budget = app.state.bulk_budget
        with budget.hold(4000):  # another bulk request is being processed
            r = _post(client, one_row_stream())
            assert r.status_code == 503, r.text
            assert r.headers["Retry-After"] == "1"
            assert r.json()["error"]["code"] == "bulk_busy"
        assert budget.in_flight == 0
        r = _post(client, one_row_stream())  # alone, even a body over the budget runs
        assert r.status_code == 200, r.text
        assert budget.in_flight == 0


def _compressed(cells: int, codec: str = "zstd") -> bytes:
    table = pa.table({"patient_id": ["P-1"], "sample_id": ["S-1"],
                      "volume_fl": pa.array([[90.0] * cells], pa.list_(pa.float32())),
                      "hemoglobin_pg": pa.array([[30.0] * cells], pa.list_(pa.float32()))})
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=codec)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_a_compressed_stream_declaring_more_than_the_body_limit_is_413_before_decoding(
        settings, codec):
    data = _compressed(1_000_000, codec)  # 8 MB of cells in a few KiB
    assert len(data) < 64 * 1024
    app = create_app(settings.model_copy(update={"max_body_bytes": 1024 * 1024}))
    with TestClient(app) as client:
        r = _post(client, data)
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "payload_too_large"
        assert "HCT_MAX_BODY_BYTES" in r.json()["error"]["message"]


def test_a_small_compressed_stream_is_scored(client):
    r = _post(client, _compressed(300))
    assert r.status_code == 200, r.text
    assert "hematocrit_pct" in r.json()["items"][0]


def test_json_ids_holding_brackets_commas_and_escaped_quotes_stay_one_sample_each(client):
    tricky = [sample(7, patient_id='P-"],[{'), sample(8, patient_id='P-\\\\"}')]
    body = json.dumps({"note": {"samples": []}, "samples": tricky}, indent=2)
    r = client.post("/v1/predictions/bulk", content=body,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert [i["patient_id"] for i in r.json()["items"]] == [s["patient_id"] for s in tricky]


def test_a_repeated_samples_key_reads_the_last_as_json_does(client):
    body = ('{"samples": [1, 2, 3], "samples": [' + json.dumps(sample(9)) + "]}").encode()
    r = client.post("/v1/predictions/bulk", content=body,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert [i.get("patient_id") for i in r.json()["items"]] == ["P-9"]
