"""The one code path from validated cell sets to `Prediction`s, shared by the REST endpoints
(through the micro-batcher), batch jobs and `hct score`.

Steps: seeded subsample to the model's set size → pad once → ONNX model → red-cell indices on
all cells → baselines on the padded cells the model saw → reference-range flag → prediction
interval and sample-quality verdict from the numbers calibrated into the card (when it has
them). Everything after the model works on a whole batch at once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ingestion.batching import bucket_by_length, pad_sets, subsample
from ingestion.cells import CellSet
from ingestion.indices import RedCellIndices, indices_row, indices_table, red_cell_indices_many
from ingestion.moments import moments_table
from model.baselines import BASELINE_NAMES, BaselineSet, features_from_tables
from model.conformal import interval
from model.quality import assess
from service.prediction.packing import length_groups, split_by_cells
from service.prediction.prediction import Prediction
from service.prediction.reference import flag_for
from service.runtime.onnx_model import OnnxModel
from service.tenancy import DEFAULT_TENANT


@dataclass(frozen=True)
class ModelBatch:
    """One padded model call: its inputs (reused by the baselines) and its outputs."""

    cells: np.ndarray  # [B, S, 2] float32, zero padding
    lengths: np.ndarray  # [B] int64
    values: np.ndarray  # [B] hematocrit %


# Cells per model call on a CPU: measured with one onnxruntime thread (DS++, 1,000-cell sets),
# batches of 4-8 sets cost about half as much per set as batches of 32, whose activations
# spill the caches. On CUDA large calls are what keeps the device busy: no cap there.
CPU_CALL_CELLS = 8192


class Predictor:
    """Model + baselines + set size from one bundle; stateless between calls."""

    @classmethod
    def for_model(cls, model: OnnxModel, requested_set_size: int) -> Predictor:
        """A predictor feeding at most `requested_set_size` cells, never more than the bundle's
        card says the model was built for (`cells_per_set`).
        """
        card = model.bundle.card
        card_size = int(card.get("cells_per_set", requested_set_size))
        baselines = BaselineSet.from_json(json.dumps(card["baselines"]))
        return cls(model, min(requested_set_size, card_size), baselines,
                   conformal=card.get("conformal"), quality=card.get("quality"),
                   call_cells=CPU_CALL_CELLS if model.device == "cpu" else None)

    def __init__(self, model: OnnxModel, set_size: int, baselines: BaselineSet, *,
                 conformal: dict[str, Any] | None = None,
                 call_cells: int | None = None,
                 quality: dict[str, Any] | None = None) -> None:
        self.model = model
        self.set_size = set_size
        self.baselines = baselines
        self.conformal = conformal  # card["conformal"]: interval radii per measured band
        self.quality = quality  # card["quality"]: reference and thresholds of the verdict
        self.call_cells = call_cells  # at most this many real cells per model call (None: any)

    def with_model(self, model: OnnxModel) -> Predictor:
        """The same predictor on another session of the same bundle (e.g. other threading)."""
        return Predictor(model, self.set_size, self.baselines, conformal=self.conformal,
                         quality=self.quality, call_cells=self.call_cells)

    def select_cells(self, cellset: CellSet) -> np.ndarray:
        """The cells the model sees: at most `set_size`, the same subset for the same sample."""
        return subsample(cellset.cells(), self.set_size, cellset.sample_id)  # [n, 2]

    def run_model(self, selected: Sequence[np.ndarray], *,
                  by_length: bool = True) -> ModelBatch:
        """Pad the selected cells of a batch once and call the model: on groups of similar
        length (`by_length`, so short samples are not padded to the longest), or on all at once;
        each call holds at most `call_cells` real cells.
        """
        cells, lengths = pad_sets(list(selected))  # [B, S, 2], [B]
        groups = length_groups(lengths) if by_length else [np.arange(lengths.size)]
        if self.call_cells is not None:
            groups = [run for g in groups for run in split_by_cells(g, lengths, self.call_cells)]
        if len(groups) == 1:
            return ModelBatch(cells, lengths, self.model.predict(cells, lengths))
        values = np.empty(lengths.size, dtype=np.float64)  # [B]
        for group in groups:
            width = int(lengths[group].max())
            values[group] = self.model.predict(cells[group, :width], lengths[group])
        return ModelBatch(cells, lengths, values)

    def predict_many(self, cellsets: Sequence[CellSet], *, source: str,
                     job_id: str | None = None, batch_size: int = 64,
                     tenant: str = DEFAULT_TENANT) -> list[Prediction]:
        """Score samples in length-bucketed batches (offline path: jobs and `hct score`)."""
        if not cellsets:  # a block of only invalid samples: nothing to pad, nothing to run
            return []
        selected = [self.select_cells(cs) for cs in cellsets]
        lengths = np.array([s.shape[0] for s in selected])
        out: list[Prediction | None] = [None] * len(cellsets)
        created_at = datetime.now(UTC)
        for index in bucket_by_length(lengths, batch_size):
            batch = self.run_model([selected[i] for i in index])
            done = self.finish([cellsets[i] for i in index], batch,
                               sources=[source] * len(index), job_id=job_id,
                               created_at=created_at, tenants=[tenant] * len(index))
            for i, prediction in zip(index, done, strict=True):
                out[i] = prediction
        return [p for p in out if p is not None]

    def finish(self, cellsets: Sequence[CellSet], batch: ModelBatch, *,
               sources: Sequence[str], job_id: str | None = None,
               created_at: datetime | None = None,
               tenants: Sequence[str] | None = None) -> list[Prediction]:
        """Indices, baselines and flags for one model batch of `cellsets` (which arrived by
        `sources`, for `tenants`), as `Prediction`s with fresh ids, stamped with the model that
        made them.
        """
        created_at = created_at or datetime.now(UTC)
        rbc = np.array([np.nan if cs.lab.rbc_count_e12_per_l is None
                        else cs.lab.rbc_count_e12_per_l for cs in cellsets])
        table = indices_table(batch.cells, batch.lengths)  # name -> [B]: the cells the model saw
        features = features_from_tables(table, moments_table(batch.cells, batch.lengths))
        base = self.baselines.predict_features(features, rbc=rbc)  # name -> [B]
        all_indices = _indices_on_every_cell(cellsets, batch.lengths, table)
        trust = self._trust(cellsets, batch.values)
        bundle = self.model.bundle
        out = []
        for i, cs in enumerate(cellsets):
            value = float(batch.values[i])
            out.append(Prediction(
                id=str(uuid.uuid4()), created_at=created_at, patient_id=cs.patient_id,
                sample_id=cs.sample_id, source=sources[i], job_id=job_id, hematocrit_pct=value,
                flag=flag_for(value, cs.lab.sex), n_cells=cs.n_cells,
                n_cells_used=int(batch.lengths[i]), indices=all_indices[i].as_dict(),
                baselines={name: _finite(base[name][i]) if name in base else None
                           for name in BASELINE_NAMES},
                lab=cs.lab.as_dict(), model_name=bundle.name, model_version=bundle.version,
                onnx_sha256=self.model.graph.sha256, provider=self.model.recorded_provider,
                tenant=DEFAULT_TENANT if tenants is None else tenants[i], **trust[i]))
        return out

    def _trust(self, cellsets: Sequence[CellSet], values: np.ndarray) -> list[dict[str, Any]]:
        """Interval bounds and quality verdict per sample, as `Prediction` fields."""
        out: list[dict[str, Any]] = [{} for _ in cellsets]
        if self.conformal is not None:
            lower, upper = interval(values, self.conformal)  # [B], [B]
            level = float(self.conformal["level"])
            for i, row in enumerate(out):
                row.update(hematocrit_lower_pct=float(lower[i]),
                           hematocrit_upper_pct=float(upper[i]), interval_level=level)
        if self.quality is not None:
            verdicts = assess([cs.cells() for cs in cellsets], self.quality)  # all valid cells
            for row, v in zip(out, verdicts, strict=True):
                row.update(quality_status=v["status"], quality_score=float(v["score"]),
                           quality_reasons=list(v["reasons"]))
        return out


def _indices_on_every_cell(cellsets: Sequence[CellSet], lengths: np.ndarray,
                           table: dict[str, np.ndarray]) -> list[RedCellIndices]:
    """Indices on all of each sample's cells: the model batch's own table where the model saw
    every cell (no subsample), computed afresh only for the samples that were subsampled."""
    out: list[RedCellIndices | None] = [
        indices_row(table, i, cs.n_cells) if int(lengths[i]) == cs.n_cells else None
        for i, cs in enumerate(cellsets)]
    todo = [i for i, r in enumerate(out) if r is None]
    for i, r in zip(todo, red_cell_indices_many([cellsets[i] for i in todo]), strict=True):
        out[i] = r
    return [r for r in out if r is not None]


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
