"""Time leaves the service with an offset on every surface and both databases: an idempotent
replay and a read-back are byte-identical to the original response, and every FHIR resource the
service emits validates against the FHIR models (R4B, the R4 line).

A collection time without an offset is read in `HCT_LOCAL_TIMEZONE` on every input path (JSON
single and bulk, Arrow strings and zone-less timestamps, the FCS form, batch files), so a naive
and an aware spelling of one instant show that instant on REST, result rows, FHIR and HL7; a
time whose instant overflows is a 422 naming `collected_at`.
"""

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import hl7
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.observation import Observation
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from pydantic import ValidationError

from service.api.app import create_app
from service.api.arrow_codec import ARROW_STREAM, samples_stream
from service.settings import Settings
from tests.service.api.test_api_inputs import _fcs
from tests.service.api.test_batches_api import _wait, export_csv
from tests.service.conftest import cells_for, prediction_body


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None and value.utcoffset().total_seconds() == 0, text
    return value


def test_replay_and_read_back_are_byte_identical_to_the_original(client):
    headers = {"Idempotency-Key": "replay-bytes"}
    body = prediction_body("P-TIME", seed=11)
    first = client.post("/v1/predictions", json=body, headers=headers)
    again = client.post("/v1/predictions", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.content == first.content
    read = client.get(f"/v1/predictions/{first.json()['id']}")
    assert read.content == first.content
    listed = client.get("/v1/predictions", params={"patient_id": "P-TIME"}).json()["items"][0]
    assert listed == first.json()
    _aware(first.json()["created_at"])


def test_batch_timestamps_carry_the_offset(client):
    job = client.post("/v1/batches", files={"file": ("x.csv", export_csv(1), "text/csv")})
    status = client.get(f"/v1/batches/{job.json()['id']}").json()
    assert _aware(status["created_at"]) <= _aware(status["updated_at"])


@pytest.mark.parametrize("lab", [
    {},
    {"sex": "F", "measured_hematocrit_pct": 38.5, "rbc_count_e12_per_l": 4.4,
     "collected_at": "2026-03-04T05:06:07+01:00", "age_years": 51},
    {"sex": "M", "collected_at": "2026-03-04T05:06:07"},  # a wall time without a zone
])
def test_every_fhir_observation_validates_as_fhir(client, lab):
    created = client.post("/v1/predictions", json={**prediction_body("P-FHIR"), **lab}).json()
    r = client.get(f"/v1/predictions/{created['id']}/fhir")
    assert r.status_code == 200 and r.headers["content-type"] == "application/fhir+json"
    observation = Observation.model_validate_json(r.content)
    assert observation.issued == _aware(created["created_at"])
    if "collected_at" in lab:
        assert str(observation.effectiveDateTime).startswith("2026-03-04")


BERLIN = "Europe/Berlin"  # UTC+1 in March
INSTANT = datetime(2026, 3, 4, 4, 6, 7, tzinfo=UTC)
ONE_INSTANT = ["2026-03-04T05:06:07",  # Berlin wall time, no offset
               "2026-03-04T05:06:07+01:00", "2026-03-04T04:06:07Z", "2026-03-03T23:06:07-05:00"]


@pytest.fixture
def berlin(settings):
    with TestClient(create_app(settings.model_copy(update={"local_timezone": BERLIN}))) as c:
        yield c


def _hl7_times(text: str) -> tuple[str, str]:
    parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True).validate()
    message = hl7.parse(text)
    return str(message.segment("OBR")[7]), str(message.segment("OBX")[14])


