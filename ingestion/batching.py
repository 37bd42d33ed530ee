"""Subsampling and padding: from variable-size samples to the model's `[B, S, 2]` batches.

The same sample must always give the same subset (a re-scored sample gives the same answer),
so the subsampling seed is derived from the sample id, not from global random state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

DEFAULT_SET_SIZE = 1000


def sample_seed(sample_id: str, salt: int = 0) -> int:
    """A stable 64-bit seed from a sample id (sha256, so it is identical across processes)."""
    digest = hashlib.sha256(f"{salt}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def subsample(cells: np.ndarray, size: int, key: str, salt: int = 0) -> np.ndarray:
    """At most `size` cells of `cells [N, 2]`, chosen without replacement, seeded by `key`.

    Cells keep their original order, so the result is an ordered subset of the input.
    """
    if size <= 0:
        raise ValueError(f"size = {size}: must be > 0")
    n = cells.shape[0]
    if n <= size:
        return cells
    rng = np.random.default_rng(sample_seed(key, salt))
    keep = np.sort(rng.choice(n, size=size, replace=False))
    return cells[keep]


def pad_sets(
    sets: Sequence[np.ndarray], size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Stack `[n_i, 2]` sets into `x [B, S, 2]` float32 (zero padding) and `lengths [B]` int64.

    `size` defaults to the longest set; a set longer than `size` is an error (subsample first).
    """
    if not sets:
        raise ValueError("no sets to pad")
    lengths = np.array([s.shape[0] for s in sets], dtype=np.int64)  # [B]
    width = int(lengths.max()) if size is None else size
    if lengths.max() > width:
        raise ValueError(f"a set has {int(lengths.max())} cells: more than size = {width}")
    x = np.zeros((len(sets), width, 2), dtype=np.float32)  # [B, S, 2]
    for b, s in enumerate(sets):
        x[b, : s.shape[0]] = s
    return x, lengths


def bucket_by_length(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Group set indices of similar length into batches, so padding wastes little compute.

    Sorting by length then cutting into `batch_size` runs keeps each batch's padding to the
    spread of neighbouring lengths. Returns index arrays covering every set exactly once.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size = {batch_size}: must be > 0")
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, order.size, batch_size)]
