"""Fit a bundle's trust calibration (conformal interval, sample-quality thresholds, monitoring
reference) on a cohort of patients the model never trained on, and store it in card.json.

The ONNX file is run as shipped (onnxruntime, CPU) and never rewritten: card.json holds its
sha256, so adding sections to the card leaves the bundle verifiable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ingestion.flowrbc import FlowRBCFile
from ingestion.indices import indices_table
from model.card import read_card, sha256_file, write_card
from model.conformal import DEFAULT_BAND_LEVEL, DEFAULT_LEVEL, fit_conformal
from model.quality import distances, features_many, fit_quality

MONITOR_FEATURES = ("mcv_fl", "mchc_g_dl", "rdw_cv_pct")
_QUANTILES = np.linspace(0.0, 1.0, 101)


def onnx_predict(onnx_path: str | Path, cells: np.ndarray, batch_size: int = 64,
                 threads: int = 1) -> np.ndarray:
    """Predictions `[N]` of full sets `cells [N, S, 2]` with onnxruntime on CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    out = []
    for start in range(0, cells.shape[0], batch_size):
        x = np.ascontiguousarray(cells[start:start + batch_size], dtype=np.float32)  # [b, S, 2]
        lengths = np.full(x.shape[0], x.shape[1], dtype=np.int64)
        out.append(session.run(["hematocrit_pct"], {"cells": x, "lengths": lengths})[0])
    return np.concatenate(out).astype(np.float64)


def read_cohort(path: str | Path, limit: int | None = None) -> dict[str, np.ndarray]:
    """Cells, measured hematocrit and sex of every patient in both splits (ids not needed)."""
    with FlowRBCFile.open(path) as f:
        cells = np.concatenate([np.asarray(f.data(s)) for s in f.splits])
        labels = np.concatenate([np.asarray(f.labels(s)) for s in f.splits])
        sexes = [f.extra(s, "sex") for s in f.splits]
    male = (np.concatenate([np.asarray(s) == b"M" for s in sexes])
            if all(s is not None for s in sexes) else None)
    n = cells.shape[0] if limit is None else min(limit, cells.shape[0])
    return {"cells": cells[:n].astype(np.float32), "hct": labels[:n].astype(np.float64),
            "male": None if male is None else male[:n]}


def calibrate_bundle(bundle_dir: str | Path, cohort_path: str | Path, *,
                     level: float = DEFAULT_LEVEL, band_level: float = DEFAULT_BAND_LEVEL,
                     limit: int | None = None, reproduce: str | None = None) -> dict[str, Any]:
    """Fit and write `conformal`, `quality` and `monitoring` into `bundle_dir/card.json`."""
    bundle_dir = Path(bundle_dir)
    card_path, onnx_path = bundle_dir / "card.json", bundle_dir / "model.onnx"
    card = read_card(card_path)
    if sha256_file(onnx_path) != card.get("onnx_sha256"):
        raise ValueError(f"{onnx_path}: sha256 does not match card.json; refusing to calibrate")
    cohort = read_cohort(cohort_path, limit)
    cells, hct = cohort["cells"], cohort["hct"]
    cells_per_set = int(card.get("cells_per_set", cells.shape[1]))
    model_cells = cells[:, :cells_per_set]  # cohort cells are in random order: a random subset
    predicted = onnx_predict(onnx_path, model_cells)
    conformal = fit_conformal(hct, predicted, level=level, band_level=band_level)
    conformal["calibration_cohort"] = _cohort_note(cohort_path)

    feats = features_many(list(cells))  # [N, F] on every cell of the sample
    half = feats.shape[0] // 2
    quality = fit_quality(feats[:half], feats[half:], cells_per_set=cells_per_set)
    quality["calibration_cohort"] = conformal["calibration_cohort"]

    table = indices_table(cells, np.full(cells.shape[0], cells.shape[1]))
    values = {k: table[k] for k in MONITOR_FEATURES}
    values["quality_score"] = distances(feats, quality) / quality["warn_distance"]
    monitoring = {"reference_quantiles": {k: np.quantile(v, _QUANTILES).tolist()
                                          for k, v in values.items()},
                  "residual_sd": float(np.std(hct - predicted)),
                  "n_reference": int(cells.shape[0])}

    card["conformal"] = conformal
    card["quality"] = quality
    card["monitoring"] = monitoring
    if reproduce:
        card["reproduce"] = [*[r for r in card.get("reproduce", []) if r != reproduce], reproduce]
    write_card(card, card_path)
    return {"conformal": conformal, "quality": quality, "monitoring": monitoring,
            "mse": float(np.mean((predicted - hct) ** 2)), "n": int(hct.size)}


def _cohort_note(path: str | Path) -> dict[str, Any]:
    with FlowRBCFile.open(path) as f:
        attrs = dict(f.attrs)
    keep = ("generator", "generator_version", "seed", "n_patients", "cells_per_set", "synthetic")
    return {k: json.loads(json.dumps(attrs[k], default=_plain)) for k in keep if k in attrs}


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else str(x)
