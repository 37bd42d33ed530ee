"""API models (pydantic): the contract at the HTTP edge. Inside, data travels as `CellSet`
and dataclasses; these classes only describe what goes over the wire.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ingestion.cells import LAB_BOUNDS
from service.prediction.notice import NOTICE

_HCT, _RBC, _AGE = (LAB_BOUNDS[k] for k in ("measured_hematocrit_pct", "rbc_count_e12_per_l",
                                            "age_years"))
# A JSON number, never a string that looks like one ("89.84"): a lab system sending strings has
# a mapping bug worth hearing about. Integers are still numbers.
Number = Annotated[float, Field(strict=True)]


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code")
    message: str = Field(description="What was wrong and what was expected")
    field: str | None = Field(None, description="The offending field, e.g. body.volume_fl[17]")


class ErrorResponse(BaseModel):
    error: ErrorBody


class LabValuesIn(BaseModel):
    measured_hematocrit_pct: Number | None = Field(None, gt=_HCT.low, le=_HCT.high)
    rbc_count_e12_per_l: Number | None = Field(None, gt=_RBC.low, le=_RBC.high)
    collected_at: datetime | None = None
    sex: Literal["F", "M"] | None = None
    age_years: Number | None = Field(None, ge=_AGE.low, le=_AGE.high)


class PredictionRequest(LabValuesIn):
    """One sample's cells: either two parallel arrays or `cells: [[volume, hemoglobin], …]`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "patient_id": "P-0001", "sample_id": "S-0001",
        "volume_fl": [88.1, 91.3, 79.4], "hemoglobin_pg": [29.0, 30.2, 26.1],
        "measured_hematocrit_pct": 41.0, "rbc_count_e12_per_l": 4.6, "sex": "F"}})

    patient_id: str = Field(min_length=1, max_length=128)
    sample_id: str = Field(min_length=1, max_length=128)
    volume_fl: list[Number] | None = Field(None, description="Per-cell volume, fL")
    hemoglobin_pg: list[Number] | None = Field(None, description="Per-cell hemoglobin, pg")
    cells: list[tuple[Number, Number]] | None = Field(
        None, description="Per-cell [volume fL, hemoglobin pg] pairs (instead of the arrays)")

    @model_validator(mode="after")
    def _one_cell_form(self) -> PredictionRequest:
        arrays = self.volume_fl is not None or self.hemoglobin_pg is not None
        if arrays and self.cells is not None:
            raise ValueError("give either volume_fl + hemoglobin_pg or cells, not both")
        if not arrays and self.cells is None:
            raise ValueError("volume_fl and hemoglobin_pg (or cells) are required")
        if arrays and (self.volume_fl is None or self.hemoglobin_pg is None):
            missing = "hemoglobin_pg" if self.hemoglobin_pg is None else "volume_fl"
            raise ValueError(f"{missing} is required together with the other cell array")
        return self


class ReferenceRange(BaseModel):
    low: float
    high: float
    unit: Literal["%"] = "%"


class ModelRef(BaseModel):
    name: str
    version: str
    onnx_sha256: str
    provider: str


class PredictionInterval(BaseModel):
    lower: float = Field(description="Lower bound, %")
    upper: float = Field(description="Upper bound, %")
    level: float = Field(description="Nominal coverage, e.g. 0.9 (split conformal)")


class QualityVerdict(BaseModel):
    status: Literal["ok", "warn", "withheld"] = Field(
        description="withheld: the value is not given (reasons instead)")
    score: float | None = Field(description="Distance from the training reference; >= 1 warns")
    reasons: list[str] = Field(description="What looks wrong and the likely cause")


class PredictionResponse(BaseModel):
    id: str
    created_at: datetime
    patient_id: str
    sample_id: str
    source: str
    hematocrit_pct: float | None = Field(
        description="Model estimate of hematocrit, %; null when the quality verdict withholds it")
    unit: Literal["%"] = "%"
    hematocrit_interval_pct: PredictionInterval | None = Field(
        None, description="Prediction interval (null without calibration or when withheld)")
    quality: QualityVerdict | None = Field(
        None, description="Sample-quality verdict against the training reference")
    flag: Literal["L", "N", "H"] | None = Field(
        description="Against the adult reference range (null when withheld)")
    outside_reference_range: bool | None
    reference_range: ReferenceRange
    n_cells: int
    n_cells_used: int = Field(description="Cells the model read (seeded subsample)")
    indices: dict[str, float] = Field(description="CBC red-cell indices from all cells")
    baselines: dict[str, float | None] = Field(
        description="Clinical baselines; analyzer_formula needs rbc_count_e12_per_l")
    lab: dict[str, Any]
    residuals: dict[str, float] | None = Field(
        None, description="Prediction minus measured hematocrit, when one was supplied")
    model: ModelRef
    job_id: str | None = None
    notice: str = NOTICE


class PredictionPage(BaseModel):
    items: list[PredictionResponse]
    total: int
    limit: int
    offset: int


class BatchCreated(BaseModel):
    id: str
    status: str
    links: dict[str, str]


class BatchStatus(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    filename: str
    created_at: datetime
    updated_at: datetime
    total: int | None = Field(description="Samples in the upload (known once it is read)")
    done: int
    errors: int
    error: str | None = Field(None, description="Why the whole job failed, if it did")
    links: dict[str, str]
