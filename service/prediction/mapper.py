"""The one mapper from a `Prediction` to what leaves the service: the REST body, and the result
row shared by the batch API's CSV/JSON and `hct score` (same columns, same rounding), so every
surface shows the same numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from model.baselines import BASELINE_NAMES
from service.collection_time import stored_instant
from service.prediction.notice import NOTICE
from service.prediction.prediction import Prediction

# Per-sample result columns, in order, for batch results and `hct score`.
RESULT_COLUMNS: tuple[str, ...] = (
    "seq", "patient_id", "sample_id", "status", "prediction_id", "hematocrit_pct",
    "hematocrit_lower_pct", "hematocrit_upper_pct", "quality", "quality_score",
    "quality_reasons", "flag", *BASELINE_NAMES, "measured_hematocrit_pct", "n_cells",
    "n_cells_used", "mcv_fl", "rdw_cv_pct", "collected_at", "model_version", "onnx_sha256",
    "error_kind", "error_message")
VALUE_DECIMALS = 4  # hematocrit and baselines, %
INDEX_DECIMALS = 3  # MCV fL, RDW %
# OWASP: a cell starting with one of these is read as a formula by spreadsheet programs.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def rest_body(p: Prediction) -> dict[str, Any]:
    """The JSON body of `GET /v1/predictions/{id}` (and of the POST that created it)."""
    low, high = p.reference_range
    flag = None if p.withheld else p.flag
    return {
        "id": p.id, "created_at": p.created_at, "patient_id": p.patient_id,
        "sample_id": p.sample_id, "source": p.source,
        "hematocrit_pct": p.shown_hematocrit_pct, "unit": "%",
        "hematocrit_interval_pct": p.hematocrit_interval_pct, "quality": p.quality,
        "flag": flag, "outside_reference_range": None if flag is None else flag != "N",
        "reference_range": {"low": low, "high": high, "unit": "%"}, "n_cells": p.n_cells,
        "n_cells_used": p.n_cells_used, "indices": p.indices, "baselines": p.baselines,
        "lab": {**p.lab, "collected_at": collected_at(p)}, "residuals": p.residuals,
        "model": {"name": p.model_name, "version": p.model_version,
                  "onnx_sha256": p.onnx_sha256, "provider": p.provider},
        "job_id": p.job_id, "notice": NOTICE,
    }


def result_row(seq: int, p: Prediction, *, stored: bool = True) -> dict[str, Any]:
    """One scored sample as a result row (`prediction_id` empty when it was not stored)."""
    bounds = p.hematocrit_interval_pct
    return {
        "seq": seq, "patient_id": p.patient_id, "sample_id": p.sample_id, "status": "done",
        "prediction_id": p.id if stored else None,
        "hematocrit_pct": _round(p.shown_hematocrit_pct, VALUE_DECIMALS),
        "hematocrit_lower_pct": _round(bounds["lower"], VALUE_DECIMALS) if bounds else None,
        "hematocrit_upper_pct": _round(bounds["upper"], VALUE_DECIMALS) if bounds else None,
        "quality": p.quality_status, "quality_score": p.quality_score,
        "quality_reasons": "; ".join(p.quality_reasons) if p.quality_reasons else None,
        "flag": None if p.withheld else p.flag,
        **{name: _round(p.baselines.get(name), VALUE_DECIMALS) for name in BASELINE_NAMES},
        "measured_hematocrit_pct": p.measured_hematocrit_pct, "n_cells": p.n_cells,
        "n_cells_used": p.n_cells_used,
        "mcv_fl": _round(p.indices.get("mcv_fl"), INDEX_DECIMALS),
        "rdw_cv_pct": _round(p.indices.get("rdw_cv_pct"), INDEX_DECIMALS),
        "collected_at": collected_at(p), "model_version": p.model_version,
        "onnx_sha256": p.onnx_sha256,
        "error_kind": None, "error_message": None,
    }


def collected_at(p: Prediction) -> str | None:
    """The collection time as ISO 8601 with its offset (what every surface shows)."""
    instant = stored_instant(p.lab.get("collected_at"))
    return None if instant is None else instant.isoformat()


def error_row(seq: int, patient_id: str | None, sample_id: str | None, kind: str,
              message: str) -> dict[str, Any]:
    """One sample that could not be scored, as a result row."""
    row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
    row.update(seq=seq, patient_id=patient_id, sample_id=sample_id, status="error",
               error_kind=kind, error_message=message)
    return row


def csv_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, quoted with a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_lines(rows: Iterable[dict[str, Any]], flush_every: int = 200) -> Iterator[str]:
    """Result rows as CSV text (header first), in pieces of `flush_every` rows."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for i, row in enumerate(rows):
        writer.writerow({k: csv_safe(v) for k, v in row.items()})
        if i % flush_every == flush_every - 1:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _round(value: float | None, decimals: int) -> float | None:
    return None if value is None else round(float(value), decimals)
