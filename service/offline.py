"""`hct score`: offline batch scoring of a lab export through the service's own pipeline
(same subsampling, model, baselines and flags as a POST), written to CSV.
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ingestion.cells import CellSet
from ingestion.errors import SampleError
from ingestion.sources import iter_source
from service.pipeline import BASELINE_NAMES, Scored, Scorer
from service.runtime import OnnxModel, load_bundle
from service.settings import Settings

COLUMNS = ("seq", "patient_id", "sample_id", "status", "hematocrit_pct", "flag",
           *BASELINE_NAMES, "measured_hematocrit_pct", "n_cells", "n_cells_used", "mcv_fl",
           "rdw_cv_pct", "error_kind", "error_message", "model_version", "onnx_sha256")


def _chunks(items: Iterator[CellSet | SampleError], size: int) -> Iterator[list]:
    block: list = []
    for seq, item in enumerate(items):
        block.append((seq, item))
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block


def score_file(source: Path, out: Path, settings: Settings, *, progress: bool = True,
               batch_size: int = 64) -> tuple[int, int]:
    """Score every sample of `source` into `out` (CSV); returns (scored, errors)."""
    model = OnnxModel(load_bundle(settings.model_dir), settings.execution_provider)
    scorer = Scorer.for_model(model, settings.set_size)
    done = errors = 0
    start = time.monotonic()
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        items = iter_source(source, min_cells=settings.min_cells, max_cells=settings.max_cells)
        for block in _chunks(items, batch_size):
            good = [(s, i) for s, i in block if isinstance(i, CellSet)]
            scored = dict(zip([s for s, _ in good],
                              scorer.score_many([i for _, i in good], batch_size), strict=True))
            for seq, item in block:
                if isinstance(item, SampleError):
                    errors += 1
                    writer.writerow({"seq": seq, "patient_id": item.patient_id,
                                     "sample_id": item.sample_id, "status": "error",
                                     "error_kind": item.kind, "error_message": item.message})
                else:
                    done += 1
                    writer.writerow(_row(seq, scored[seq], model))
            if progress:
                rate = (done + errors) / max(time.monotonic() - start, 1e-9)
                sys.stderr.write(f"\rscored {done}, errors {errors} ({rate:.0f} samples/s)")
                sys.stderr.flush()
    if progress:
        sys.stderr.write("\n")
    return done, errors


def _row(seq: int, s: Scored, model: OnnxModel) -> dict[str, object]:
    cs = s.cellset
    return {"seq": seq, "patient_id": cs.patient_id, "sample_id": cs.sample_id,
            "status": "done", "hematocrit_pct": round(s.hematocrit_pct, 4), "flag": s.flag,
            **{k: None if v is None else round(v, 4) for k, v in s.baselines.items()},
            "measured_hematocrit_pct": cs.lab.measured_hematocrit_pct, "n_cells": cs.n_cells,
            "n_cells_used": s.n_cells_used, "mcv_fl": round(s.indices["mcv_fl"], 3),
            "rdw_cv_pct": round(s.indices["rdw_cv_pct"], 3),
            "model_version": model.bundle.version, "onnx_sha256": model.bundle.sha256}
