"""Distribution moments and quantiles of a sample's cells: the paper's "prediction from
moments" features, richer than the CBC indices but still a fixed summary of the set.
"""

from __future__ import annotations

import numpy as np

from ingestion.masked import masked_central_moments, masked_mean, masked_quantiles, valid_mask

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_CHANNELS = ("volume", "hemoglobin", "chc")


def moment_names() -> tuple[str, ...]:
    """Feature names in the order `moments_table` returns them."""
    names: list[str] = []
    for ch in _CHANNELS:
        names += [f"{ch}_mean", f"{ch}_sd", f"{ch}_skew", f"{ch}_kurt"]
        names += [f"{ch}_q{round(q * 100):02d}" for q in QUANTILES]
    names.append("corr_volume_hemoglobin")
    return tuple(names)


def moments_table(x: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """Moments of volume, hemoglobin and CHC for a padded batch `x [B, S, 2]` -> name -> `[B]`.

    skew and kurt are the standardised 3rd moment and excess 4th moment (population).
    """
    lengths = np.asarray(lengths)
    mask = valid_mask(lengths, x.shape[1])
    n = lengths.astype(np.float64)
    volume = x[..., 0].astype(np.float64)
    hemoglobin = x[..., 1].astype(np.float64)
    chc = 100.0 * hemoglobin / np.where(mask, volume, 1.0)
    out: dict[str, np.ndarray] = {}
    means = {}
    for name, values in zip(_CHANNELS, (volume, hemoglobin, chc), strict=True):
        mean = masked_mean(values, mask, n)
        var, m3, m4 = masked_central_moments(values, mask, n, mean)
        sd = np.sqrt(var)
        safe = np.where(var > 0, var, 1.0)
        out[f"{name}_mean"] = mean
        out[f"{name}_sd"] = sd
        out[f"{name}_skew"] = m3 / safe**1.5
        out[f"{name}_kurt"] = m4 / safe**2 - 3.0
        qv = masked_quantiles(values, lengths, QUANTILES)
        for j, q in enumerate(QUANTILES):
            out[f"{name}_q{round(q * 100):02d}"] = qv[:, j]
        means[name] = (mean, sd)
    (mv, sv), (mh, sh) = means["volume"], means["hemoglobin"]
    cov = masked_mean((volume - mv[:, None]) * (hemoglobin - mh[:, None]), mask, n)
    out["corr_volume_hemoglobin"] = cov / np.maximum(sv * sh, 1e-12)
    return {k: out[k] for k in moment_names()}
