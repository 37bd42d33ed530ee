"""Drift and agreement statistics: the rolling paths equal the one-window statistics, the
reference CDF maps in-distribution values to uniforms, and fitted thresholds account for
checking after every sample (above the one-window quantile)."""

from __future__ import annotations

import numpy as np
import pytest

from model.drift import (
    GRID,
    fit_alarms,
    rolling_scaled_ks,
    rolling_t,
    scaled_ks,
    t_statistic,
    to_uniform,
)


def test_rolling_ks_equals_the_statistic_of_each_window() -> None:
    u = np.random.default_rng(1).random(700)
    path = rolling_scaled_ks(u, 300, 5000)
    for t in (0, 1, 17, 298, 299, 300, 699):
        window = u[max(0, t - 299):t + 1]
        assert path[t] == pytest.approx(scaled_ks(window, 5000), abs=1e-5)


def test_rolling_t_equals_the_statistic_of_each_window() -> None:
    r = np.random.default_rng(2).normal(0.3, 3.0, 500)
    path = rolling_t(r, 200)
    for t in (1, 30, 199, 200, 499):
        assert path[t] == pytest.approx(t_statistic(r[max(0, t - 199):t + 1]), rel=1e-9)


def test_reference_cdf_maps_its_own_distribution_to_uniform() -> None:
    rng = np.random.default_rng(3)
    quantiles = np.quantile(rng.lognormal(4.5, 0.2, 20_000), GRID)
    u = to_uniform(rng.lognormal(4.5, 0.2, 2000), quantiles)
    assert scaled_ks(u, 20_000) < 1.63  # the 0.99 Kolmogorov quantile
    assert to_uniform(np.array([0.0, 1e6]), quantiles).tolist() == [0.0, 1.0]
    assert scaled_ks(to_uniform(rng.lognormal(4.6, 0.2, 500), quantiles), 20_000) > 3.0


def test_thresholds_exceed_one_window_quantiles_because_every_sample_is_checked() -> None:
    fitted = fit_alarms(5000, n_simulations=30, horizon=2000)
    assert fitted["drift"]["threshold"] > 1.63
    assert fitted["agreement"]["threshold"] > 2.58
    assert fit_alarms(5000, n_simulations=30, horizon=2000) == fitted  # seeded
