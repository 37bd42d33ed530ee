"""What the inference benchmark runs on: the model (checkpoint, bundle or random init) and the
cell sets it is timed and checked on.

Why a module of its own: choosing and loading the subject is independent of how it is timed;
keeping it here leaves `bench.inference` to the measuring itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Plausible training-set statistics for a random-init model, so raw fL/pg inputs land in the
# range the layers expect and outputs read as hematocrit %.
RANDOM_INIT_NORMALISATION = {"input_mean": (90.0, 29.7), "input_scale": (13.0, 4.5),
                             "label_mean": 42.0, "label_scale": 4.5}


@dataclass
class ModelSource:
    """What is benchmarked: an optional torch model and an ONNX file for the ORT side."""

    config: Any  # model.deepsets.ModelConfig
    torch_model: Any | None  # DeepSetsPP or None (bundle only)
    onnx_path: Path | None  # exported from torch when None
    description: str
    random_init: bool
    notes: list[str] = field(default_factory=list)


def realistic_sets(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """`[n, size, 2]` float32 cells (volume fL, hemoglobin pg) with per-patient MCV, MCHC and
    RDW spread, so predictions vary across sets as they would on real samples.
    """
    mcv = rng.normal(90.0, 6.0, (n, 1)).clip(65.0, 115.0)
    mchc = rng.normal(0.335, 0.012, (n, 1)).clip(0.28, 0.38)  # pg per fL
    rdw = rng.normal(0.13, 0.015, (n, 1)).clip(0.10, 0.20)
    volume = rng.normal(mcv, mcv * rdw, (n, size)).clip(30.0, 200.0)
    hemoglobin = volume * rng.normal(mchc, 0.02, (n, size)).clip(0.15, 0.5)
    return np.stack([volume, hemoglobin], axis=-1).astype(np.float32)


def load_test_sets(path: Path, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """First `limit` test sets and labels of a Flow-RBC file."""
    from ingestion.flowrbc import FlowRBCFile

    with FlowRBCFile.open(path) as f:
        if "test" not in f.splits:
            raise SystemExit(f"error: {path} has no test_data")
        labels = f.labels("test")
        if labels is None:
            raise SystemExit(f"error: {path} has no test_labels")
        cells = np.asarray(f.data("test")[:limit], dtype=np.float32)
    return cells, labels[: cells.shape[0]]



def random_model(config: Any, seed: int = 0) -> Any:
    """A random-init network (any architecture config) with plausible normalisation buffers
    (see the constant)."""
    import torch

    from model.factory import build_network, describe

    torch.manual_seed(seed)
    model = build_network(describe(config))
    n = RANDOM_INIT_NORMALISATION
    model.set_normalisation(torch.tensor(n["input_mean"]), torch.tensor(n["input_scale"]),
                            float(n["label_mean"]), float(n["label_scale"]))  # type: ignore[arg-type]
    return model.eval()


def load_source(checkpoint: Path | None, bundle: Path | None, preset: str | None,
                seed: int = 0) -> ModelSource:
    """Torch model from the checkpoint (or random init), ORT graph from the bundle if given."""
    from model.deepsets import PRESETS
    from model.factory import network_config

    notes: list[str] = []
    onnx_path = None
    bundle_config = None
    if bundle is not None:
        from service.runtime.bundle import load_bundle

        b = load_bundle(bundle)
        onnx_path = b.onnx_path
        arch = b.card.get("architecture", {})
        bundle_config = network_config(arch) if arch else None
        notes.append(f"ORT side: {b.onnx_path} (bundle {b.name} {b.version}, sha256 "
                     f"{b.sha256[:12]}).")
    if checkpoint is not None:
        from model.train import load_trained

        model, train_config = load_trained(checkpoint)
        if bundle_config is not None and bundle_config != model.config:
            notes.append("Warning: the bundle's architecture differs from the checkpoint's; "
                         "accuracy deltas then compare different models.")
        desc = f"checkpoint {checkpoint} (trained preset {train_config.preset})"
        if preset is not None and preset != train_config.preset:
            notes.append(f"--preset {preset} ignored: the checkpoint defines the architecture.")
        return ModelSource(model.config, model.eval(), onnx_path, desc, False, notes)
    if bundle is not None:
        if bundle_config is None:
            raise SystemExit(f"error: {bundle}/card.json has no architecture; cannot count FLOPs")
        return ModelSource(bundle_config, None, onnx_path, f"bundle {bundle}", False, notes)
    preset = preset or "cpu"
    if preset not in PRESETS:
        raise SystemExit(f"error: --preset {preset!r}: choose from {sorted(PRESETS)}")
    return random_source(PRESETS[preset], f"random-init preset '{preset}'", seed, notes)


def random_source(config: Any, description: str, seed: int = 0,
                  notes: list[str] | None = None) -> ModelSource:
    """A random-init model as the benchmark's subject (latency does not depend on weights)."""
    return ModelSource(config, random_model(config, seed), None, description, True,
                       list(notes or []))
