"""A stored prediction as a FHIR R4 `Observation`, the shape a hospital EHR ingests.

LOINC 20570-8 ("Hematocrit [Volume Fraction] of Blood by calculation") is the closest code for a
model estimate; `method` and `device` name the model and version, and a note says it is an
estimate from a research model trained on synthetic data.
"""

from __future__ import annotations

from typing import Any

from model.card import architecture_label
from service.collection_time import stored_instant
from service.prediction.notice import NOTICE
from service.prediction.prediction import Prediction
from service.prediction.reference import RANGE_TEXT

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
_INTERPRETATION_TEXT = {"L": "Low", "N": "Normal", "H": "High"}


def observation(record: Prediction, base_url: str = "") -> dict[str, Any]:
    """FHIR R4 Observation (status `preliminary`: an unvalidated model estimate)."""
    low, high = record.reference_range
    model = f"{record.model_name} {record.model_version}"
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": record.id,
        "status": "preliminary",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory", "display": "Laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": "20570-8",
                             "display": "Hematocrit [Volume Fraction] of Blood by calculation"}],
                 "text": "Hematocrit (model estimate)"},
        "subject": {"identifier": {"value": record.patient_id}},
        "specimen": {"identifier": {"value": record.sample_id}},
        "issued": record.created_at.isoformat(),
        "valueQuantity": {"value": round(record.hematocrit_pct, 2), "unit": "%",
                          "system": UCUM, "code": "%"},
        "interpretation": [{"coding": [{"system": INTERPRETATION, "code": record.flag,
                                        "display": _INTERPRETATION_TEXT[record.flag]}]}],
        "referenceRange": [{
            "low": {"value": low, "unit": "%", "system": UCUM, "code": "%"},
            "high": {"value": high, "unit": "%", "system": UCUM, "code": "%"},
            "text": RANGE_TEXT.get(record.sex, RANGE_TEXT[None])}],
        "method": {"text": f"{architecture_label(record.model_name)} on per-cell volume and "
                           f"hemoglobin ({model}; ONNX sha256 {record.onnx_sha256})"},
        "device": {"display": f"{model} on {record.provider}"},
        "note": [{"text": f"Model estimate, not a measured value. {NOTICE}"}],
    }
    _add_trust(obs, record)
    collected = stored_instant(record.lab.get("collected_at"))
    if collected is not None:
        obs["effectiveDateTime"] = collected.isoformat()
    if base_url:
        obs["derivedFrom"] = [{"reference": f"{base_url}/v1/predictions/{record.id}",
                               "display": "source prediction with cells summary"}]
    return obs


def _add_trust(obs: dict[str, Any], record: Prediction) -> None:
    """The interval as a component with a `valueRange`; the quality verdict as a note; a
    withheld value as `dataAbsentReason` (no value, no interpretation)."""
    interval = record.hematocrit_interval_pct
    if interval is not None:
        obs["component"] = [{
            "code": {"text": f"{interval['level']:.0%} prediction interval (split conformal)"},
            "valueRange": {
                "low": {"value": round(interval["lower"], 2), "unit": "%", "system": UCUM,
                        "code": "%"},
                "high": {"value": round(interval["upper"], 2), "unit": "%", "system": UCUM,
                         "code": "%"}}}]
    quality = record.quality
    if quality is None:
        return
    reasons = "; ".join(quality["reasons"]) or "none"
    obs["note"].append({"text": f"Sample quality: {quality['status']} (score "
                                f"{quality['score']}); reasons: {reasons}"})
    if record.withheld:
        obs.pop("valueQuantity", None)
        obs.pop("interpretation", None)
        obs["dataAbsentReason"] = {
            "coding": [{"system": DATA_ABSENT, "code": "error", "display": "Error"}],
            "text": f"Withheld: the sample does not look like the training data ({reasons})"}
