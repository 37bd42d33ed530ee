"""What every offline engine (local and Ray) shares, so one engine's output is the other's:
the model opened the one way (`offline_predictor`: the same bundle files, precision rule and
set size as the service) and one block of read samples to result rows (scored samples become
result rows, unreadable ones and a block the model fails on become error rows).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ingestion.cells import CellSet
from ingestion.errors import SampleError
from service.prediction.mapper import error_row, result_row
from service.prediction.predictor import Predictor
from service.runtime.bundle import load_bundle
from service.runtime.onnx_model import OnnxModel
from service.runtime.precision import int8_section

log = logging.getLogger("hct.offline")


def bundle_files(model_dir: str | Path) -> list[str]:
    """The files of a bundle a scorer needs: the card, the fp32 graph and the int8 variant the
    card names (when shipped), so a copy elsewhere chooses its graph as the folder would."""
    bundle = load_bundle(model_dir)
    names = ["card.json", bundle.onnx_path.name]
    variant = int8_section(bundle)
    if variant is not None and (Path(model_dir) / str(variant.get("file", ""))).is_file():
        names.append(str(variant["file"]))
    return names


def offline_predictor(model_dir: str | Path, *, provider: str, precision: str, set_size: int,
                      intra_op_threads: int = 0) -> Predictor:
    """The predictor an offline engine scores with: the bundle verified, its graph chosen by
    `HCT_MODEL_PRECISION` and the host checks as the service chooses it, the service's set
    size. Plain arguments, not `Settings`: Ray ships them to its actors, secrets stay home."""
    model = OnnxModel(load_bundle(model_dir), provider, intra_op_threads=intra_op_threads,
                      precision=precision)
    return Predictor.for_model(model, set_size)


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
