"""Sample-quality verdict: few false warnings on unseen good samples, every fault family caught
with a reason naming the likely cause, thresholds as stored in the shipped card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ingestion.synthetic.cohort import generate_patients
from ingestion.synthetic.faults import SAMPLE_FAULTS, faulty_samples
from model.quality import (
    FEATURE_NAMES,
    OK,
    WARN,
    WITHHELD,
    assess,
    features_many,
    fit_quality,
    sample_features,
)

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "default"
UNSEEN_SEED = 9102


@pytest.fixture(scope="module")
def quality() -> dict:
    return json.loads((BUNDLE / "card.json").read_text())["quality"]


@pytest.fixture(scope="module")
def unseen_cells() -> np.ndarray:
    return np.concatenate([b.cells for b in generate_patients(UNSEEN_SEED, 2048, 1000)])


def test_unseen_good_samples_rarely_warn_and_almost_never_withheld(quality, unseen_cells) -> None:
    status = np.array([v["status"] for v in assess(list(unseen_cells), quality)])
    n = status.size  # goals 2 % / 0.5 %, with two binomial SEs at this size
    assert np.mean(status == WARN) <= 0.02 + 2 * np.sqrt(0.02 * 0.98 / n)
    assert np.mean(status == WITHHELD) <= 0.005 + 2 * np.sqrt(0.005 * 0.995 / n)


@pytest.mark.parametrize("fault", sorted(SAMPLE_FAULTS))
def test_every_fault_family_is_caught(quality, unseen_cells, fault: str) -> None:
    verdicts = assess(faulty_samples(unseen_cells[:400], fault, seed=1), quality)
    caught = np.mean([v["status"] != OK for v in verdicts])
    assert caught >= 0.95 - 2 * np.sqrt(0.05 * 0.95 / 400), fault
    assert all(v["reasons"] for v in verdicts if v["status"] != OK)


@pytest.mark.parametrize(("fault", "words"), [
    ("hemoglobin_fmol", "fmol"), ("hemoglobin_concentration", "concentration"),
    ("swapped_channels", "swapped"), ("platelet_debris", "debris"),
    ("white_cells", "white cells"), ("too_few_cells", "too few cells")])
def test_reasons_name_the_likely_cause(quality, unseen_cells, fault: str, words: str) -> None:
    verdicts = assess(faulty_samples(unseen_cells[:50], fault, seed=2), quality)
    named = np.mean([any(words in r for r in v["reasons"]) for v in verdicts])
    assert named >= 0.9, (fault, verdicts[0]["reasons"])


def test_fmol_reason_quotes_the_value_and_the_reference_percentile(quality, unseen_cells) -> None:
    verdict = assess(faulty_samples(unseen_cells[:1], "hemoglobin_fmol", seed=3), quality)[0]
    assert verdict["status"] == WITHHELD
    text = next(r for r in verdict["reasons"] if r.startswith("hemoglobin per cell"))
    assert "pg is below every reference sample (0.1st percentile" in text


def test_thresholds_follow_the_requested_quantiles() -> None:
    rng = np.random.default_rng(0)
    good = [np.c_[v, v * rng.normal(0.33, 0.01, 500)] for v in
            (rng.normal(90 + rng.normal(0, 5), 10, 500).clip(40) for _ in range(600))]
    feats = features_many(good)
    card = fit_quality(feats[:300], feats[300:], cells_per_set=500, warn_quantile=0.9)
    status = [v["status"] for v in assess(good[300:], card)]
    assert np.mean([s != OK for s in status]) == pytest.approx(0.1, abs=0.01)


def _features_by_numpy(cells: np.ndarray) -> np.ndarray:
    """The features by their definitions, one numpy call each (the fast path sorts once)."""
    v = np.maximum(cells[:, 0].astype(np.float64), 1e-6)
    h = np.maximum(cells[:, 1].astype(np.float64), 1e-6)
    chc = 100.0 * h / v
    lv, lh, lc = np.log(v), np.log(h), np.log(chc)

    def spread(x: np.ndarray) -> float:
        return 100.0 * float(np.subtract(*np.percentile(x, [75, 25]))) / 1.349

    mid = (v >= np.percentile(v, 25)) & (v <= np.percentile(v, 75))
    corr = float(np.corrcoef(lv, lh)[0, 1]) if lv.std() > 0 and lh.std() > 0 else 0.0
    return np.array([np.median(v), np.median(h), np.median(chc), spread(lv), spread(lh),
                     spread(lc), spread(lc[mid]) if mid.sum() >= 4 else spread(lc), corr,
                     np.mean(v < 35.0), np.mean(v > 160.0), np.mean(chc < 20.0)])


@pytest.mark.parametrize("n", [2, 3, 4, 7, 300, 1000, 1001])
def test_sample_features_equal_their_numpy_definitions(n: int) -> None:
    rng = np.random.default_rng(n)
    for case in range(12):
        volume = rng.lognormal(4.5, 0.35, n)
        if case % 3 == 0:
            volume = np.round(volume)  # ties at the quantiles
        if case == 4:
            volume[:] = 90.0  # constant channel: correlation 0
        hemoglobin = volume * rng.normal(0.33, 0.05, n).clip(0.05)
        cells = np.stack([volume, hemoglobin], axis=1).astype(np.float32)  # [n, 2]
        got, want = sample_features(cells), _features_by_numpy(cells)
        assert got.shape == (len(FEATURE_NAMES),)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
