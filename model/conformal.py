"""Prediction intervals: split conformal, Mondrian by the *measured* hematocrit band.

Why by the measured band: the model shrinks toward the population mean, so a patient at 27 %
gets a prediction near 32 %; a constant-width interval then misses most anemic (and most
hemoconcentrated) patients while covering 90 % overall. Here every measured band b gets its
own radius d_b, the conformal quantile of |y - prediction| among calibration patients whose
measured hematocrit lies in b. The interval of a prediction p is the hull of the pieces
`[p - d_b, p + d_b] ∩ band b`: a value y is inside when |y - p| <= d_{band(y)}, so within each
band coverage is at least that band's level (label-conditional conformal, Vovk 2003). Extreme
bands keep `band_level`; the middle bands' level is lowered, at fit time, until overall
coverage on the calibration patients equals `level`.

Fit (numpy, at calibration time) and apply (numpy, in the service) use the same numbers, which
live in the card under `conformal`.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np

DEFAULT_LEVEL = 0.9
DEFAULT_BAND_LEVEL = 0.88  # floor per measured band (the goal is 0.85 on unseen patients)
BAND_EDGES = (30.0, 36.0, 45.0)  # < 30, 30-36, 36-45, > 45 % (measured hematocrit)
HCT_LIMITS = (0.0, 100.0)
METHOD = "split conformal, Mondrian by measured-hematocrit band (label-conditional), |y - p|"


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ceil((n + 1) level)-th smallest score: split-conformal's finite-sample quantile."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    if s.size == 0:
        raise ValueError("no calibration scores in a band: use a larger calibration cohort")
    k = int(np.ceil((s.size + 1) * level)) - 1
    return float(s[min(k, s.size - 1)])


def band_of(hct: np.ndarray, edges: tuple[float, ...] | list[float] = BAND_EDGES) -> np.ndarray:
    """Band index per value: 0 below edges[0], ..., len(edges) above the last edge."""
    return np.digitize(np.asarray(hct, dtype=np.float64), np.asarray(edges))


def fit_conformal(measured: np.ndarray, predicted: np.ndarray, *, level: float = DEFAULT_LEVEL,
                  band_level: float = DEFAULT_BAND_LEVEL,
                  edges: tuple[float, ...] = BAND_EDGES) -> dict[str, Any]:
    """Radii per measured band from calibration patients the model never trained on.

    `measured`, `predicted` `[N]`. Extreme bands use `band_level`; the middle bands share one
    level in [band_level', level'] chosen by bisection so the calibration coverage is `level`.
    """
    y = np.asarray(measured, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"measured {list(y.shape)} and predicted {list(p.shape)}: need [N] each")
    band = band_of(y, edges)
    err = np.abs(y - p)
    n_bands = len(edges) + 1
    counts = [int((band == b).sum()) for b in range(n_bands)]
    extreme = {0, n_bands - 1}

    def radii_for(middle_level: float) -> np.ndarray:
        return np.array([conformal_quantile(err[band == b],
                                            band_level if b in extreme else middle_level)
                         for b in range(n_bands)])

    card = {"edges": list(edges), "limits": list(HCT_LIMITS)}
    low, high = 0.5, 0.999  # middle-band level: coverage rises with it
    for _ in range(40):
        mid = 0.5 * (low + high)
        cov = float(np.mean(_covered(y, p, {**card, "radii": radii_for(mid).tolist()})))
        low, high = (mid, high) if cov < level else (low, mid)
    middle_level = high
    radii = radii_for(middle_level)
    params = {**card, "radii": radii.tolist()}
    return {
        "method": METHOD,
        "level": level,
        "band_level": band_level,
        "band_levels": [band_level if b in extreme else middle_level for b in range(n_bands)],
        "edges": list(edges),
        "limits": list(HCT_LIMITS),
        "radii": radii.tolist(),
        "n_calibration": int(y.size),
        "n_per_band": counts,
        "calibration_coverage": float(np.mean(_covered(y, p, params))),
        "calibration_mean_width": float(np.mean(np.subtract(*interval(p, params)[::-1]))),
    }


def interval(predicted: np.ndarray, conformal: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds `[B]` each for predictions `[B]`, from the card's `conformal`.

    Pieces per band `[p - d_b, p + d_b] ∩ [edge_b, edge_{b+1}]`; the band holding p always
    contributes a piece, so the hull is never empty.
    """
    p = np.asarray(predicted, dtype=np.float64)[:, None]  # [B, 1]
    radii = np.asarray(conformal["radii"], dtype=np.float64)[None]  # [1, K]
    lo_lim, hi_lim = conformal["limits"]
    bounds = np.concatenate([[lo_lim], conformal["edges"], [hi_lim]])  # [K + 1]
    lo = np.maximum(p - radii, bounds[None, :-1])  # [B, K]
    hi = np.minimum(p + radii, bounds[None, 1:])  # [B, K]
    some = lo <= hi
    lower = np.where(some, lo, np.inf).min(axis=1)
    upper = np.where(some, hi, -np.inf).max(axis=1)
    clipped = np.clip(p[:, 0], lo_lim, hi_lim)  # a prediction outside the limits: degenerate
    return np.minimum(lower, clipped), np.maximum(upper, clipped)


def _covered(measured: np.ndarray, predicted: np.ndarray, conformal: dict[str, Any]) -> np.ndarray:
    lower, upper = interval(predicted, conformal)
    return (measured >= lower) & (measured <= upper)


def coverage_table(measured: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                   male: np.ndarray | None = None,
                   edges: tuple[float, ...] = BAND_EDGES) -> dict[str, Any]:
    """Coverage overall, per measured band and per sex, and the mean width."""
    y = np.asarray(measured, dtype=np.float64)
    cov = (y >= lower) & (y <= upper)
    band = band_of(y, edges)
    names = _band_names(edges)
    out: dict[str, Any] = {"n": int(y.size), "coverage": float(cov.mean()),
                           "mean_width": float(np.mean(upper - lower)),
                           "bands": {names[b]: {"n": int((band == b).sum()),
                                                "coverage": float(cov[band == b].mean())
                                                if (band == b).any() else None}
                                     for b in range(len(edges) + 1)}}
    if male is not None:
        male = np.asarray(male, dtype=bool)
        out["sex"] = {s: {"n": int(m.sum()), "coverage": float(cov[m].mean())}
                      for s, m in (("F", ~male), ("M", male))}
    return out


def _band_names(edges: tuple[float, ...]) -> list[str]:
    e = [f"{x:g}" for x in edges]
    return [f"<{e[0]}", *[f"{a}-{b}" for a, b in pairwise(e)], f">{e[-1]}"]
