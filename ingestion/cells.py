"""`CellSet`: one blood sample's red cells plus the lab values that travel with it.

Validation happens once, at construction, so every later stage (indices, batching, the model,
the service) can rely on finite, physiological, equally long arrays. The caller's arrays are
copied, never mutated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np

from ingestion.errors import IngestionError

DEFAULT_MIN_CELLS = 200
MAX_ID_LENGTH = 128
VOLUME_RANGE_FL = (0.0, 300.0)  # open below, closed above: (0, 300]
HEMOGLOBIN_RANGE_PG = (0.0, 100.0)  # (0, 100]

Sex = Literal["F", "M"]


@dataclass(frozen=True)
class Bound:
    """An accepted range for a lab value: (low, high], or [low, high] when `low_open` is False."""

    low: float
    high: float
    low_open: bool = True


# The one place lab-value bounds live: validation here, the API schema and the FCS form read it.
LAB_BOUNDS: dict[str, Bound] = {
    "measured_hematocrit_pct": Bound(0.0, 100.0),
    "rbc_count_e12_per_l": Bound(0.0, 20.0),
    "age_years": Bound(0.0, 130.0, low_open=False),
}


class CellValidationError(IngestionError):
    """A cell set breaks one of the validation rules; `field` names where."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, kind="validation", field=field)


@dataclass(frozen=True)
class LabValues:
    """Per-sample laboratory values that may accompany the cells (all optional)."""

    measured_hematocrit_pct: float | None = None
    rbc_count_e12_per_l: float | None = None
    collected_at: datetime | None = None
    sex: Sex | None = None
    age_years: float | None = None

    def __post_init__(self) -> None:
        for name, bound in LAB_BOUNDS.items():
            _check_optional_range(name, getattr(self, name), bound.low, bound.high,
                                  low_open=bound.low_open)
        if self.sex is not None and self.sex not in ("F", "M"):
            raise CellValidationError(f"sex = {self.sex!r}: must be 'F' or 'M'", field="sex")

    def as_dict(self) -> dict[str, float | str | None]:
        """JSON-ready values (time as ISO 8601): how lab values are stored and sent."""
        return {"measured_hematocrit_pct": self.measured_hematocrit_pct,
                "rbc_count_e12_per_l": self.rbc_count_e12_per_l,
                "collected_at": None if self.collected_at is None
                else self.collected_at.isoformat(),
                "sex": self.sex, "age_years": self.age_years}

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> LabValues:
        """The inverse of `as_dict` (validated again)."""
        collected = values.get("collected_at")
        return cls(measured_hematocrit_pct=values.get("measured_hematocrit_pct"),  # type: ignore[arg-type]
                   rbc_count_e12_per_l=values.get("rbc_count_e12_per_l"),  # type: ignore[arg-type]
                   collected_at=datetime.fromisoformat(collected)
                   if isinstance(collected, str) and collected else None,
                   sex=values.get("sex"),  # type: ignore[arg-type]
                   age_years=values.get("age_years"))  # type: ignore[arg-type]


@dataclass(frozen=True)
class CellSet:
    """One sample: ids, per-cell volume (fL) and hemoglobin (pg), optional lab values.

    Arrays are float32, read-only copies with one value per cell.
    """

    patient_id: str
    sample_id: str
    volume_fl: np.ndarray  # [N] float32
    hemoglobin_pg: np.ndarray  # [N] float32
    lab: LabValues = field(default_factory=LabValues)
    min_cells: InitVar[int] = DEFAULT_MIN_CELLS

    def __post_init__(self, min_cells: int) -> None:
        check_id("patient_id", self.patient_id)
        check_id("sample_id", self.sample_id)
        volume = _as_cells("volume_fl", self.volume_fl)
        hemoglobin = _as_cells("hemoglobin_pg", self.hemoglobin_pg)
        if volume.shape != hemoglobin.shape:
            raise CellValidationError(
                f"volume_fl has {volume.size} values but hemoglobin_pg has {hemoglobin.size}: "
                "must be one value per cell in each",
                field="hemoglobin_pg",
            )
        if volume.size < min_cells:
            raise CellValidationError(
                f"volume_fl has {volume.size} cells: at least {min_cells} are required",
                field="volume_fl",
            )
        _check_not_swapped(volume, hemoglobin)
        _check_cell_range("volume_fl", volume, VOLUME_RANGE_FL, "fL")
        _check_cell_range("hemoglobin_pg", hemoglobin, HEMOGLOBIN_RANGE_PG, "pg")
        object.__setattr__(self, "volume_fl", _frozen_float32(volume))
        object.__setattr__(self, "hemoglobin_pg", _frozen_float32(hemoglobin))

    @property
    def n_cells(self) -> int:
        return int(self.volume_fl.size)

    def cells(self) -> np.ndarray:
        """Cells as one `[N, 2]` float32 array: feature 0 volume (fL), 1 hemoglobin (pg)."""
        return np.stack([self.volume_fl, self.hemoglobin_pg], axis=1)


