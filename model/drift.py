"""Sequential statistics for monitoring a served model: input drift against the card's
reference quantiles, and agreement bias against measured hematocrit. Apply (numpy, the
service's monitor) and fit (the alarm thresholds, by simulation at calibration time) share the
same functions.

Drift: each monitored value (MCV, MCHC, RDW-CV, quality score) is mapped through the reference
CDF (101 quantiles, linear in between), so in distribution the mapped values are uniform. Over
a rolling window of the last n values the statistic is the Kolmogorov-Smirnov distance to the
uniform, scaled by sqrt(n N / (n + N)) (N reference samples) so that one threshold serves every
window fill. The alarm is the largest statistic over the features.

Agreement: over a rolling window of predictions that came with a measured hematocrit, the
statistic is Student's t of the mean residual (predicted minus measured), two-sided.

Why simulation for the thresholds: the statistic is checked after every sample, so the
relevant null distribution is that of its *maximum* along a stream of `horizon` samples, which
has no closed form. Under no drift both statistics are distribution-free (uniform values after
the reference CDF; the t of residuals is close to it for any residual spread), so streams of
uniforms (with a reference of N uniforms, to include the reference's own sampling error) and
of normal residuals give the threshold whose false-alarm probability per `horizon` samples is
`false_alarm`. The features are simulated independent, which makes the threshold conservative
for correlated features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

GRID = np.linspace(0.0, 1.0, 101)  # the reference quantile levels stored in the card
DRIFT_FEATURES = ("mcv_fl", "mchc_g_dl", "rdw_cv_pct", "quality_score")
DRIFT_WINDOW, DRIFT_MIN_SAMPLES = 500, 50
AGREEMENT_WINDOW, AGREEMENT_MIN_SAMPLES = 200, 30
HORIZON = 5000  # false-alarm probability is stated per this many samples
FALSE_ALARM = 0.01
_CHUNK = 1024  # rows of windows sorted at once (memory: _CHUNK x window floats)


def to_uniform(values: np.ndarray, quantiles: np.ndarray | list[float]) -> np.ndarray:
    """Reference-CDF values `[n]` in [0, 1] of `values [n]` (piecewise linear between the
    stored quantiles; below the lowest 0, above the highest 1)."""
    q = np.maximum.accumulate(np.asarray(quantiles, dtype=np.float64))  # [101] non-decreasing
    return np.interp(np.asarray(values, dtype=np.float64), q, np.linspace(0.0, 1.0, q.size))


def scaled_ks(u: np.ndarray, n_reference: int) -> float:
    """sqrt(n N / (n + N)) times the KS distance of `u [n]` (uniform in distribution) to the
    uniform CDF."""
    s = np.sort(np.asarray(u, dtype=np.float64))
    n = s.size
    if n == 0:
        return float("nan")
    i = np.arange(1, n + 1)
    d = max(float(np.max(i / n - s)), float(np.max(s - (i - 1) / n)))
    return d * float(np.sqrt(n * n_reference / (n + n_reference)))


def rolling_scaled_ks(u: np.ndarray, window: int, n_reference: int) -> np.ndarray:
    """`scaled_ks` of the window ending at every position of the stream `u [T]` (the first
    windows hold fewer than `window` values): `[T]`. float32 inside, for speed."""
    u = np.asarray(u, dtype=np.float32)
    padded = np.concatenate([np.full(window - 1, np.nan, dtype=np.float32), u])
    views = sliding_window_view(padded, window)  # [T, W]: row t ends at u[t]
    i = np.arange(1, window + 1, dtype=np.float32)  # [W]
    out = np.empty(u.size)
    ramp = min(window - 1, u.size)  # windows still filling: NaN padding sorts last
    if ramp:
        s = np.sort(views[:ramp], axis=1)  # [r, W]
        n = np.arange(1, ramp + 1, dtype=np.float32)[:, None]  # [r, 1]
        valid = i <= n
        d_plus = np.where(valid, i / n - s, -np.inf).max(axis=1)
        d_minus = np.where(valid, s - (i - 1) / n, -np.inf).max(axis=1)
        out[:ramp] = np.maximum(d_plus, d_minus)
    for lo in range(ramp, u.size, _CHUNK):
        s = np.sort(views[lo:lo + _CHUNK], axis=1)  # [c, W] full windows
        out[lo:lo + _CHUNK] = np.maximum((i / window - s).max(axis=1),
                                         (s - (i - 1) / window).max(axis=1))
    n_all = np.minimum(np.arange(1, u.size + 1), window).astype(np.float64)
    return out * np.sqrt(n_all * n_reference / (n_all + n_reference))


def t_statistic(residuals: np.ndarray) -> float:
    """Student's t of the mean of `residuals [n]` (NaN below 2 values or with no spread)."""
    r = np.asarray(residuals, dtype=np.float64)
    if r.size < 2:
        return float("nan")
    sd = float(r.std(ddof=1))
    return float(r.mean() / (sd / np.sqrt(r.size))) if sd > 0 else float("nan")


