"""The ORU^R01 built through hl7apy's message tree and validated against the 2.5.1 structure:
the reference the service's direct ER7 rendering (`service.prediction.hl7.message_for`) must
equal, text for text, in every layout."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hl7apy.base_datatypes import DateTimeDataType
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message

from service.prediction.hl7 import (
    LOCAL_INTERVAL,
    LOCAL_PANEL,
    LOINC_HCT,
    SENDING_APPLICATION,
    UNIT,
    VERSION,
    Interval,
    Quality,
    _coded,
    _dtm,
    _fmt,
    _method,
    _notes,
    control_id,
    escape,
    interval_of,
    quality_of,
)
from service.prediction.notice import NOTICE
from service.prediction.prediction import Prediction


def _four_digit_year(self: DateTimeDataType, encoding_chars: Any = None) -> str:
    """hl7apy renders a DTM with `strftime("%Y")`, which writes year 1 as `1` (a malformed
    DTM): the year is always four digits here."""
    text = datetime.strftime(self.value, self.format)
    if self.format.startswith("%Y") and self.value.year < 1000:
        text = f"{self.value.year:04d}" + text[len(str(self.value.year)):]
    return text


DateTimeDataType.to_er7 = _four_digit_year  # type: ignore[method-assign]



def oru_r01(record: Prediction, *, interval: Interval | None = None,
            quality: Quality | None = None, now: datetime | None = None,
            processing_id: str = "P", receiving_application: str = "",
            receiving_facility: str = "") -> Message:
    """The validated `ORU^R01` for one stored prediction (raises if hl7apy finds it invalid).

    `interval` and `quality` default to what the record carries (`interval_of`, `quality_of`).
    """
    interval = interval if interval is not None else interval_of(record)
    quality = quality if quality is not None else quality_of(record)
    withheld = quality is not None and quality.status == "withheld"
    low, high = record.reference_range
    collected = _dtm(record.lab.get("collected_at"))
    reported = _dtm(record.created_at)

    m = Message("ORU_R01", version=VERSION, validation_level=VALIDATION_LEVEL.TOLERANT)
    m.msh.msh_3 = SENDING_APPLICATION
    m.msh.msh_5 = escape(receiving_application)
    m.msh.msh_6 = escape(receiving_facility)
    m.msh.msh_7 = _dtm(now or datetime.now(UTC))
    m.msh.msh_9 = "ORU^R01^ORU_R01"
    m.msh.msh_10 = control_id(record)
    m.msh.msh_11 = processing_id
    m.msh.msh_15 = "AL"  # accept acknowledgement: always (MLLP delivery waits for it)
    m.msh.msh_16 = "NE"
    m.msh.msh_18 = "UNICODE UTF-8"

    result = m.add_group("ORU_R01_PATIENT_RESULT")
    pid = result.add_group("ORU_R01_PATIENT").pid
    pid.pid_1 = "1"
    pid.pid_3 = f"{escape(record.patient_id)}^^^^PI"
    pid.pid_5 = '""'

    order = result.add_group("ORU_R01_ORDER_OBSERVATION")
    order.obr.obr_1 = "1"
    order.obr.obr_3 = escape(record.sample_id)
    order.obr.obr_4 = _coded(LOCAL_PANEL)
    if collected:
        order.obr.obr_7 = collected
    order.obr.obr_22 = reported
    order.obr.obr_25 = "P"

    method = _method(record)
    obs = order.add_group("ORU_R01_OBSERVATION")
    obx = obs.obx
    obx.obx_1 = "1"
    obx.obx_2 = "NM"
    obx.obx_3 = _coded(LOINC_HCT)
    obx.obx_6 = _coded(UNIT)
    obx.obx_7 = f"{_fmt(low)}-{_fmt(high)}"
    if withheld:
        obx.obx_11 = "X"
    else:
        obx.obx_5 = _fmt(record.hematocrit_pct)
        obx.obx_8 = record.flag
        obx.obx_11 = "P"
    if collected:
        obx.obx_14 = collected
    obx.obx_17 = method
    obx.obx_19 = reported

    notes = _notes(record, quality, withheld)
    for i, text in enumerate(notes, start=1):
        nte = obs.add_segment("NTE")
        nte.nte_1 = str(i)
        nte.nte_2 = "L"
        nte.nte_3 = escape(text)

    if interval is not None and not withheld:
        pi = order.add_group("ORU_R01_OBSERVATION").obx
        pi.obx_1 = "2"
        pi.obx_2 = "NR"
        pi.obx_3 = _coded(LOCAL_INTERVAL)
        pi.obx_4 = "1"
        pi.obx_5 = f"{_fmt(interval.lower)}^{_fmt(interval.upper)}"
        pi.obx_6 = _coded(UNIT)
        pi.obx_11 = "P"
        pi.obx_17 = method
        note = pi.parent.add_segment("NTE")
        note.nte_1 = "1"
        note.nte_2 = "L"
        note.nte_3 = escape(f"{round(interval.level * 100):d} % prediction interval of the "
                            f"model estimate. {NOTICE}")

    m.validate()  # raises hl7apy.exceptions.ValidationError on a structural problem
    return m


def to_er7(message: Message) -> str:
    """ER7 text with segments ended by CR (the MLLP and file convention)."""
    return str(message.to_er7()) + "\r"


def reference_message(record: Prediction, **kwargs: Any) -> str:
    """The ER7 text of `oru_r01(record, **kwargs)`."""
    return to_er7(oru_r01(record, **kwargs))
