"""One block of read samples to result rows, shared by every offline engine (local and Ray):
scored samples become result rows, unreadable ones and a block the model fails on become
error rows, so one engine's output is the other's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ingestion.cells import CellSet
from ingestion.errors import SampleError
from service.prediction.mapper import error_row, result_row
from service.prediction.predictor import Predictor

log = logging.getLogger("hct.offline")


def score_block(predictor: Predictor, block: Sequence[tuple[int, CellSet | SampleError]], *,
                batch_size: int = 64) -> list[dict[str, object]]:
    """Result rows for `(seq, sample)` pairs, in order; `prediction_id` empty (not stored)."""
    good = [(s, i) for s, i in block if isinstance(i, CellSet)]
    failure = ""
    try:
        scored = dict(zip([s for s, _ in good],
                          predictor.predict_many([i for _, i in good], source="offline",
                                                 batch_size=batch_size), strict=True))
    except Exception as exc:  # the model failed on this block: its samples are errors
        log.exception("scoring a block of %d samples failed", len(good))
        scored, failure = {}, f"scoring failed: {exc}"
    rows = []
    for seq, item in block:
        if isinstance(item, SampleError):
            rows.append(error_row(seq, item.patient_id, item.sample_id, item.kind, item.message))
        elif seq in scored:
            rows.append(result_row(seq, scored[seq], stored=False))
        else:
            rows.append(error_row(seq, item.patient_id, item.sample_id, "scoring_failed",
                                  failure))
    return rows
