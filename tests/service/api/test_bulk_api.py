"""`POST /v1/predictions/bulk`: JSON and Arrow in, JSON and Arrow out, per-sample errors equal to
the single route's, idempotency over the whole request, limits, and shared model calls."""

from __future__ import annotations

import pyarrow as pa
import pytest

from service.api.arrow_codec import ARROW_STREAM, samples_stream
from service.db.audit import audit_entries
from tests.service.conftest import cells_for


def _body(seed: int, n: int = 300, **extra) -> dict:
    cells = cells_for(40.0 + seed, n, seed)
    return {"patient_id": f"P-{seed}", "sample_id": f"S-{seed}",
            "volume_fl": cells[:, 0].tolist(), "hemoglobin_pg": cells[:, 1].tolist(), **extra}


def _bad_cell(seed: int) -> dict:
    body = _body(seed)
    body["volume_fl"][17] = -3.0
    return body


def _arrow(response) -> pa.Table:
    assert response.headers["content-type"] == ARROW_STREAM
    return pa.ipc.open_stream(response.content).read_all()


def _without_identity(body: dict) -> dict:
    """The body without its id and time, nested numbers flattened for `pytest.approx`."""
    flat: dict = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        else:
            flat[prefix] = value

    walk("", {k: v for k, v in body.items() if k not in ("id", "created_at")})
    return flat


def test_json_bulk_answers_in_order_with_the_single_routes_bodies_and_errors(client):
    samples = [_body(1, measured_hematocrit_pct=41.0, sex="F"), _bad_cell(2), _body(3, n=700),
               _body(4, n=50), {**_body(5), "rbc_count_e12_per_l": "4.6"}, _body(6)]
    r = client.post("/v1/predictions/bulk", json={"samples": samples})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == len(samples)
    for sample, item in zip(samples, items, strict=True):
        single = client.post("/v1/predictions", json=sample)
        if single.status_code == 201:
            assert item["patient_id"] == sample["patient_id"]
            # Same body up to float rounding: the model and the indices sum over batches
            # padded differently (the single request was batched alone).
            assert _without_identity(item) == pytest.approx(_without_identity(single.json()),
                                                            abs=1e-4)
        else:
            assert single.status_code == 422
            assert item == single.json()  # same code, field and message
    codes = [i.get("error", {}).get("code") for i in items]
    assert codes == [None, "validation", None, "validation", "invalid_request", None]
    assert items[1]["error"]["field"] == "body.volume_fl[17]"
    assert items[4]["error"]["field"] == "body.rbc_count_e12_per_l"


def test_bulk_samples_are_stored_and_audited_like_single_predictions(client):
    r = client.post("/v1/predictions/bulk", json={"samples": [_body(1), _body(2)]})
    ids = [item["id"] for item in r.json()["items"]]
    for prediction_id in ids:
        stored = client.get(f"/v1/predictions/{prediction_id}")
        assert stored.status_code == 200 and stored.json()["source"] == "api"
    with client.app.state.hct.engine.begin() as conn:
        for prediction_id in ids:
            actions = [e["action"] for e in audit_entries(conn, resource_id=prediction_id)]
            assert actions[0] == "create"


def test_arrow_bulk_gives_the_same_values_as_json_and_arrow_results(client):
    samples = [_body(1, sex="M", age_years=50.0), _bad_cell(2), _body(3, n=900)]
    as_json = client.post("/v1/predictions/bulk", json={"samples": samples}).json()["items"]
    r = client.post("/v1/predictions/bulk", content=samples_stream(samples),
                    headers={"Content-Type": ARROW_STREAM})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i.get("patient_id") for i in items] == ["P-1", None, "P-3"]
    assert items[1] == as_json[1]  # the same error from Arrow as from JSON
    for a, b in ((items[0], as_json[0]), (items[2], as_json[2])):
        assert abs(a["hematocrit_pct"] - b["hematocrit_pct"]) <= 1e-4
        assert a["lab"] == b["lab"] and a["n_cells"] == b["n_cells"]
    out = client.post("/v1/predictions/bulk", content=samples_stream(samples),
                      headers={"Content-Type": ARROW_STREAM, "Accept": ARROW_STREAM})
    table = _arrow(out)
    assert b"synthetic" in table.schema.metadata[b"notice"]
    rows = table.to_pylist()
    assert [row["seq"] for row in rows] == [0, 1, 2]
    assert [row["status"] for row in rows] == ["done", "error", "done"]
    assert rows[1]["error_kind"] == "validation" and rows[1]["error_field"] == \
        "body.volume_fl[17]" and rows[1]["patient_id"] == "P-2"
    assert abs(rows[2]["hematocrit_pct"] - items[2]["hematocrit_pct"]) <= 1e-3
    assert client.get(f"/v1/predictions/{rows[0]['prediction_id']}").status_code == 200


