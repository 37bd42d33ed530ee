"""The model card (`card.json`): what a model bundle is, how it was made, how well it does and
what it is for. numpy-free and torch-free so the service can read it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CARD_SCHEMA_VERSION = 1
INTENDED_USE = (
    "Research only. Trained on the hct project's synthetic red-cell cohort, not on patient "
    "data; not validated for clinical use. Do not use for diagnosis or treatment decisions "
    "until trained and validated on real data."
)
INPUTS = {
    "cells": {"dtype": "float32", "shape": ["batch", "cells", 2],
              "features": ["volume_fl", "hemoglobin_pg"], "units": ["fL", "pg"]},
    "lengths": {"dtype": "int64", "shape": ["batch"],
                "meaning": "number of valid (non-padding) cells per set"},
}
OUTPUT = {"name": "hematocrit_pct", "dtype": "float32", "shape": ["batch"], "unit": "%"}
# The paper's Table 4 families by factory name, as reports and clinical messages spell them.
ARCHITECTURE_LABELS: dict[str, str] = {"deepsets": "Deep Sets", "deepsets_pp": "Deep Sets++",
                                       "set_transformer": "Set Transformer",
                                       "set_transformer_pp": "Set Transformer++"}
_CARD_PREFIX = "hct-"


def card_name(architecture: str) -> str:
    """The card's `name` for a factory architecture name: `set_transformer_pp` ->
    `hct-set-transformer-pp` (the bundled Deep Sets++ keeps its `hct-deepsets-pp`)."""
    return _CARD_PREFIX + architecture.replace("_", "-")


def architecture_label(model_name: str) -> str:
    """The family a card `name` stands for (`hct-set-transformer-pp` -> `Set Transformer++`),
    or the name itself for a card this scheme did not write."""
    key = model_name.removeprefix(_CARD_PREFIX).replace("-", "_")
    return ARCHITECTURE_LABELS.get(key, model_name)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_card(*, version: str, onnx_sha256: str, architecture: dict[str, Any],
               training: dict[str, Any], cells_per_set: int, metrics: dict[str, Any],
               baselines: dict[str, Any], reproduce: list[str],
               synthetic: bool = True) -> dict[str, Any]:
    """Assemble a card; `synthetic` marks training on the synthetic cohort (the default)."""
    return {
        "schema_version": CARD_SCHEMA_VERSION,
        "name": card_name(str(architecture["name"])),
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "onnx_sha256": onnx_sha256,
        "architecture": architecture,
        "training": training,
        "synthetic_training_data": synthetic,
        "intended_use": INTENDED_USE,
        "inputs": INPUTS,
        "output": OUTPUT,
        "cells_per_set": cells_per_set,
        "metrics": metrics,
        "baselines": baselines,
        "reproduce": reproduce,
    }


def write_card(card: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")


def read_card(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