def check_id(name: str, value: object, shown: Callable[[object], str] = repr) -> None:
    """A patient or sample id's rules; `shown` is how a message quotes the value (a reader of
    untrusted bytes may cut it short)."""
    if not isinstance(value, str) or not value.strip():
        raise CellValidationError(f"{name} = {shown(value)}: must be a non-empty string",
                                  field=name)
    if len(value) > MAX_ID_LENGTH:
        raise CellValidationError(
            f"{name} has {len(value)} characters: must be at most {MAX_ID_LENGTH}", field=name
        )
    if any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in value):  # Unicode Cc
        raise CellValidationError(f"{name} = {shown(value)}: must not contain control "
                                  "characters", field=name)


def _as_cells(name: str, values: object) -> np.ndarray:
    """Copy to a 1-D float64 array (never a view of the caller's data), checked finite.

    Range checks run on this float64 copy, so a huge value is reported as itself rather than
    overflowing to inf in float32 first.
    """
    try:
        arr = np.array(values, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise CellValidationError(
            f"{name}: must be a list of numbers ({exc})", field=name
        ) from None
    if arr.ndim != 1:
        raise CellValidationError(
            f"{name} has shape {list(arr.shape)}: must be one value per cell (1-D)", field=name
        )
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raise CellValidationError(
            f"{name}[{i}] = {arr[i]}: must be a finite number ({bad.size} non-finite values)",
            field=f"{name}[{i}]",
        )
    return arr


def _check_not_swapped(volume: np.ndarray, hemoglobin: np.ndarray) -> None:
    """A red cell's volume in fL is about three times its hemoglobin in pg (MCHC ≈ 33 g/dL), so
    a sample whose typical hemoglobin exceeds its typical volume has its channels swapped: say
    so, rather than blame whichever single cell first leaves a range."""
    v, h = float(np.median(volume)), float(np.median(hemoglobin))
    if h > v:
        raise CellValidationError(
            f"volume_fl and hemoglobin_pg look swapped: median hemoglobin {h:.1f} pg is above "
            f"median volume {v:.1f} fL, but a red cell's volume in fL is about 3 times its "
            "hemoglobin in pg; check the channel order", field="hemoglobin_pg")


def _frozen_float32(arr: np.ndarray) -> np.ndarray:
    out = arr.astype(np.float32)
    out.flags.writeable = False
    return out


def _check_cell_range(name: str, arr: np.ndarray, bounds: tuple[float, float], unit: str) -> None:
    lo, hi = bounds
    bad = np.flatnonzero((arr <= lo) | (arr > hi))
    if bad.size:
        i = int(bad[0])
        raise CellValidationError(
            f"{name}[{i}] = {float(arr[i]):g}: must be in ({lo:g}, {hi:g}] {unit} "
            f"({bad.size} of {arr.size} cells out of range)",
            field=f"{name}[{i}]",
        )


def _check_optional_range(
    name: str, value: float | None, lo: float, hi: float, *, low_open: bool = True
) -> None:
    if value is None:
        return
    if not isinstance(value, int | float) or not np.isfinite(value):
        raise CellValidationError(f"{name} = {value!r}: must be a finite number", field=name)
    if (value <= lo if low_open else value < lo) or value > hi:
        bracket = "(" if low_open else "["
        raise CellValidationError(
            f"{name} = {value:g}: must be in {bracket}{lo:g}, {hi:g}]", field=name
        )
