"""One validated prediction body → `CellSet`, shared by the single and the bulk route so a
sample gets the same checks, and the same error (code, field, message), on both.
"""

from __future__ import annotations

from datetime import tzinfo

from ingestion.cells import CellSet, LabValues
from ingestion.errors import IngestionError
from service.api.errors import ApiError
from service.api.schemas import PredictionRequest
from service.collection_time import aware


def check_cell_count(n: int, limit: int, field: str) -> None:
    """More cells than `HCT_MAX_CELLS` in one sample: a 422 naming the field."""
    if n > limit:
        raise ApiError(422, "too_many_cells", f"{field} has {n} cells: at most {limit} per "
                       "sample (HCT_MAX_CELLS)", f"body.{field}")


def cellset_from_request(body: PredictionRequest, *, max_cells: int, min_cells: int,
                         zone: tzinfo) -> CellSet:
    """The sample a validated body describes (raises `ApiError` / `IngestionError`); a
    `collected_at` without an offset is read in `zone` (`HCT_LOCAL_TIMEZONE`)."""
    if body.cells is not None:
        volume = [c[0] for c in body.cells]
        hemoglobin = [c[1] for c in body.cells]
        names = ("cells", "cells")
    else:
        volume, hemoglobin = body.volume_fl, body.hemoglobin_pg  # type: ignore[assignment]
        names = ("volume_fl", "hemoglobin_pg")
    check_cell_count(len(volume), max_cells, names[0])
    lab = LabValues(measured_hematocrit_pct=body.measured_hematocrit_pct,
                    rbc_count_e12_per_l=body.rbc_count_e12_per_l,
                    collected_at=None if body.collected_at is None
                    else aware(body.collected_at, zone),
                    sex=body.sex, age_years=body.age_years)
    try:
        return CellSet(body.patient_id, body.sample_id, volume, hemoglobin, lab=lab,
                       min_cells=min_cells)
    except IngestionError as exc:
        if body.cells is not None and exc.field:  # name the field the caller actually sent
            exc.field = exc.field.replace("volume_fl[", "cells[").replace(
                "hemoglobin_pg[", "cells[")
        raise
