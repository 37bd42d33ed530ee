"""Training data: a Flow-RBC file's sets in memory, split, and re-subsampled every epoch.

Drawing a fresh random subset of S cells per patient each epoch is the paper's augmentation and
what makes a model trained on S = 256 cells use every cell it is given at inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingestion.flowrbc import FlowRBCFile


@dataclass
class SetData:
    """Full sets `cells [N, C, 2]` float32 with labels `[N]` and optional extras."""

    cells: np.ndarray  # [N, C, 2]
    labels: np.ndarray  # [N] hematocrit %
    oracle: np.ndarray | None = None  # [N] best achievable prediction (synthetic cohort only)
    condition: np.ndarray | None = None  # [N] condition code (synthetic cohort only)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, index: np.ndarray) -> SetData:
        pick = (lambda a: None if a is None else a[index])  # noqa: E731
        return SetData(self.cells[index], self.labels[index], pick(self.oracle),
                       pick(self.condition))


def load_split(path: str | Path, split: str, limit: int | None = None) -> SetData:
    """Read one split (`train` or `test`) into memory; `limit` keeps the first N sets."""
    with FlowRBCFile.open(path) as f:
        if split not in f.splits:
            raise ValueError(f"{path} has no {split!r} split (has {f.splits})")
        n = f.data(split).shape[0] if limit is None else min(limit, f.data(split).shape[0])
        labels = f.labels(split)
        if labels is None:
            raise ValueError(f"{path}: {split}_labels is missing; training needs labels")
        cells = f.data(split)[:n].astype(np.float32)
        oracle = f.extra(split, "oracle_hct")
        condition = f.extra(split, "condition")
    return SetData(cells, labels[:n].astype(np.float32),
                   None if oracle is None else oracle[:n].astype(np.float32),
                   None if condition is None else condition[:n])


def train_val_split(data: SetData, val_fraction: float, seed: int) -> tuple[SetData, SetData]:
    """Seeded patient-level split of the training sets."""
    order = np.random.default_rng(seed).permutation(len(data))
    n_val = max(1, round(len(data) * val_fraction))
    return data.take(np.sort(order[n_val:])), data.take(np.sort(order[:n_val]))


def random_subsets(cells: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A fresh random subset of `size` cells from every set: `[B, C, 2] -> [B, size, 2]`."""
    if size >= cells.shape[1]:
        return cells
    keys = rng.random((cells.shape[0], cells.shape[1]))  # [B, C]
    pick = np.argpartition(keys, size, axis=1)[:, :size]  # [B, size], uniform without replacement
    return np.take_along_axis(cells, pick[..., None], axis=1)


def normalisation_stats(data: SetData, sample_sets: int = 2000) -> dict[str, np.ndarray | float]:
    """Per-feature input mean/scale and label mean/scale from the training split."""
    cells = data.cells[:sample_sets].reshape(-1, 2).astype(np.float64)
    return {
        "input_mean": cells.mean(axis=0),
        "input_scale": cells.std(axis=0),
        "label_mean": float(data.labels.mean()),
        "label_scale": float(data.labels.std()),
    }
