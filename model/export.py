"""`hct export`: a trained checkpoint → a model bundle (`model.onnx` + `card.json`).

The bundle is everything the service needs: the ONNX graph (parity-checked against torch), the
baseline coefficients, the metrics, and the commands that reproduce it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from model.baselines import BaselineSet
from model.card import build_card, sha256_file, write_card
from model.deepsets import DeepSetsPP
from model.onnx_export import export_onnx


def write_bundle(model: DeepSetsPP, out_dir: str | Path, *, baselines: BaselineSet,
                 version: str, cells_per_set: int, training: dict[str, Any],
                 metrics: dict[str, Any], reproduce: list[str],
                 synthetic: bool = True) -> dict[str, Any]:
    """Export, parity-check and describe a model; returns the card written beside it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    parity = export_onnx(model, onnx_path)
    card = build_card(
        version=version, onnx_sha256=sha256_file(onnx_path),
        architecture={"name": "DeepSetsPP", **model.config.as_dict()},
        training={**training, "onnx_parity_max_abs_diff": parity},
        cells_per_set=cells_per_set, metrics=metrics,
        baselines=json.loads(baselines.to_json()), reproduce=reproduce, synthetic=synthetic)
    write_card(card, out / "card.json")
    return card
