"""Masked statistics over padded cell batches `[B, S]` + `lengths [B]`.

Indices and moments are computed for whole cohorts at once; padding must never leak into a
statistic, so every reduction here takes the per-set valid length.
"""

from __future__ import annotations

import numpy as np


def valid_mask(lengths: np.ndarray, size: int) -> np.ndarray:
    """`[B, S]` bool: True for the first `lengths[b]` cells of each set."""
    return np.arange(size)[None, :] < np.asarray(lengths)[:, None]


def masked_mean(values: np.ndarray, mask: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Mean over valid cells, `[B, S] -> [B]` (float64)."""
    return np.where(mask, values, 0.0).sum(axis=1, dtype=np.float64) / n


def masked_central_moment(
    values: np.ndarray, mask: np.ndarray, n: np.ndarray, mean: np.ndarray, order: int
) -> np.ndarray:
    """Population central moment of the given order over valid cells, `[B]`."""
    dev = np.where(mask, values - mean[:, None], 0.0)
    return (dev**order).sum(axis=1, dtype=np.float64) / n


def masked_central_moments(
    values: np.ndarray, mask: np.ndarray, n: np.ndarray, mean: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2nd, 3rd and 4th population central moments over valid cells, each `[B]`.

    One pass with products instead of `dev**3` / `dev**4` (numpy's float power is ~10x slower
    than a multiply): this runs for every request the service scores.
    """
    dev = np.where(mask, values - mean[:, None], 0.0)  # [B, S]
    d2 = dev * dev
    return (d2.sum(axis=1, dtype=np.float64) / n, (d2 * dev).sum(axis=1, dtype=np.float64) / n,
            (d2 * d2).sum(axis=1, dtype=np.float64) / n)


def masked_quantiles(values: np.ndarray, lengths: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """Linear-interpolated quantiles (numpy's default method) over valid cells, `[B, len(qs)]`."""
    size = values.shape[1]
    mask = valid_mask(lengths, size)
    ordered = np.sort(np.where(mask, values, np.inf), axis=1)  # padding sorts last
    pos = (np.asarray(lengths, dtype=np.float64)[:, None] - 1.0) * np.asarray(qs)[None, :]
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.asarray(lengths)[:, None] - 1)
    frac = pos - lo
    v_lo = np.take_along_axis(ordered, lo, axis=1).astype(np.float64)
    v_hi = np.take_along_axis(ordered, hi, axis=1).astype(np.float64)
    return v_lo + (v_hi - v_lo) * frac
