"""ORU^R01 messages: every message hct emits parses with both hl7apy (strict 2.5.1 structure)
and python-hl7, and carries the prediction's values, with hostile ids escaped losslessly."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from service.prediction import hl7 as hl7v2
from service.prediction.notice import NOTICE
from service.prediction.prediction import Prediction as PredictionRecord
from tests.service.conftest import prediction_body

HOSTILE = ["P|1", "a^b", "x~y", "back\\slash", "amp&er", "\\F\\literal", "|^~\\&",
           "E\\E\\", "ünï çødé", "line\rbreak"]


def _record(**changes) -> PredictionRecord:
    record = PredictionRecord(
        id="0f8e3d2c-1111-4222-8333-444455556666", created_at=datetime(2026, 1, 2, 3, 4, 5,
                                                                       tzinfo=UTC),
        patient_id="P-1", sample_id="S-1", source="api", job_id=None, hematocrit_pct=47.26,
        flag="H", n_cells=1200, n_cells_used=1000, indices={"mcv_fl": 90.0},
        baselines={"population_mean": 42.0, "cbc_indices": 41.25, "moments": 43.0,
                   "analyzer_formula": None},
        lab={"sex": "F", "measured_hematocrit_pct": 45.0,
             "collected_at": "2026-01-01T08:30:00+01:00"},
        model_name="deepsets-pp", model_version="2026.1", onnx_sha256="ab" * 32,
        provider="CPUExecutionProvider")
    return replace(record, **changes)


def _parse_both(text: str) -> hl7.Message:
    parse_message(text, validation_level=VALIDATION_LEVEL.STRICT,
                  find_groups=True).validate()
    return hl7.parse(text)


def _unescaped(message: hl7.Message, segment: str, field: int, component: int = 1) -> str:
    value = message.segment(segment)[field]
    if component and not isinstance(value, str) and len(value[0]) > 1:
        value = value[0][component - 1]
    return message.unescape(str(value))


def test_oru_carries_value_range_flag_status_method_and_notice():
    text = hl7v2.message_for(_record())
    m = _parse_both(text)
    msh, obx = m.segment("MSH"), m.segment("OBX")
    assert str(msh[9]) == "ORU^R01^ORU_R01" and str(msh[12]) == "2.5.1"
    assert str(msh[10]) == "0F8E3D2C111142228333"
    assert str(obx[2]) == "NM" and str(obx[3]).startswith("20570-8^") and str(obx[3]).endswith(
        "^LN")
    assert str(obx[5]) == "47.3" and str(obx[6]) == "%^%^UCUM"
    assert str(obx[7]) == "36.0-46.0" and str(obx[8]) == "H" and str(obx[11]) == "P"
    assert "deepsets-pp 2026.1" in str(obx[17])
    assert str(obx[14]) == "20260101083000+0100" == str(m.segment("OBR")[7])
    notes = [m.unescape(str(s[3])) for s in m.segments("NTE")]
    assert any(NOTICE in n for n in notes)
    assert any("cbc_indices 41.2 %" in n and "analyzer_formula not available" in n
               for n in notes)
    assert any("45.0 %" in n and "+2.3 %" in n for n in notes)
    assert text.endswith("\r") and "\n" not in text


@pytest.mark.parametrize(("sex", "expected"), [("M", "41.0-53.0"), (None, "36.0-53.0")])
def test_reference_range_follows_sex(sex, expected):
    m = hl7.parse(hl7v2.message_for(_record(lab={"sex": sex})))
    assert str(m.segment("OBX")[7]) == expected


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_ids_round_trip_through_both_parsers(hostile):
    m = _parse_both(hl7v2.message_for(_record(patient_id=hostile, sample_id=hostile + "S",
                                              model_name=hostile)))
    expected = hostile.replace("\r", " ")
    assert _unescaped(m, "PID", 3) == expected
    assert _unescaped(m, "OBR", 3, component=0) == expected + "S"
    assert len(m.segments("PID")) == 1 and len(m.segments("OBX")) == 1  # no injected segment


def test_interval_goes_out_as_a_numeric_range_observation():
    text = hl7v2.message_for(_record(), interval=hl7v2.Interval(43.0, 51.5, 0.9))
    m = _parse_both(text)
    first, second = m.segments("OBX")
    assert str(second[2]) == "NR" and str(second[5]) == "43.0^51.5"
    assert str(first[5]) == "47.3"
    assert any("90 % prediction interval" in m.unescape(str(s[3])) for s in m.segments("NTE"))


def test_withheld_quality_sends_no_value():
    quality = hl7v2.Quality("withheld", 0.12, ("too few cells", "clumps"))
    m = _parse_both(hl7v2.message_for(_record(), quality=quality,
                                      interval=hl7v2.Interval(40, 50, 0.9)))
    obx = m.segments("OBX")
    assert len(obx) == 1 and str(obx[0][5]) == "" and str(obx[0][8]) == ""
    assert str(obx[0][11]) == "X"
    notes = " ".join(m.unescape(str(s[3])) for s in m.segments("NTE"))
    assert "withheld" in notes and "too few cells; clumps" in notes
    assert "47.3" not in hl7v2.message_for(_record(), quality=quality)


def test_quality_and_interval_are_read_from_the_record_when_it_carries_them():
    record = _record(hematocrit_lower_pct=44.0, hematocrit_upper_pct=50.0, interval_level=0.8,
                     quality_status="warn", quality_score=1.5, quality_reasons=["low count"])
    m = _parse_both(hl7v2.message_for(record))
    assert str(m.segments("OBX")[1][5]) == "44.0^50.0"
    assert any("warn" in m.unescape(str(s[3])) and "low count" in m.unescape(str(s[3]))
               for s in m.segments("NTE"))


def test_hl7_route_returns_the_stored_prediction_as_er7(client):
    body = prediction_body("P|x^y~z\\&") | {"sample_id": "S&1", "sex": "M"}
    created = client.post("/v1/predictions", json=body).json()
    answer = client.get(f"/v1/predictions/{created['id']}/hl7")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(hl7v2.MEDIA_TYPE)
    m = _parse_both(answer.text)
    assert _unescaped(m, "PID", 3) == body["patient_id"]
    assert _unescaped(m, "OBR", 3, component=0) == "S&1"
    assert str(m.segment("OBX")[5]) == f"{created['hematocrit_pct']:.1f}"
    assert str(m.segment("OBX")[8]) == created["flag"]
    assert str(m.segment("MSH")[11]) == "T"  # the test environment
    assert client.get("/v1/predictions/nope/hl7").status_code == 404


def _collection_times(text: str) -> tuple[str, str]:
    message = _parse_both(text)
    return str(message.segment("OBR")[7]), str(message.segment("OBX")[14])


@pytest.mark.parametrize(("stored", "dtm"), [
    ("2026-01-01T08:30:00+01:00", "20260101083000+0100"),
    ("2026-01-01T08:30:00+05:30", "20260101083000+0530"),
    ("2026-01-01T08:30:00-03:30", "20260101083000-0330"),
    ("0001-01-01T00:00:00+00:00", "00010101000000+0000"),  # year 1: four digits, not "1"
    ("0999-06-01T12:00:00+00:00", "09990601120000+0000"),
    ("2026-01-01T08:30:00", "20260101083000+0000"),  # stored before offsets: UTC
    ("2026-01-01T08:30:00+15:00", "20251231173000+0000"),  # beyond HL7's +14:00: as UTC
])
def test_collection_time_is_a_dtm_with_offset_and_four_digit_year(stored, dtm):
    record = _record(lab={"collected_at": stored})
    obr_7, obx_14 = _collection_times(hl7v2.message_for(record))
    assert obr_7 == obx_14 == dtm
    expected = datetime.fromisoformat(stored)
    expected = expected if expected.tzinfo else expected.replace(tzinfo=UTC)
    assert datetime.strptime(obr_7, "%Y%m%d%H%M%S%z") == expected  # the same instant


def test_hl7apy_reads_back_a_year_one_time_as_year_one():
    text = hl7v2.message_for(_record(lab={"collected_at": "0001-01-01T00:00:00+00:00"}))
    parsed = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    obr = parsed.ORU_R01_PATIENT_RESULT.ORU_R01_ORDER_OBSERVATION.OBR
    dtm = obr.obr_7.ts_1.children[0].value
    assert dtm.value == datetime(1, 1, 1) and dtm.offset == "+0000"
    assert "|00010101000000+0000|" in text  # four-digit year on the wire


def test_the_same_prediction_and_message_time_render_the_same_text():
    """The outbox renders a message when it sends it, with the time it was queued: a resend
    must be the same text, whenever it is rendered."""
    queued = datetime(2026, 1, 2, 3, 5, 0, tzinfo=UTC)
    first = hl7v2.message_for(_record(), now=queued, processing_id="T")
    assert hl7v2.message_for(_record(), now=queued, processing_id="T") == first
    assert hl7v2.message_for(_record(), now=queued.replace(minute=6)) != first


_LAYOUTS = {
    "plain": ({}, {}),
    "interval": ({}, {"interval": hl7v2.Interval(43.0, 51.5, 0.9)}),
    "quality_ok": ({}, {"quality": hl7v2.Quality("ok", 0.91, ())}),
    "quality_review": ({}, {"quality": hl7v2.Quality("review", 0.4, ("noise", "a|b"))}),
    "withheld_with_interval": ({}, {"quality": hl7v2.Quality("withheld", None, ("clumps",)),
                                    "interval": hl7v2.Interval(40.0, 50.0, 0.9)}),
    "no_collection_time": ({"lab": {"sex": "M"}}, {}),
    "year_one": ({"lab": {"collected_at": "0001-01-01T00:00:00+00:00"}}, {}),
    "receiver_and_test_processing": ({}, {"receiving_application": "LIS|A",
                                          "receiving_facility": "Lab^1",
                                          "processing_id": "T"}),
    **{f"hostile_{i}": ({"patient_id": h, "sample_id": h + "S"}, {})
       for i, h in enumerate(HOSTILE)},
}


@pytest.mark.parametrize("layout", sorted(_LAYOUTS))
def test_direct_rendering_is_the_hl7apy_message_text_for_text(layout):
    # The service renders ER7 by field number (cheap on the delivery path); the same message
    # built through hl7apy's tree and validated against 2.5.1 must be the identical text.
    from tests.service.prediction.hl7_reference import reference_message

    changes, options = _LAYOUTS[layout]
    record = _record(**changes)
    now = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    text = hl7v2.message_for(record, now=now, **options)
    assert text == reference_message(record, now=now, **options)
    _parse_both(text)
