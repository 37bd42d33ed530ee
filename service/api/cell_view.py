"""What the web page draws for one sample: a bounded, seeded subsample of its cells, histograms
of volume and hemoglobin, and the red-cell indices, plus a reference cloud from the synthetic
training cohort. Nothing here is stored.

The page asks the service rather than parsing FCS in the browser so that the cells drawn are the
ones the same reader (`ingestion.fcs`: channel names, byte order, `$PnR` masking, FCS 2.0/3.x)
gave the model: a second parser in JavaScript could disagree with what was scored.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from ingestion.batching import subsample
from ingestion.cells import CellSet
from ingestion.indices import red_cell_indices

MAX_POINTS = 2000  # per scatter: enough to see the shape, small enough to draw instantly
BINS = 60
VOLUME_RANGE_FL = (20.0, 180.0)
HEMOGLOBIN_RANGE_PG = (5.0, 60.0)
REFERENCE_SEED = 0  # the seed of the bundled model's synthetic training cohort


def _histogram(values: np.ndarray, limits: tuple[float, float]) -> dict[str, list[float]]:
    counts, edges = np.histogram(np.clip(values, *limits), bins=BINS, range=limits)
    return {"edges": [round(float(e), 3) for e in edges], "counts": counts.tolist()}


def _points(cells: np.ndarray) -> dict[str, list[float]]:  # cells [n, 2]
    return {"volume_fl": np.round(cells[:, 0], 2).tolist(),
            "hemoglobin_pg": np.round(cells[:, 1], 2).tolist()}


def sample_view(cellset: CellSet) -> dict[str, Any]:
    """Downsampled cells (the same seeded subsample for the same sample id), histograms on all
    cells, and the indices (MCV, RDW, …) on all cells."""
    cells = cellset.cells()  # [N, 2]
    shown = subsample(cells, MAX_POINTS, cellset.sample_id)  # [<=MAX_POINTS, 2]
    return {"patient_id": cellset.patient_id, "sample_id": cellset.sample_id,
            "n_cells": cellset.n_cells, "n_cells_shown": int(shown.shape[0]),
            "cells": _points(shown),
            "histograms": {"volume_fl": _histogram(cells[:, 0], VOLUME_RANGE_FL),
                           "hemoglobin_pg": _histogram(cells[:, 1], HEMOGLOBIN_RANGE_PG)},
            "indices": red_cell_indices(cellset).as_dict()}


@lru_cache(maxsize=1)
def training_reference() -> dict[str, Any]:
    """Cells from the first block of the synthetic cohort generator at the training seed: a
    few cells from each of its patients (healthy and every simulated condition)."""
    from ingestion.synthetic.cohort import generate_block

    block = generate_block(REFERENCE_SEED, 0, n_cells=8)
    cells = block.cells.reshape(-1, 2)[:MAX_POINTS]  # [B * 8, 2]
    return {"source": f"synthetic training cohort generator, seed {REFERENCE_SEED}, "
                      f"first {block.cells.shape[0]} patients",
            "cells": _points(cells)}
