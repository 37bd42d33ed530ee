"""`hct score` on one machine: offline batch scoring of a lab export through the service's own
`Predictor` (same subsampling, model, baselines and flags as a POST), written as CSV with the
same columns and values as the batch API's results.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ingestion.cells import CellSet
from ingestion.errors import SampleError
from ingestion.sources import iter_source
from service.prediction.mapper import csv_lines, error_row, result_row
from service.prediction.predictor import Predictor
from service.runtime.bundle import load_bundle
from service.runtime.onnx_model import OnnxModel
from service.settings import Settings


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
    predictor = Predictor.for_model(model, settings.set_size)
    counts = {"done": 0, "error": 0}
    start = time.monotonic()

    def rows() -> Iterator[dict[str, object]]:
        items = iter_source(source, min_cells=settings.min_cells, max_cells=settings.max_cells)
        for block in _chunks(items, batch_size):
            good = [(s, i) for s, i in block if isinstance(i, CellSet)]
            scored = dict(zip([s for s, _ in good],
                              predictor.predict_many([i for _, i in good], source="offline",
                                                     batch_size=batch_size), strict=True))
            for seq, item in block:
                if isinstance(item, SampleError):
                    counts["error"] += 1
                    yield error_row(seq, item.patient_id, item.sample_id, item.kind,
                                    item.message)
                else:
                    counts["done"] += 1
                    yield result_row(seq, scored[seq], stored=False)
            if progress:
                rate = (counts["done"] + counts["error"]) / max(time.monotonic() - start, 1e-9)
                sys.stderr.write(f"\rscored {counts['done']}, errors {counts['error']} "
                                 f"({rate:.0f} samples/s)")
                sys.stderr.flush()

    with out.open("w", newline="") as fh:
        for text in csv_lines(rows()):
            fh.write(text)
    if progress:
        sys.stderr.write("\n")
    return counts["done"], counts["error"]