def rolling_t(residuals: np.ndarray, window: int) -> np.ndarray:
    """`t_statistic` of the window ending at every position of `residuals [T]`: `[T]`."""
    r = np.asarray(residuals, dtype=np.float64)
    c1 = np.concatenate([[0.0], np.cumsum(r)])
    c2 = np.concatenate([[0.0], np.cumsum(r * r)])
    end = np.arange(1, r.size + 1)
    start = np.maximum(end - window, 0)
    n = (end - start).astype(np.float64)
    s1, s2 = c1[end] - c1[start], c2[end] - c2[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (s2 - s1 * s1 / n) / (n - 1)
        return (s1 / n) / np.sqrt(np.maximum(var, 0.0) / n)


def fit_alarms(n_reference: int, *, features: tuple[str, ...] = DRIFT_FEATURES,
               window: int = DRIFT_WINDOW, min_samples: int = DRIFT_MIN_SAMPLES,
               agreement_window: int = AGREEMENT_WINDOW,
               agreement_min_samples: int = AGREEMENT_MIN_SAMPLES, horizon: int = HORIZON,
               false_alarm: float = FALSE_ALARM, n_simulations: int = 1000,
               agreement_simulations: int | None = None,
               seed: int = 0) -> dict[str, dict[str, Any]]:
    """Drift and agreement alarm thresholds: the (1 - false_alarm) quantile of the largest
    statistic along simulated in-distribution streams of `horizon` samples (the agreement
    statistic is cheap: 20 times as many streams unless `agreement_simulations` is given)."""
    rng = np.random.default_rng(seed)
    drift_max = np.empty(n_simulations)
    for k in range(n_simulations):
        worst = 0.0
        for _ in features:
            reference = np.quantile(rng.random(n_reference), GRID)  # [101]
            u = to_uniform(rng.random(horizon), reference)  # [T]
            path = rolling_scaled_ks(u, window, n_reference)[min_samples - 1:]
            worst = max(worst, float(path.max()))
        drift_max[k] = worst
    n_agreement = agreement_simulations or 20 * n_simulations
    bias_max = np.empty(n_agreement)
    for k in range(n_agreement):
        t = rolling_t(rng.standard_normal(horizon), agreement_window)[agreement_min_samples - 1:]
        bias_max[k] = float(np.nanmax(np.abs(t)))
    common = {"horizon": horizon, "false_alarm": false_alarm, "seed": seed}
    return {
        "drift": {"statistic": "sqrt(n N/(n+N)) x KS distance of the window to the reference "
                               "CDF (101 quantiles), largest over features",
                  "features": list(features), "window": window, "min_samples": min_samples,
                  "n_reference": n_reference, "n_simulations": n_simulations,
                  "threshold": float(np.quantile(drift_max, 1.0 - false_alarm)), **common},
        "agreement": {"statistic": "|Student t| of mean(predicted - measured) over the window",
                      "window": agreement_window, "min_samples": agreement_min_samples,
                      "n_simulations": n_agreement,
                      "threshold": float(np.quantile(bias_max, 1.0 - false_alarm)), **common},
    }
