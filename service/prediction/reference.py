"""Adult hematocrit reference ranges and the L/N/H flag: the one place they are computed."""

from __future__ import annotations

# Adult hematocrit reference ranges (%), by sex; unknown sex uses the union.
REFERENCE_RANGES: dict[str | None, tuple[float, float]] = {
    "F": (36.0, 46.0), "M": (41.0, 53.0), None: (36.0, 53.0)}
RANGE_TEXT = {"F": "adult female", "M": "adult male", None: "adult, sex not given"}


def reference_range(sex: str | None) -> tuple[float, float]:
    """(low, high) % for an adult of this sex (`None`: not given)."""
    return REFERENCE_RANGES.get(sex, REFERENCE_RANGES[None])


def flag_for(value: float, sex: str | None) -> str:
    """L, N or H against the reference range."""
    low, high = reference_range(sex)
    return "L" if value < low else "H" if value > high else "N"
