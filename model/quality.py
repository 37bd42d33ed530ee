"""Sample-quality verdict: `ok`, `warn` or `withheld`, a score and reasons a technologist can act
on, from the sample's cell distribution against a reference of in-distribution samples.

Each sample becomes a few robust features (medians, log-spreads, the volume-hemoglobin
correlation, shares of events that are not red cells). Each feature is turned into a robust
z-score against the reference's quantiles (separate scales below and above the median); the
sample's distance is the largest |z|. The warn and withhold distances are quantiles of that
distance on reference samples held out from the quantile fit, so the false-warn rate is set at
calibration time, and everything is stored in the card as plain numbers (`quality`). Cell count
is a separate rule: fewer cells than the model was built for make the answer noisier.

numpy only: the service applies it per batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

OK, WARN, WITHHELD = "ok", "warn", "withheld"
WARN_QUANTILE = 0.99  # of the held-out reference distances: about 1 % of good samples warn
WITHHELD_QUANTILE = 0.998
WITHHELD_FACTOR = 1.5  # withhold only well beyond the 0.998 quantile: clear faults, not tails
SMALL_EVENT_FL = 35.0  # below: platelets, debris, fragments
LARGE_EVENT_FL = 160.0  # above: white cells, doublets
LOW_CHC_G_DL = 20.0  # below: events with almost no hemoglobin (white cells, debris, ghosts)
_FRACTION_FLOOR = 0.003  # smallest upper scale of a share of events (one in ~300)

# name -> (label, unit, upper-only, hint when low, hint when high)
FEATURES: dict[str, tuple[str, str, bool, str, str]] = {
    "median_volume_fl": ("median cell volume", "fL", False,
                         "volume unit or calibration?", "volume unit or calibration?"),
    "median_hemoglobin_pg": ("hemoglobin per cell", "pg", False,
                             "wrong unit (fmol instead of pg)?",
                             "volume and hemoglobin swapped, or wrong unit?"),
    "median_concentration_g_dl": ("cell hemoglobin concentration", "g/dL", False,
                                  "hemoglobin channel or unit?",
                                  "volume and hemoglobin swapped?"),
    "volume_spread_pct": ("volume spread (robust RDW)", "%", False,
                          "unusually uniform volumes: check the volume channel",
                          "extra measurement noise (flow cell, laser) or mixed populations?"),
    "hemoglobin_spread_pct": ("hemoglobin spread", "%", False,
                              "unusually uniform hemoglobin: check the hemoglobin channel",
                              "extra measurement noise (flow cell, laser)?"),
    "concentration_spread_pct": ("concentration spread (robust HDW)", "%", False,
                                 "unusually uniform concentration: check the channels",
                                 "extra measurement noise, or concentration sent as content?"),
    "core_concentration_spread_pct": ("concentration spread of mid-sized cells", "%", False,
                                      "unusually uniform concentration: check the channels",
                                      "extra measurement noise (dirty flow cell, failing laser)?"),
    "volume_hemoglobin_correlation": ("volume-hemoglobin correlation", "", False,
                                      "hemoglobin concentration (g/dL) mapped as content (pg)?",
                                      "check the channel map"),
    "small_event_share": ("share of events below 35 fL", "", True, "",
                          "platelet clumps or debris (clotted or lysed sample?)"),
    "large_event_share": ("share of events above 160 fL", "", True, "",
                          "white cells or doublets in the red-cell gate?"),
    "low_concentration_share": ("share of events below 20 g/dL", "", True, "",
                                "non-red-cell events (white cells, debris, ghosts)?"),
}
FEATURE_NAMES = tuple(FEATURES)


def sample_features(cells: np.ndarray) -> np.ndarray:
    """Features `[F]` (order `FEATURE_NAMES`) of one sample's cells `[n, 2]` (fL, pg).

    This runs on every request. Quantiles (numpy's default linear rule) come from one
    `np.partition` per channel: only the order statistics around the 25th, 50th and 75th
    percentiles are needed, and since log is increasing the quantiles of the log values come
    from the same order statistics. A dozen `np.percentile` calls, or full sorts, cost more
    than the rest of the sample's bookkeeping.
    """
    cells = np.asarray(cells, dtype=np.float64)
    v = np.maximum(cells[:, 0], 1e-6)  # [n]
    h = np.maximum(cells[:, 1], 1e-6)  # [n]
    chc = 100.0 * h / v  # [n] g/dL
    qv, qh, qc = _quartiles(v), _quartiles(h), _quartiles(chc)
    mid = (v >= _lerp(*qv[0])) & (v <= _lerp(*qv[2]))  # [n]: away from both tails
    core = _log_spread(_quartiles(chc[mid])) if mid.sum() >= 4 else _log_spread(qc)
    n = v.size
    return np.array([
        _lerp(*qv[1]), _lerp(*qh[1]), _lerp(*qc[1]),
        _log_spread(qv), _log_spread(qh), _log_spread(qc), core,
        _correlation(np.log(v), np.log(h)),
        np.count_nonzero(v < SMALL_EVENT_FL) / n, np.count_nonzero(v > LARGE_EVENT_FL) / n,
        np.count_nonzero(chc < LOW_CHC_G_DL) / n,
    ])


_QUARTILES = (0.25, 0.5, 0.75)

# a quantile as its two neighbouring order statistics and the weight between them
Bracket = tuple[float, float, float]


def _quartiles(x: np.ndarray) -> tuple[Bracket, Bracket, Bracket]:
    """The 25th, 50th and 75th percentiles of `x [n]` as (lower, upper, weight) brackets."""
    n = x.size
    positions = [q * (n - 1) for q in _QUARTILES]
    ranks = sorted({r for p in positions for r in (int(p), min(int(p) + 1, n - 1))})
    part = np.partition(x, ranks)  # [n]: the order statistics at `ranks` in place
    b = [(float(part[int(p)]), float(part[min(int(p) + 1, n - 1)]), p - int(p))
         for p in positions]
    return b[0], b[1], b[2]


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's linear interpolation between neighbouring order statistics (its exact form)."""
    return b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t


def _log_spread(quartiles: tuple[Bracket, Bracket, Bracket]) -> float:
    """Robust spread of the log values in % (IQR / 1.349, the SD of a normal)."""
    (a1, b1, t1), _, (a3, b3, t3) = quartiles
    iqr = _lerp(math.log(a3), math.log(b3), t3) - _lerp(math.log(a1), math.log(b1), t1)
    return 100.0 * iqr / 1.349


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 when either side is constant."""
    da, db = a - a.mean(), b - b.mean()  # [n]
    saa, sbb = float(da @ da), float(db @ db)
    if saa <= 0.0 or sbb <= 0.0:
        return 0.0
    return float(np.clip((da @ db) / np.sqrt(saa * sbb), -1.0, 1.0))


def features_many(samples: Sequence[np.ndarray]) -> np.ndarray:
    """`sample_features` of every sample: `[B, F]`."""
    if not samples:
        return np.zeros((0, len(FEATURE_NAMES)))
    return np.stack([sample_features(s) for s in samples])


def fit_quality(reference: np.ndarray, held_out: np.ndarray, *, cells_per_set: int,
                warn_quantile: float = WARN_QUANTILE,
                withheld_quantile: float = WITHHELD_QUANTILE) -> dict[str, Any]:
    """Reference quantiles from `reference [N, F]` features; warn/withhold distances from the
    distances of `held_out [M, F]` (other in-distribution samples) at the given quantiles."""
    q = np.quantile(reference, [0.001, 0.01, 0.5, 0.99, 0.999], axis=0)  # [5, F]
    scale_lo = np.maximum((q[2] - q[1]) / 2.326, 1e-9)
    scale_hi = (q[3] - q[2]) / 2.326
    upper_only = np.array([FEATURES[n][2] for n in FEATURE_NAMES])
    scale_hi = np.where(upper_only, np.maximum(scale_hi, _FRACTION_FLOOR),
                        np.maximum(scale_hi, 1e-9))
    card: dict[str, Any] = {
        "method": "max robust |z| of sample features against in-distribution quantiles",
        "features": [{"name": n, "label": FEATURES[n][0], "unit": FEATURES[n][1],
                      "upper_only": bool(FEATURES[n][2]),
                      "q001": float(q[0, j]), "q01": float(q[1, j]), "median": float(q[2, j]),
                      "q99": float(q[3, j]), "q999": float(q[4, j]),
                      "scale_low": float(scale_lo[j]), "scale_high": float(scale_hi[j])}
                     for j, n in enumerate(FEATURE_NAMES)],
        "n_reference": int(reference.shape[0]),
        "n_threshold": int(held_out.shape[0]),
        "warn_quantile": warn_quantile,
        "withheld_quantile": withheld_quantile,
        "withheld_factor": WITHHELD_FACTOR,
        "warn_below_cells": max(1, cells_per_set // 2),
        "withhold_below_cells": max(1, cells_per_set // 10),
    }
    d = np.sort(distances(held_out, card))
    card["warn_distance"] = float(np.quantile(d, warn_quantile))
    card["withheld_distance"] = float(np.quantile(d, withheld_quantile) * WITHHELD_FACTOR)
    return card


def z_scores(features: np.ndarray, quality: dict[str, Any]) -> np.ndarray:
    """Signed robust z `[B, F]`; upper-only features (shares of odd events) never go below 0."""
    f = np.atleast_2d(np.asarray(features, dtype=np.float64))
    col = {k: np.array([x[k] for x in quality["features"]])
           for k in ("median", "scale_low", "scale_high", "upper_only")}
    dev = f - col["median"]
    z = np.where(dev < 0, dev / col["scale_low"], dev / col["scale_high"])
    return np.where(col["upper_only"].astype(bool), np.maximum(z, 0.0), z)


def distances(features: np.ndarray, quality: dict[str, Any]) -> np.ndarray:
    """The sample distance `[B]`: the largest |z| over features."""
    z = z_scores(features, quality)
    return np.nan_to_num(np.abs(z), nan=np.inf).max(axis=1)


def assess(samples: Sequence[np.ndarray], quality: dict[str, Any]) -> list[dict[str, Any]]:
    """The verdict per sample: `{"status", "score", "reasons"}`.

    `score` is the distance over the warn distance: below 1 is ok, from 1 warn, from
    withheld_distance / warn_distance withheld. `samples`: cells `[n_i, 2]` (all valid cells).
    """
    feats = features_many(samples)  # [B, F]
    z = z_scores(feats, quality)
    dist = np.nan_to_num(np.abs(z), nan=np.inf).max(axis=1)
    warn, withheld = quality["warn_distance"], quality["withheld_distance"]
    out = []
    for i, s in enumerate(samples):
        n = int(np.asarray(s).shape[0])
        reasons = [_reason(quality["features"][j], feats[i, j], z[i, j])
                   for j in np.argsort(-np.abs(z[i])) if abs(z[i, j]) >= warn]
        status = WITHHELD if dist[i] >= withheld else WARN if dist[i] >= warn else OK
        if n < quality["warn_below_cells"]:
            reasons.append(f"only {n} cells after gating (the model reads up to "
                           f"{2 * quality['warn_below_cells']}): too few cells for a stable "
                           "estimate; re-run or re-gate the sample?")
            low = n < quality["withhold_below_cells"]
            status = WITHHELD if low or status == WITHHELD else WARN
        out.append({"status": status, "score": round(float(min(dist[i] / warn, 1e6)), 3),
                    "reasons": reasons})
    return out


def _reason(feature: dict[str, Any], value: float, z: float) -> str:
    """'hemoglobin per cell 1.9 pg is below every reference sample (0.1st percentile 17 pg):
    wrong unit (fmol instead of pg)?'"""
    _, _, _, hint_low, hint_high = FEATURES[feature["name"]]
    unit = f" {feature['unit']}" if feature["unit"] and feature["unit"] != "%" else feature["unit"]
    shown = _fmt(value)
    if z < 0:
        edge, where = ((feature["q001"], "below every reference sample (0.1st percentile")
                       if value < feature["q001"] else
                       (feature["q01"], "below 99 % of reference samples (1st percentile"))
        hint = hint_low
    else:
        edge, where = ((feature["q999"], "above every reference sample (99.9th percentile")
                       if value > feature["q999"] else
                       (feature["q99"], "above 99 % of reference samples (99th percentile"))
        hint = hint_high
    return f"{feature['label']} {shown}{unit} is {where} {_fmt(edge)}{unit}): {hint}"


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}"
