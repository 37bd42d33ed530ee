"""A stored prediction as an HL7 v2.5.1 `ORU^R01` message, the shape a laboratory information
system (LIS) takes results in.

Rendered as ER7 text by field number, in one fixed layout, because building it through hl7apy's
object tree costs more CPU than all the rest of a prediction's work, which an outbox sender
on a small host cannot spend per result. hl7apy stays the reference: the tests
build the same message through it, require the two texts to be identical and validate every
layout (interval, withheld, no collection time, hostile ids) against the 2.5.1 structure.
Every value that comes from outside (patient and sample ids, model names) is escaped by
`escape`, which escapes the escape character itself before `|^~&`, so an id holding a literal
`\\F\\` cannot reach the LIS as a `|`.

Layout (one observation per message):
  MSH  sender `hct`, message control id derived from the prediction id (stable: a resend of the
       same prediction carries the same id, so the LIS can de-duplicate)
  PID  PID-3 patient id; PID-5 `""` (the name is not known to hct: HL7's explicit null)
  OBR  OBR-3 sample id, OBR-7 collection time, OBR-25 `P`
  OBX  LOINC 20570-8, NM in UCUM `%`, OBX-7 reference range by sex, OBX-8 L/N/H, OBX-11 `P`
       (preliminary: an unvalidated model estimate), OBX-17 the model and version
  OBX  (when present) the prediction interval as NR `lower^upper`
  NTE  research-use notice, baselines, measured value and residual, quality verdict

A quality verdict of `withheld` sends no value: OBX-5 empty, OBX-11 `X` (result cannot be
obtained) and an NTE with the reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from model.card import architecture_label
from service.collection_time import stored_instant
from service.prediction.notice import NOTICE
from service.prediction.prediction import Prediction

# HL7 over HTTP (as HAPI and integration engines use it) names ER7 text this way; IANA has no
# registered type for pipe-delimited v2 (only application/hl7v2+xml for the XML encoding).
MEDIA_TYPE = "x-application/hl7-v2+er7"
VERSION = "2.5.1"
SENDING_APPLICATION = "hct"
LOINC_HCT = ("20570-8", "Hematocrit [Volume Fraction] of Blood by calculation", "LN")
LOCAL_PANEL = ("HCT-EST", "Hematocrit estimate from red-cell measurements", "L")
LOCAL_INTERVAL = ("HCT-PI", "Hematocrit estimate prediction interval", "L")
UNIT = ("%", "%", "UCUM")
_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}


@dataclass(frozen=True)
class Interval:
    """A prediction interval around the estimate (percent, `level` e.g. 0.9)."""

    lower: float
    upper: float
    level: float


@dataclass(frozen=True)
class Quality:
    """The quality verdict on a sample: `status` ok | review | withheld."""

    status: str
    score: float | None
    reasons: tuple[str, ...]


def escape(value: str) -> str:
    """`value` as ER7 text: the escape character first (`\\` → `\\E\\`), then `|` → `\\F\\`,
    `^` → `\\S\\`, `&` → `\\T\\`, `~` → `\\R\\`; CR/LF (segment breaks) become spaces.

    Non-ASCII text stays as it is: messages declare UTF-8 (MSH-18), so no `\\X..\\` hex
    escapes are needed (python-hl7's `escape` writes code points as one byte, wrong for UTF-8).
    """
    flat = value.replace("\r", " ").replace("\n", " ")
    return "".join(_ESCAPES.get(c, c) for c in flat)


def _coded(code: tuple[str, str, str]) -> str:
    return "^".join(escape(part) for part in code)


def _dtm(value: datetime | str | None) -> str:
    """HL7 DTM `YYYYMMDDHHMMSS+ZZZZ` of `stored_instant(value)` (a naive legacy value is UTC);
    an offset HL7 does not allow (beyond -12:00 to +14:00) is written as UTC."""
    instant = stored_instant(value)
    if instant is None:
        return ""
    minutes = int(instant.utcoffset().total_seconds()) // 60  # type: ignore[union-attr]
    if not -12 * 60 <= minutes <= 14 * 60:
        instant, minutes = instant.astimezone(UTC), 0
    sign, minutes = ("-", -minutes) if minutes < 0 else ("+", minutes)
    return f"{instant.year:04d}{instant:%m%d%H%M%S}{sign}{minutes // 60:02d}{minutes % 60:02d}"


def control_id(record: Prediction) -> str:
    """MSH-10 (at most 20 characters in 2.5.1): the prediction id's first 20 hex digits, the
    same for every message about this prediction, so a resend is recognisable as one.
    """
    return record.id.replace("-", "")[:20].upper()


def processing_id(settings: Any) -> str:
    """MSH-11: `P` production, `T` test, `D` development (a LIS may refuse non-production)."""
    return {"production": "P", "test": "T"}.get(settings.environment, "D")


def interval_of(record: Prediction) -> Interval | None:
    """The record's prediction interval, once predictions carry one
    (`hematocrit_interval_pct = {lower, upper, level}`)."""
    raw = getattr(record, "hematocrit_interval_pct", None)
    if not raw:
        return None
    raw = raw if isinstance(raw, Mapping) else vars(raw)
    return Interval(float(raw["lower"]), float(raw["upper"]), float(raw["level"]))


def quality_of(record: Prediction) -> Quality | None:
    """The record's quality verdict, once predictions carry one (`quality = {status, score,
    reasons}`)."""
    raw = getattr(record, "quality", None)
    if not raw:
        return None
    raw = raw if isinstance(raw, Mapping) else vars(raw)
    score = raw.get("score")
    return Quality(str(raw["status"]), None if score is None else float(score),
                   tuple(str(r) for r in raw.get("reasons") or ()))


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def _baseline_note(record: Prediction) -> str:
    parts = [f"{name} {_fmt(v)} %" if v is not None else f"{name} not available"
             for name, v in record.baselines.items()]
    return "Clinical baselines on the same cells: " + "; ".join(parts) + "."


def _measured_note(record: Prediction) -> str | None:
    measured = record.lab.get("measured_hematocrit_pct")
    if measured is None:
        return None
    return (f"Measured hematocrit supplied with the sample: {_fmt(measured)} %; model minus "
            f"measured: {record.hematocrit_pct - measured:+.1f} %.")


def _method(record: Prediction) -> str:
    """OBX-17: the model, its version and the graph's checksum."""
    return _coded((f"{record.model_name} {record.model_version}",
                   f"{architecture_label(record.model_name)} {record.model_name} "
                   f"{record.model_version} ONNX sha256 {record.onnx_sha256[:12]}", "L"))


def _notes(record: Prediction, quality: Quality | None, withheld: bool) -> list[str]:
    """The estimate's NTE texts: the notice, the baselines, the measured value (unless the
    value is withheld) and the quality verdict."""
    notes = [f"Model estimate, not a measured value. {NOTICE}", _baseline_note(record)]
    measured = _measured_note(record)
    if measured is not None and not withheld:
        notes.append(measured)
    if quality is not None:
        score = "" if quality.score is None else f" (score {quality.score:.2f})"
        reasons = "; ".join(quality.reasons) or "none given"
        verb = "value withheld" if withheld else "value reported"
        notes.append(f"Quality verdict: {quality.status}{score}, {verb}. Reasons: {reasons}.")
    return notes


def _segment(name: str, fields: Mapping[int, str], first: int = 1) -> str:
    """One ER7 segment: `fields` by HL7 field number (already escaped), empty ones between
    them, none after the last (MSH counts from MSH-2: MSH-1 is the `|` itself)."""
    last = max(fields)
    return "|".join([name, *(fields.get(i, "") for i in range(first, last + 1))])


def message_for(record: Prediction, *, interval: Interval | None = None,
                quality: Quality | None = None, now: datetime | None = None,
                processing_id: str = "P", receiving_application: str = "",
                receiving_facility: str = "") -> str:
    """The `ORU^R01` for one stored prediction as ER7 text, segments ended by CR.

    `interval` and `quality` default to what the record carries (`interval_of`, `quality_of`).
    """
    interval = interval if interval is not None else interval_of(record)
    quality = quality if quality is not None else quality_of(record)
    withheld = quality is not None and quality.status == "withheld"
    low, high = record.reference_range
    collected = _dtm(record.lab.get("collected_at"))
    reported = _dtm(record.created_at)
    method = _method(record)

    segments = [
        _segment("MSH", {2: "^~\\&", 3: SENDING_APPLICATION, 5: escape(receiving_application),
                         6: escape(receiving_facility), 7: _dtm(now or datetime.now(UTC)),
                         9: "ORU^R01^ORU_R01", 10: control_id(record), 11: processing_id,
                         12: VERSION,
                         15: "AL",  # accept acknowledgement: always (MLLP waits for it)
                         16: "NE", 18: "UNICODE UTF-8"}, first=2),
        _segment("PID", {1: "1", 3: f"{escape(record.patient_id)}^^^^PI", 5: '""'}),
        _segment("OBR", {1: "1", 3: escape(record.sample_id), 4: _coded(LOCAL_PANEL),
                         7: collected, 22: reported, 25: "P"}),
    ]
    obx = {1: "1", 2: "NM", 3: _coded(LOINC_HCT), 6: _coded(UNIT),
           7: f"{_fmt(low)}-{_fmt(high)}", 14: collected, 17: method, 19: reported}
    if withheld:
        obx[11] = "X"
    else:
        obx.update({5: _fmt(record.hematocrit_pct), 8: record.flag, 11: "P"})
    segments.append(_segment("OBX", obx))

    notes = _notes(record, quality, withheld)
    segments += [_segment("NTE", {1: str(i), 2: "L", 3: escape(text)})
                 for i, text in enumerate(notes, start=1)]

    if interval is not None and not withheld:
        segments.append(_segment("OBX", {
            1: "2", 2: "NR", 3: _coded(LOCAL_INTERVAL), 4: "1",
            5: f"{_fmt(interval.lower)}^{_fmt(interval.upper)}", 6: _coded(UNIT), 11: "P",
            17: method}))
        segments.append(_segment("NTE", {1: "1", 2: "L", 3: escape(
            f"{round(interval.level * 100):d} % prediction interval of the model estimate. "
            f"{NOTICE}")}))
    return "\r".join(segments) + "\r"
