"""`Prediction`: one scored sample with everything it is compared against and stamped with the
model that made it. The same value is stored, read back and shown on every surface.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.prediction.reference import reference_range
from service.tenancy import DEFAULT_TENANT


@dataclass(frozen=True)
class Prediction:
    """A stored prediction; mirrors the `predictions` table."""

    id: str
    created_at: datetime
    patient_id: str
    sample_id: str
    source: str  # api | fcs | batch
    job_id: str | None
    hematocrit_pct: float
    flag: str  # L | N | H
    n_cells: int
    n_cells_used: int
    indices: dict[str, float]
    baselines: dict[str, float | None]
    lab: dict[str, Any]  # LabValues.as_dict()
    model_name: str
    model_version: str
    onnx_sha256: str
    provider: str
    tenant: str = DEFAULT_TENANT  # whose it is: reads by other tenants do not see it
    hematocrit_lower_pct: float | None = None
    hematocrit_upper_pct: float | None = None
    interval_level: float | None = None
    quality_status: str | None = None  # ok | warn | withheld
    quality_score: float | None = None
    quality_reasons: list[str] | None = None

    @property
    def withheld(self) -> bool:
        """The verdict withholds the value: every surface shows the reasons instead."""
        return self.quality_status == "withheld"

    @property
    def shown_hematocrit_pct(self) -> float | None:
        """The value surfaces show: none when the quality verdict withholds it."""
        return None if self.withheld else self.hematocrit_pct

    @property
    def hematocrit_interval_pct(self) -> dict[str, float] | None:
        """`{"lower", "upper", "level"}`, or None (no calibration, or withheld)."""
        if self.hematocrit_lower_pct is None or self.hematocrit_upper_pct is None or \
                self.withheld:
            return None
        return {"lower": self.hematocrit_lower_pct, "upper": self.hematocrit_upper_pct,
                "level": float(self.interval_level or 0.0)}

    @property
    def quality(self) -> dict[str, Any] | None:
        """`{"status", "score", "reasons"}`, or None for a bundle without a quality reference."""
        if self.quality_status is None:
            return None
        return {"status": self.quality_status, "score": self.quality_score,
                "reasons": list(self.quality_reasons or [])}

    @property
    def sex(self) -> str | None:
        return self.lab.get("sex")

    @property
    def reference_range(self) -> tuple[float, float]:
        return reference_range(self.sex)

    @property
    def measured_hematocrit_pct(self) -> float | None:
        return self.lab.get("measured_hematocrit_pct")

    @property
    def residuals(self) -> dict[str, float] | None:
        """Prediction minus measured hematocrit, for the model and every baseline."""
        measured = self.measured_hematocrit_pct
        if measured is None:
            return None
        out = {} if self.withheld else {"model": self.hematocrit_pct - measured}
        out.update({k: v - measured for k, v in self.baselines.items() if v is not None})
        return out
