"""Prediction intervals: the shipped card's calibration covers unseen patients in every measured
band, and the apply side follows the stored radii."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingestion.synthetic.cohort import generate_patients
from model.card import read_card
from model.conformal import band_of, coverage_table, fit_conformal, interval
from model.trust_calibration import onnx_predict

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "default"
UNSEEN_SEED = 9101  # neither the training cohort (0) nor the calibration cohort (7001)


@pytest.fixture(scope="module")
def unseen() -> dict[str, np.ndarray]:
    """1,024 unseen patients with the shipped model's predictions (about 15 s on 2 cores)."""
    blocks = list(generate_patients(UNSEEN_SEED, 1024, 1000))
    cells = np.concatenate([b.cells for b in blocks])
    return {"y": np.concatenate([b.patients.hct for b in blocks]),
            "male": np.concatenate([b.patients.sex_male for b in blocks]),
            "p": onnx_predict(BUNDLE / "model.onnx", cells, threads=2)}


def test_shipped_interval_covers_unseen_patients_in_every_band_and_sex(unseen) -> None:
    conformal = read_card(BUNDLE / "card.json")["conformal"]
    lower, upper = interval(unseen["p"], conformal)
    table = coverage_table(unseen["y"], lower, upper, unseen["male"])
    n = table["n"]
    assert abs(table["coverage"] - 0.90) <= 0.02 + 2 * np.sqrt(0.09 / n)
    groups = [*table["bands"].values(), *table["sex"].values()]
    for g in groups:  # goal 0.85; allow two binomial SEs at this CI-sized cohort
        assert g["coverage"] >= 0.85 - 2 * np.sqrt(0.85 * 0.15 / g["n"]), table


def test_band_aware_interval_is_narrower_than_a_constant_one_meeting_the_band_goal(unseen) -> None:
    conformal = read_card(BUNDLE / "card.json")["conformal"]
    lower, upper = interval(unseen["p"], conformal)
    err, band = np.abs(unseen["y"] - unseen["p"]), band_of(unseen["y"])
    worst = max(np.quantile(err[band == b], 0.85) for b in range(4))  # constant: every band 0.85
    assert np.mean(upper - lower) < 0.95 * 2 * worst


def test_interval_contains_prediction_and_widens_toward_the_extreme_bands() -> None:
    conformal = {"edges": [30.0, 36.0, 45.0], "limits": [0.0, 100.0], "radii": [8, 4, 3.5, 9]}
    p = np.array([20.0, 40.0, 33.0, 60.0])
    lower, upper = interval(p, conformal)
    assert np.all((lower <= p) & (p <= upper))
    # 40: [36.5, 43.5] in its band, [36 - ...] none below 36 within 4 -> 36 is reached by the
    # 30-36 piece only if 40 - 4 <= 36; above 45 needs 40 + 9 -> up to 49.
    assert lower[1] == pytest.approx(36.0) and upper[1] == pytest.approx(49.0)
    assert upper[0] == pytest.approx(28.0) and lower[0] == pytest.approx(12.0)


def test_fit_reaches_the_level_and_every_band_floor_on_its_own_patients() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(38, 5, 6000)
    p = 38 + 0.5 * (y - 38) + rng.normal(0, 2.5, y.size)  # shrinks toward the mean
    conformal = fit_conformal(y, p, level=0.9, band_level=0.88)
    lower, upper = interval(p, conformal)
    table = coverage_table(y, lower, upper)
    assert table["coverage"] == pytest.approx(0.9, abs=0.005)
    assert all(b["coverage"] >= 0.88 for b in table["bands"].values())
    assert conformal["radii"][0] > conformal["radii"][2]  # anemic band needs a longer reach


def test_fit_refuses_an_empty_band() -> None:
    y = np.linspace(36, 44, 100)
    with pytest.raises(ValueError, match="no calibration scores"):
        fit_conformal(y, y)
