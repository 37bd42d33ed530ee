"""Scores and paired bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from model.scoring import REDUCTION, bootstrap_scores, mae, mse, point_scores, r2


def _data(n: int = 800, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    y = 38.0 + 5.0 * rng.normal(size=n)
    return y, {"good": y + rng.normal(size=n), "poor": y + 3.0 * rng.normal(size=n),
               "mean": np.full(n, y.mean())}


def test_point_metrics_on_known_values() -> None:
    y, p = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0])
    assert mse(y, p) == pytest.approx(0.5)
    assert mae(y, p) == pytest.approx(0.5)
    assert r2(y, p) == pytest.approx(1.0 - 0.5 / 1.25)
    assert point_scores(y, y) == {"mse": 0.0, "mae": 0.0, "r2": 1.0}


def test_predicting_the_test_mean_scores_zero_r2() -> None:
    y, preds = _data()
    assert r2(y, preds["mean"]) == pytest.approx(0.0, abs=1e-12)


def test_intervals_contain_the_estimate_and_are_seeded() -> None:
    y, preds = _data()
    a = bootstrap_scores(y, preds, reference="poor", n_boot=300, seed=3)
    b = bootstrap_scores(y, preds, reference="poor", n_boot=300, seed=3)
    c = bootstrap_scores(y, preds, reference="poor", n_boot=300, seed=4)
    assert a == b and a != c
    for name, scores in a.items():
        for metric, e in scores.items():
            if (name, metric) != ("mean", "r2"):  # R² of a constant sits on its boundary (0)
                assert e.low <= e.value <= e.high, (name, metric)


def test_intervals_do_not_depend_on_the_memory_chunk() -> None:
    y, preds = _data()
    assert bootstrap_scores(y, preds, n_boot=120, chunk=7) == bootstrap_scores(
        y, preds, n_boot=120, chunk=120)


def test_mse_interval_width_matches_normal_theory() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=2000)
    est = bootstrap_scores(y, {"m": y + rng.normal(size=2000)}, n_boot=1000)["m"]["mse"]
    expected = 2 * 1.96 * np.sqrt(2.0 / 2000)  # SE of a mean of chi-square(1) values
    assert (est.high - est.low) == pytest.approx(expected, rel=0.2)


def test_reduction_is_paired_against_the_reference() -> None:
    y, preds = _data()
    scores = bootstrap_scores(y, preds, reference="poor", n_boot=300)
    ref = scores["poor"][REDUCTION]
    assert ref.value == ref.low == ref.high == 0.0
    good = scores["good"][REDUCTION]
    assert good.value == pytest.approx(100 * (1 - mse(y, preds["good"]) / mse(y, preds["poor"])))
    assert 0 < good.low < good.value < good.high < 100
    # Paired resampling: the difference is known far better than either MSE alone.
    width_pct = (scores["good"]["mse"].high - scores["good"]["mse"].low) / scores["good"][
        "mse"].value * 100
    assert good.high - good.low < width_pct


def test_without_reference_there_is_no_reduction() -> None:
    y, preds = _data()
    assert REDUCTION not in bootstrap_scores(y, preds, n_boot=20)["good"]


def test_bad_inputs_are_refused() -> None:
    y, preds = _data()
    with pytest.raises(ValueError, match="reference"):
        bootstrap_scores(y, preds, reference="missing", n_boot=10)
    with pytest.raises(ValueError, match="shape"):
        bootstrap_scores(y, {"short": y[:-1]}, n_boot=10)
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_scores(y[:1], {"one": y[:1]}, n_boot=10)
