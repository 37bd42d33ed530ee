"""Cell-count stability: the same blood read with 300, 500 or 1,000 cells should give the same
hematocrit, within the model's own resampling spread. A clinical requirement: analyzers do not
always deliver the same number of valid cells.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from model.data import random_subsets
from model.deepsets import DeepSetsPP

SUBSET_SIZES = (300, 500, 1000)


def cell_count_stability(model: DeepSetsPP, cells: np.ndarray, *, patients: int = 200,
                         repeats: int = 8, seed: int = 0) -> dict[str, Any]:
    """For each subset size: mean |mean prediction − full-set prediction| across patients, and
    the SD of predictions across random subsets (the model's own resampling spread).
    """
    from model.train import predict

    rng = np.random.default_rng(seed)
    sets = cells[:patients]  # [P, C, 2]
    full = predict(model, sets)  # [P]
    rows = []
    for size in SUBSET_SIZES:
        if size > sets.shape[1]:
            continue
        if size == sets.shape[1]:  # every "subset" is the whole set: no resampling to do
            draws = full[None]  # [1, P]
        else:
            draws = np.stack([predict(model, random_subsets(sets, size, rng))
                              for _ in range(repeats)])  # [R, P]
        rows.append({"cells": size,
                     "mean_abs_shift": float(np.mean(np.abs(draws.mean(axis=0) - full))),
                     "mean_shift": float(np.mean(draws.mean(axis=0) - full)),
                     "resampling_sd": float(np.mean(draws.std(axis=0, ddof=1)))
                     if draws.shape[0] > 1 else 0.0})
    return {"patients": int(sets.shape[0]), "repeats": repeats, "rows": rows}
