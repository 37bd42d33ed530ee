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
from model.factory import architecture_of
from model.onnx_export import export_onnx
from model.set_regressor import SetRegressor


def training_section(config: Any, data_path: str | Path) -> dict[str, Any]:
    """The card's `training` section: the run's config and the cohort it was trained on.

    `config` is the checkpoint's `TrainConfig`; `data_path` the Flow-RBC file it read.
    """
    from ingestion.flowrbc import FlowRBCFile

    data_path = Path(data_path)
    with FlowRBCFile.open(data_path) as f:
        cohort = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in f.attrs.items()}
        sizes = {s: int(f.data(s).shape[0]) for s in f.splits}
    return {"preset": config.preset, "arch": config.arch, "config": config.as_dict(),
            "data": {"file": data_path.name, "sets": sizes, "cohort": cohort,
                     "synthetic": True}}


def write_bundle(model: SetRegressor, out_dir: str | Path, *, baselines: BaselineSet,
                 version: str, cells_per_set: int, training: dict[str, Any],
                 metrics: dict[str, Any], reproduce: list[str],
                 synthetic: bool = True, architecture: str | None = None) -> dict[str, Any]:
    """Export, parity-check and describe a model; returns the card written beside it.

    `architecture` is the factory name for the card (inferred from the model when None).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    parity = export_onnx(model, onnx_path)
    card = build_card(
        version=version, onnx_sha256=sha256_file(onnx_path),
        architecture=architecture_of(model, architecture),
        training={**training, "onnx_parity_max_abs_diff": parity},
        cells_per_set=cells_per_set, metrics=metrics,
        baselines=json.loads(baselines.to_json()), reproduce=reproduce, synthetic=synthetic)
    write_card(card, out / "card.json")
    return card