def _dtm(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d%H%M%S%z")


def _instants(client: TestClient, prediction_id: str) -> dict[str, datetime]:
    """The collection time as REST, FHIR and HL7 (OBR-7, OBX-14) state it, each with its
    offset; FHIR keeps the time of day."""
    rest = client.get(f"/v1/predictions/{prediction_id}").json()["lab"]["collected_at"]
    r = client.get(f"/v1/predictions/{prediction_id}/fhir")
    Observation.model_validate_json(r.content)
    effective = r.json()["effectiveDateTime"]
    obr, obx = _hl7_times(client.get(f"/v1/predictions/{prediction_id}/hl7").text)
    out = {"rest": datetime.fromisoformat(rest), "fhir": datetime.fromisoformat(effective),
           "obr_7": _dtm(obr), "obx_14": _dtm(obx)}
    for surface, value in out.items():
        assert value.utcoffset() is not None, (surface, value)
    return out


@pytest.mark.parametrize("given", ONE_INSTANT)
def test_a_naive_and_an_aware_spelling_of_one_instant_agree_on_rest_fhir_and_hl7(berlin, given):
    created = berlin.post("/v1/predictions", json={**prediction_body("P-ZONE"),
                                                   "collected_at": given})
    assert created.status_code == 201, created.text
    instants = _instants(berlin, created.json()["id"])
    assert instants == dict.fromkeys(instants, INSTANT)
    if given.endswith("07"):  # a naive time is shown in the zone it was read in
        assert created.json()["lab"]["collected_at"] == "2026-03-04T05:06:07+01:00"


def _via_json(client: TestClient, collected: object) -> str:
    r = client.post("/v1/predictions", json={**prediction_body("P-IN"), "collected_at": collected})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _via_bulk_json(client: TestClient, collected: object) -> str:
    body = {"samples": [{**prediction_body("P-IN"), "collected_at": collected}]}
    item = client.post("/v1/predictions/bulk", json=body).json()["items"][0]
    assert "id" in item, item
    return item["id"]


def _arrow(collected: object, kind: pa.DataType) -> bytes:
    sample = prediction_body("P-IN")
    table = pa.ipc.open_stream(samples_stream([sample])).read_all()
    return _stream(table.append_column("collected_at", pa.array([collected], kind)))


def _stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _via_arrow(client: TestClient, data: bytes) -> str:
    r = client.post("/v1/predictions/bulk", content=data,
                    headers={"content-type": ARROW_STREAM})
    item = r.json()["items"][0]
    assert "id" in item, item
    return item["id"]


def _via_fcs(client: TestClient, collected: str) -> str:
    r = client.post("/v1/predictions/fcs", files={"file": ("s.fcs", _fcs(patient_id="P-IN"))},
                    data={"collected_at": collected})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _batch_csv(collected: str, n: int = 1) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["patient_id", "sample_id", "volume_fl", "hemoglobin_pg", "collected_at"])
    for i in range(n):
        for v, h in cells_for(42.0, 250, i):
            writer.writerow([f"P{i}", f"S{i}", f"{v:.3f}", f"{h:.3f}", collected])
    return out.getvalue().encode()


def _batch_rows(client: TestClient, data: bytes) -> tuple[list[dict], list[dict]]:
    job = client.post("/v1/batches", files={"file": ("x.csv", data, "text/csv")}).json()
    assert _wait(client, job["id"])["status"] == "done"
    url = f"/v1/batches/{job['id']}/results"
    rows = list(csv.DictReader(io.StringIO(client.get(url).text)))
    return rows, client.get(url, params={"format": "json"}).json()


def _via_batch(client: TestClient, collected: str) -> str:
    rows, json_rows = _batch_rows(client, _batch_csv(collected))
    assert rows[0]["status"] == "done", rows[0]
    for row in (rows[0], json_rows[0]):  # the result rows state it with its offset too
        assert datetime.fromisoformat(row["collected_at"]) == INSTANT, row
    return rows[0]["prediction_id"]


INPUT_PATHS = {
    "json": lambda c: _via_json(c, "2026-03-04T05:06:07"),
    "bulk_json": lambda c: _via_bulk_json(c, "2026-03-04T05:06:07"),
    "arrow_string": lambda c: _via_arrow(c, _arrow("2026-03-04T05:06:07", pa.string())),
    "arrow_timestamp_without_zone": lambda c: _via_arrow(
        c, _arrow(datetime(2026, 3, 4, 5, 6, 7), pa.timestamp("us"))),
    "arrow_timestamp_with_zone": lambda c: _via_arrow(
        c, _arrow(INSTANT, pa.timestamp("us", tz="UTC"))),
    "fcs_form": lambda c: _via_fcs(c, "2026-03-04T05:06:07"),
    "batch_csv": lambda c: _via_batch(c, "2026-03-04T05:06:07"),
}


@pytest.mark.parametrize("path", INPUT_PATHS)
def test_every_input_path_reads_a_naive_time_in_the_configured_zone(berlin, path):
    instants = _instants(berlin, INPUT_PATHS[path](berlin))
    assert instants == dict.fromkeys(instants, INSTANT)


