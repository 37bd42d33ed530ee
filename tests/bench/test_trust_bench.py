"""The trust benchmark's constant-width references: the radius meets its coverage target and is
the smallest that does (overall, and in every measured band)."""

from __future__ import annotations

import numpy as np

from bench.trust import band_floor_radius, constant_radius
from model.conformal import band_of


def test_constant_radius_is_the_smallest_meeting_the_target() -> None:
    rng = np.random.default_rng(0)
    measured = rng.normal(40, 6, 2000)
    predicted = 40 + 0.5 * (measured - 40) + rng.normal(0, 2, 2000)
    r = constant_radius(measured, predicted, 0.9)
    err = np.abs(measured - predicted)
    assert np.mean(err <= r) >= 0.9 > np.mean(err < r)


def test_band_floor_radius_covers_every_measured_band() -> None:
    rng = np.random.default_rng(1)
    measured = rng.normal(40, 6, 3000)
    predicted = 40 + 0.5 * (measured - 40) + rng.normal(0, 2, 3000)  # shrinks toward the mean
    r = band_floor_radius(measured, predicted, 0.85)
    band, covered = band_of(measured), np.abs(measured - predicted) <= r
    assert min(covered[band == b].mean() for b in np.unique(band)) >= 0.85
    assert r > constant_radius(measured, predicted, 0.85)  # the extreme bands need more
