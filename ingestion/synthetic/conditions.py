"""The synthetic cohort's condition table: who is ill with what, and what that does to red cells.

Each condition sets a hospital-like prevalence, the red-cell hematocrit it leaves (before plasma
volume moves it), how newborn cells look (micro-, normo-, macrocytic; hypochromic; anisocytic)
and how much the plasma volume scatters. Ranges follow standard hematology references
(Williams Hematology; Wintrobe's Clinical Hematology); see docs/cohort.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import IntEnum

import numpy as np


class Condition(IntEnum):
    """Condition codes as stored in `<split>_condition`."""

    HEALTHY = 0
    INFLAMMATION = 1
    IRON_DEFICIENCY = 2
    BLOOD_LOSS = 3
    MACROCYTIC = 4
    THALASSEMIA_TRAIT = 5
    HEMOLYSIS = 6
    TRANSFUSION = 7
    ERYTHROCYTOSIS = 8


@dataclass(frozen=True)
class ConditionSpec:
    """What one condition does to a patient; volumes and CHC are multiples of the healthy ones."""

    name: str
    prevalence: float
    hct_female: float  # mean red-cell hematocrit (%) before plasma-volume changes
    hct_male: float
    hct_sd: float  # between-patient SD within the condition (%)
    volume_scale: float  # newborn mature cell volume x healthy
    chc_scale: float  # newborn hemoglobin concentration x healthy
    volume_cv_scale: float  # within-patient cell volume spread x healthy (anisocytosis)
    severity_volume: float  # relative change of newborn volume per unit of anemia severity
    severity_chc: float  # ... of newborn hemoglobin concentration
    severity_cv: float  # ... of the cell volume spread
    plasma_log_mean: float  # mean log plasma-volume factor on the label (+: hemoconcentration)
    plasma_log_sd: float  # SD of that factor: the part of the label no cell can see
    fragment_fraction: float  # fragmented cells (schistocytes, microcytic debris of the disease)


CONDITIONS: tuple[ConditionSpec, ...] = (
    # name, prevalence, Hct F, Hct M, SD | volume, CHC, CV | severity: volume, CHC, CV |
    # plasma log mean, SD | fragments
    ConditionSpec("healthy", 0.33, 39.5, 43.0, 2.0, 1.00, 1.00, 1.00, 0.0, 0.0, 0.0,
                  0.00, 0.065, 0.000),
    ConditionSpec("anemia_of_inflammation", 0.16, 36.0, 37.5, 2.8, 0.97, 0.98, 1.05,
                  -0.05, -0.03, 0.0, -0.01, 0.075, 0.000),
    ConditionSpec("iron_deficiency", 0.10, 34.5, 36.0, 3.2, 0.95, 0.97, 1.25, -0.20, -0.08, 0.3,
                  0.00, 0.070, 0.010),
    ConditionSpec("acute_blood_loss", 0.07, 0.0, 0.0, 0.0, 1.00, 1.00, 1.00, 0.0, 0.0, 0.0,
                  -0.02, 0.090, 0.000),
    ConditionSpec("macrocytic_b12_folate", 0.05, 34.5, 36.0, 3.2, 1.22, 1.00, 1.35, 0.12, 0.0,
                  0.2, 0.00, 0.070, 0.030),
    ConditionSpec("thalassemia_trait", 0.04, 37.0, 40.0, 2.2, 0.72, 0.96, 0.80, 0.0, 0.0, 0.0,
                  0.00, 0.065, 0.005),
    ConditionSpec("hemolysis", 0.05, 0.0, 0.0, 0.0, 1.02, 1.00, 1.05, 0.0, 0.0, 0.0,
                  0.00, 0.075, 0.010),
    ConditionSpec("recent_transfusion", 0.08, 0.0, 0.0, 0.0, 1.00, 1.00, 1.00, 0.0, 0.0, 0.0,
                  -0.01, 0.080, 0.000),
    ConditionSpec("erythrocytosis_hemoconcentration", 0.06, 43.5, 45.5, 2.5, 0.88, 0.97, 0.90,
                  0.0, 0.0, 0.0, 0.015, 0.080, 0.000),
)
"""Hct 0.0 marks conditions whose hematocrit comes from their own mechanism (bleed and
regeneration, hemolysis and marrow response, own cells plus donor units)."""


def prevalence() -> np.ndarray:
    """Condition probabilities `[C]`, in `Condition` order, summing to 1."""
    p = np.array([c.prevalence for c in CONDITIONS], dtype=np.float64)
    return p / p.sum()


def spec_column(field: str) -> np.ndarray:
    """One field of the table as a `[C]` array, to index with a `[B]` condition code array."""
    return np.array([getattr(c, field) for c in CONDITIONS], dtype=np.float64)


def condition_names() -> list[str]:
    """Names in code order (stored in the cohort file's attrs)."""
    return [c.name for c in CONDITIONS]


def table_as_dicts() -> list[dict[str, object]]:
    """The table as plain dicts, for the parameters JSON in the cohort's attrs."""
    return [asdict(c) for c in CONDITIONS]
