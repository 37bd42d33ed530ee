"""The one code path from a validated cell set to a stored-ready prediction, shared by the
REST endpoints, batch jobs and `hct score`.

Steps: seeded subsample to the model's set size → ONNX model (directly for batches, through the
micro-batcher for single requests) → red-cell indices on all cells → baselines on the cells the
model saw → reference-range flag. `finish` works on a whole batch at once (vectorised baselines),
for jobs and for the micro-batcher's store stage alike.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from ingestion.batching import bucket_by_length, pad_sets, subsample
from ingestion.cells import CellSet
from ingestion.indices import red_cell_indices_many
from model.baselines import BaselineSet
from service.runtime import OnnxModel
from service.store import PredictionRecord

# Adult hematocrit reference ranges (%), by sex; unknown sex uses the union.
REFERENCE_RANGES: dict[str | None, tuple[float, float]] = {
    "F": (36.0, 46.0), "M": (41.0, 53.0), None: (36.0, 53.0)}
BASELINE_NAMES = ("population_mean", "cbc_indices", "moments", "analyzer_formula")


@dataclass(frozen=True)
class Scored:
    """A prediction with everything it is compared against."""

    cellset: CellSet
    hematocrit_pct: float
    n_cells_used: int
    indices: dict[str, float]
    baselines: dict[str, float | None]
    flag: str  # L | N | H
    reference_range: tuple[float, float]

    @property
    def residuals(self) -> dict[str, float] | None:
        """Prediction minus measured hematocrit, for the model and every baseline."""
        measured = self.cellset.lab.measured_hematocrit_pct
        if measured is None:
            return None
        out = {"model": self.hematocrit_pct - measured}
        out.update({k: v - measured for k, v in self.baselines.items() if v is not None})
        return out


def flag_for(value: float, sex: str | None) -> tuple[str, tuple[float, float]]:
    low, high = REFERENCE_RANGES.get(sex, REFERENCE_RANGES[None])
    return ("L" if value < low else "H" if value > high else "N"), (low, high)


class Scorer:
    """Model + baselines + set size from one bundle; stateless between calls."""

    @classmethod
    def for_model(cls, model: OnnxModel, requested_set_size: int) -> Scorer:
        """A scorer feeding at most `requested_set_size` cells, never more than the bundle's
        card says the model was built for (`cells_per_set`).
        """
        card_size = int(model.bundle.card.get("cells_per_set", requested_set_size))
        return cls(model, min(requested_set_size, card_size))

    def __init__(self, model: OnnxModel, set_size: int) -> None:
        self.model = model
        self.set_size = set_size
        self.baselines = BaselineSet.from_json(json.dumps(model.bundle.card["baselines"]))

    def select_cells(self, cellset: CellSet) -> np.ndarray:
        """The cells the model sees: at most `set_size`, the same subset for the same sample."""
        return subsample(cellset.cells(), self.set_size, cellset.sample_id)  # [n, 2]

    def score_many(self, cellsets: Sequence[CellSet], batch_size: int = 64) -> list[Scored]:
        """Score samples in length-bucketed batches (offline path: jobs and `hct score`)."""
        selected = [self.select_cells(cs) for cs in cellsets]
        values = np.empty(len(cellsets))
        lengths = np.array([s.shape[0] for s in selected])
        for index in bucket_by_length(lengths, batch_size):
            x, n = pad_sets([selected[i] for i in index])  # [b, S, 2], [b]
            values[index] = self.model.predict(x, n)
        return self.finish(cellsets, selected, values)

    def finish(self, cellsets: Sequence[CellSet], selected: Sequence[np.ndarray],
               values: np.ndarray) -> list[Scored]:
        """Indices, baselines and flags for model predictions `values [B]` of `cellsets`, whose
        model inputs were `selected` (from `select_cells`).
        """
        x, lengths = pad_sets(list(selected))
        rbc = np.array([np.nan if cs.lab.rbc_count_e12_per_l is None
                        else cs.lab.rbc_count_e12_per_l for cs in cellsets])
        base = self.baselines.predict(x, lengths, rbc=rbc)  # name -> [B]
        all_indices = red_cell_indices_many(cellsets)  # on every cell, not only those selected
        out = []
        for i, cs in enumerate(cellsets):
            baselines = {name: _finite(base[name][i]) if name in base else None
                         for name in BASELINE_NAMES}
            flag, ref = flag_for(float(values[i]), cs.lab.sex)
            indices = all_indices[i].as_dict()
            out.append(Scored(cs, float(values[i]), int(lengths[i]), indices, baselines, flag,
                              ref))
        return out

    def record(self, scored: Scored, *, prediction_id: str, created_at: datetime, source: str,
               job_id: str | None = None) -> PredictionRecord:
        """The row stored for a prediction, stamped with the model version and ONNX sha256."""
        cs = scored.cellset
        bundle = self.model.bundle
        return PredictionRecord(
            id=prediction_id, created_at=created_at, patient_id=cs.patient_id,
            sample_id=cs.sample_id, source=source, job_id=job_id,
            hematocrit_pct=scored.hematocrit_pct, flag=scored.flag, n_cells=cs.n_cells,
            n_cells_used=scored.n_cells_used, indices=scored.indices, baselines=scored.baselines,
            lab=lab_dict(cs), model_name=bundle.name, model_version=bundle.version,
            onnx_sha256=bundle.sha256, provider=self.model.provider)


def lab_dict(cellset: CellSet) -> dict[str, Any]:
    lab = cellset.lab
    return {"measured_hematocrit_pct": lab.measured_hematocrit_pct,
            "rbc_count_e12_per_l": lab.rbc_count_e12_per_l,
            "collected_at": None if lab.collected_at is None else lab.collected_at.isoformat(),
            "sex": lab.sex, "age_years": lab.age_years}


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
