"""Length-aware grouping of one micro-batch: samples of different cell counts go to the model
in groups of similar length, so a 200-cell sample is not padded to 1,000 cells beside a long one.

The model's cost grows with padded cells (batch × longest set), not with real cells; grouping
keeps the padded total close to the real total at the price of a few more (smaller) calls.
"""

from __future__ import annotations

import numpy as np

MAX_PADDING_SHARE = 0.15  # a group's padded cells may be at most this share padding


def length_groups(lengths: np.ndarray, max_padding: float = MAX_PADDING_SHARE) -> list[np.ndarray]:
    """Index groups covering every set once, longest first, each padded at most `max_padding`.

    Sets are taken longest first; a set joins the current group while the group's padding
    (width × count − real cells) stays within `max_padding` of its padded size.
    """
    lengths = np.asarray(lengths, dtype=np.int64)  # [B]
    order = np.argsort(-lengths, kind="stable")  # longest first
    groups: list[np.ndarray] = []
    start, real = 0, 0
    for pos, i in enumerate(order):
        width = int(lengths[order[start]])
        count = pos - start + 1
        padded = width * count
        if pos > start and padded - (real + int(lengths[i])) > max_padding * padded:
            groups.append(order[start:pos])
            start, real = pos, 0
        real += int(lengths[i])
    groups.append(order[start:])
    return groups


def padded_cells(lengths: np.ndarray, groups: list[np.ndarray]) -> int:
    """Cells the model computes over for these groups (real plus padding)."""
    return sum(int(lengths[g].max()) * g.size for g in groups)


def split_by_cells(group: np.ndarray, lengths: np.ndarray, max_cells: int) -> list[np.ndarray]:
    """`group` (indices, longest first) cut into runs of at most `max_cells` real cells each
    (never fewer than one set per run)."""
    runs: list[np.ndarray] = []
    start, cells = 0, 0
    for pos, i in enumerate(group):
        n = int(lengths[i])
        if pos > start and cells + n > max_cells:
            runs.append(group[start:pos])
            start, cells = pos, 0
        cells += n
    runs.append(group[start:])
    return runs
