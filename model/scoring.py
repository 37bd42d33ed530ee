"""Regression scores with paired bootstrap 95 % confidence intervals.

Every model is scored on the same resamples of the test set, so the interval of a difference
("% MSE reduction vs the reference") reflects the paired design, not two independent intervals.
Used by the baseline table and, later, by model evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRICS = ("mse", "mae", "r2")
REDUCTION = "mse_reduction_pct"  # 100 * (1 - MSE / MSE of the reference)


@dataclass(frozen=True)
class Estimate:
    """A point estimate on the full test set and its bootstrap percentile interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def mse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean((np.asarray(pred) - np.asarray(y)) ** 2))


def mae(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(pred) - np.asarray(y))))


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """1 - SSE / SST about the test mean (so predicting that mean scores 0)."""
    y = np.asarray(y, dtype=np.float64)
    return 1.0 - mse(y, pred) / float(np.var(y))


def point_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MSE, MAE and R² without intervals."""
    return {"mse": mse(y, pred), "mae": mae(y, pred), "r2": r2(y, pred)}


def bootstrap_scores(
    y: np.ndarray,
    preds: dict[str, np.ndarray],
    reference: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    chunk: int = 100,
) -> dict[str, dict[str, Estimate]]:
    """Scores per model name -> metric -> `Estimate`; with `reference`, also `REDUCTION`.

    Resamples are drawn `chunk` at a time (memory stays `chunk x N`), all from one seeded
    generator, so the intervals are reproducible.
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[0]
    if n < 2:
        raise ValueError(f"{n} test values: need at least 2 to score")
    if reference is not None and reference not in preds:
        raise ValueError(f"reference = {reference!r}: not among {sorted(preds)}")
    p = {k: np.asarray(v, dtype=np.float64) for k, v in preds.items()}
    for name, v in p.items():
        if v.shape != y.shape:
            raise ValueError(f"{name} has shape {list(v.shape)}: expected [{n}]")
    rng = np.random.default_rng(seed)
    draws: dict[str, dict[str, list[np.ndarray]]] = {k: {m: [] for m in METRICS} for k in p}
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))  # [c, N]
        yb = y[idx]
        var = yb.var(axis=1)
        for name, v in p.items():
            err = v[idx] - yb
            sq = (err**2).mean(axis=1)
            draws[name]["mse"].append(sq)
            draws[name]["mae"].append(np.abs(err).mean(axis=1))
            draws[name]["r2"].append(1.0 - sq / var)
    tail = 100.0 * (1.0 - level) / 2.0
    out: dict[str, dict[str, Estimate]] = {}
    for name, v in p.items():
        point = point_scores(y, v)
        samples = {m: np.concatenate(draws[name][m]) for m in METRICS}
        if reference is not None:
            ref = np.concatenate(draws[reference]["mse"])
            samples[REDUCTION] = 100.0 * (1.0 - samples["mse"] / ref)
            point[REDUCTION] = 100.0 * (1.0 - point["mse"] / mse(y, p[reference]))
        out[name] = {m: Estimate(point[m], float(np.percentile(s, tail)),
                                 float(np.percentile(s, 100.0 - tail)))
                     for m, s in samples.items()}
    return out