def test_year_one_is_a_four_digit_hl7_year_and_the_same_instant_everywhere(client):
    pid = _via_json(client, "0001-01-01T00:00:00")  # UTC, the default zone
    obr, obx = _hl7_times(client.get(f"/v1/predictions/{pid}/hl7").text)
    assert obr == obx == "00010101000000+0000"
    instants = _instants(client, pid)
    assert instants == dict.fromkeys(instants, datetime(1, 1, 1, tzinfo=UTC))


OVERFLOWING = [("0001-01-01T00:00:00", BERLIN),  # east of UTC: the instant is in year 0
               ("9999-12-31T23:59:59-05:00", "UTC"), ("0001-01-01T00:30:00+01:00", "UTC")]


@pytest.mark.parametrize(("given", "zone"), OVERFLOWING)
def test_a_time_that_overflows_is_a_422_naming_collected_at(settings, given, zone):
    with TestClient(create_app(settings.model_copy(update={"local_timezone": zone}))) as c:
        r = c.post("/v1/predictions", json={**prediction_body("P-OVER"), "collected_at": given})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == "body.collected_at"
        assert given in r.json()["error"]["message"]
        fcs = c.post("/v1/predictions/fcs", files={"file": ("s.fcs", _fcs())},
                     data={"collected_at": given})
        assert fcs.status_code == 422 and fcs.json()["error"]["field"] == "body.collected_at"
        bulk = c.post("/v1/predictions/bulk", json={"samples": [
            {**prediction_body("P-OVER"), "collected_at": given}, prediction_body("P-OK")]})
        bad, good = bulk.json()["items"]
        assert "collected_at" in bad["error"]["field"] and "id" in good
        assert c.get("/v1/predictions", params={"patient_id": "P-OVER"}).json()["total"] == 0


def test_an_arrow_timestamp_beyond_datetime_fails_its_row_alone(client):
    seconds = pa.array([253_402_300_800 * 10], pa.timestamp("s"))  # past year 9999
    table = pa.ipc.open_stream(samples_stream([prediction_body("P-ARR")])).read_all()
    r = client.post("/v1/predictions/bulk", content=_stream(
        table.append_column("collected_at", seconds)), headers={"content-type": ARROW_STREAM})
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["error"]["field"] == "body.collected_at"
    bad_string = client.post("/v1/predictions/bulk", content=_arrow("yesterday", pa.string()),
                             headers={"content-type": ARROW_STREAM}).json()["items"][0]
    assert bad_string["error"]["field"] == "body.collected_at"


def test_a_batch_row_whose_time_overflows_is_an_error_row_naming_collected_at(berlin):
    rows, _ = _batch_rows(berlin, _batch_csv("0001-01-01T00:00:00"))
    assert rows[0]["status"] == "error" and "collected_at" in rows[0]["error_message"], rows[0]


def test_an_unknown_time_zone_is_refused_at_start_up(monkeypatch):
    monkeypatch.setenv("HCT_LOCAL_TIMEZONE", "Mars/Olympus_Mons")
    with pytest.raises(ValidationError, match="HCT_LOCAL_TIMEZONE = 'Mars/Olympus_Mons': not "
                                              "an IANA time zone name"):
        Settings(_env_file=None)
    monkeypatch.setenv("HCT_LOCAL_TIMEZONE", BERLIN)
    assert Settings(_env_file=None).local_zone == ZoneInfo(BERLIN)
    monkeypatch.delenv("HCT_LOCAL_TIMEZONE")
    assert Settings(_env_file=None).local_zone == ZoneInfo("UTC")  # the default


def test_hct_score_rows_read_a_naive_time_in_the_configured_zone(settings, tmp_path):
    from service.offline.local import score_file

    source = tmp_path / "export.csv"
    source.write_bytes(_batch_csv("2026-03-04T05:06:07", n=2))
    out = tmp_path / "rows.csv"
    zoned = settings.model_copy(update={"local_timezone": BERLIN})
    assert score_file(source, out, zoned, progress=False) == (2, 0)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["collected_at"] for r in rows] == ["2026-03-04T05:06:07+01:00"] * 2