def test_idempotency_key_covers_the_whole_bulk_request(client):
    headers = {"Idempotency-Key": "bulk-1"}
    samples = [_body(1), _bad_cell(2), _body(3)]
    first = client.post("/v1/predictions/bulk", json={"samples": samples}, headers=headers)
    again = client.post("/v1/predictions/bulk", json={"samples": samples}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    # The same items; the time differs only in form (a stored SQLite time has no zone, as on
    # the single route's replay).
    strip = lambda items: [{k: v for k, v in i.items() if k != "created_at"}  # noqa: E731
                           for i in items]
    assert strip(again.json()["items"]) == strip(first.json()["items"])
    total = client.get("/v1/predictions").json()["total"]
    assert total == 2
    other = client.post("/v1/predictions/bulk", json={"samples": [_body(1)]}, headers=headers)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    arrow = {**headers, "Content-Type": ARROW_STREAM, "Idempotency-Key": "bulk-2"}
    a = client.post("/v1/predictions/bulk", content=samples_stream([_body(7)]), headers=arrow)
    b = client.post("/v1/predictions/bulk", content=samples_stream([_body(7)]), headers=arrow)
    assert b.headers["Idempotent-Replayed"] == "true"
    assert a.json()["items"][0]["id"] == b.json()["items"][0]["id"]


@pytest.fixture
def small_client(settings):
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    with TestClient(create_app(settings.model_copy(update={"max_bulk_samples": 2}))) as c:
        yield c


def test_too_many_samples_is_413_naming_the_field(small_client):
    samples = [_body(1), _body(2), _body(3)]
    r = small_client.post("/v1/predictions/bulk", json={"samples": samples})
    assert r.status_code == 413 and r.json()["error"]["field"] == "body.samples"
    r = small_client.post("/v1/predictions/bulk", content=samples_stream(samples),
                          headers={"Content-Type": ARROW_STREAM})
    assert r.status_code == 413 and r.json()["error"]["field"] == "body.samples"
    assert "HCT_MAX_BULK_SAMPLES" in r.json()["error"]["message"]


@pytest.mark.parametrize(("payload", "field"), [
    ({"samples": []}, "body.samples"),
    ({"sample": [1]}, "body.samples"),
    ([1, 2], "body"),
])
def test_a_malformed_json_envelope_is_422_naming_the_field(client, payload, field):
    r = client.post("/v1/predictions/bulk", json=payload)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


def test_malformed_arrow_is_a_4xx_naming_the_problem(client):
    post = lambda data: client.post("/v1/predictions/bulk", content=data,  # noqa: E731
                                    headers={"Content-Type": ARROW_STREAM})
    r = post(b"certainly not arrow")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_arrow"
    truncated = samples_stream([_body(1)])
    assert post(truncated[: len(truncated) // 2]).status_code == 400
    assert post(b"").status_code == 422
    no_cells = pa.table({"patient_id": ["P"], "sample_id": ["S"],
                         "volume_fl": pa.array([[90.0] * 300], pa.list_(pa.float32()))})
    r = post(_stream(no_cells))
    assert r.status_code == 422 and r.json()["error"]["field"] == "body.hemoglobin_pg"
    wrong = no_cells.append_column("hemoglobin_pg", pa.array(["30"]))
    r = post(_stream(wrong))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_column_type"
    unknown = no_cells.append_column("hemoglobin_pg", pa.array([[30.0] * 300],
                                                               pa.list_(pa.float32())))
    r = post(_stream(unknown.append_column("colour", pa.array(["red"]))))
    assert r.status_code == 422 and r.json()["error"]["field"] == "body.colour"


def test_arrow_nulls_and_mismatched_lists_fail_only_their_row(client):
    good = _body(1)
    table = pa.table({
        "patient_id": ["P-1", "P-2", "P-3"], "sample_id": ["S-1", "S-2", "S-3"],
        "volume_fl": pa.array([good["volume_fl"], None, good["volume_fl"]],
                              pa.list_(pa.float32())),
        "hemoglobin_pg": pa.array([good["hemoglobin_pg"], good["hemoglobin_pg"],
                                   good["hemoglobin_pg"][:-1]], pa.list_(pa.float32()))})
    r = client.post("/v1/predictions/bulk", content=_stream(table),
                    headers={"Content-Type": ARROW_STREAM})
    items = r.json()["items"]
    assert "hematocrit_pct" in items[0]
    assert items[1]["error"]["field"] == "body.volume_fl"
    assert items[2]["error"]["field"] == "body.hemoglobin_pg"


def test_unknown_content_type_is_415(client):
    r = client.post("/v1/predictions/bulk", content=b"a,b", headers={"Content-Type": "text/csv"})
    assert r.status_code == 415


def test_a_bulk_requests_samples_share_one_model_call(client):
    batcher = client.app.state.hct.online.batcher
    real, sizes = batcher.batch_fn, []

    def counted(items):  # the real model call, counted
        sizes.append(len(items))
        return real(items)

    batcher.batch_fn = counted
    r = client.post("/v1/predictions/bulk", json={"samples": [_body(i) for i in range(6)]})
    assert r.status_code == 200
    assert sum(sizes) == 6 and len(sizes) <= 2  # one batch, or one per idle model worker


def _stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
