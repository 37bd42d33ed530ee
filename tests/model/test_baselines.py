"""Baselines: ridge maths against a direct least-squares solve, JSON round trip, features, table."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from ingestion.synthetic.cohort import generate_patients, simulate_cohort
from model.baseline_report import evaluate_baselines
from model.baselines import (
    BASELINES_VERSION,
    CBC_FEATURES,
    MOMENT_FEATURES,
    BaselineSet,
    analyzer_hematocrit,
    fit_ridge,
    gcv_scores,
    set_features,
    standardise,
)


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """600 synthetic patients x 200 cells: cells, labels, RBC counts."""
    blocks = list(generate_patients(4, 600, 200))
    return (np.concatenate([b.cells for b in blocks]),
            np.concatenate([b.patients.hct for b in blocks]),
            np.concatenate([b.rbc_count_e12_per_l for b in blocks]))


def _problem(n: int = 300, p: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, p)) * rng.uniform(0.1, 20.0, size=p) + rng.normal(size=p) * 50
    f[:, 1] = f[:, 0] * 0.9 + rng.normal(size=n) * 0.5  # collinear pair, as quantiles are
    y = 40.0 + f @ rng.normal(size=p) * 0.05 + rng.normal(size=n)
    return f, y


@pytest.mark.parametrize("alpha", [1e-3, 1.0, 250.0])
def test_ridge_matches_lstsq_on_the_augmented_system(alpha: float) -> None:
    f, y = _problem()
    model = fit_ridge(f, y, [f"f{i}" for i in range(f.shape[1])], alphas=(alpha,))
    z, _, _ = standardise(f)
    n, p = z.shape
    a = np.block([[np.ones((n, 1)), z], [np.zeros((p, 1)), np.sqrt(alpha) * np.eye(p)]])
    b = np.concatenate([y, np.zeros(p)])
    solution = np.linalg.lstsq(a, b, rcond=None)[0]
    assert model.intercept == pytest.approx(solution[0], rel=1e-10)
    assert np.allclose(model.coef, solution[1:], rtol=1e-8, atol=1e-10)
    assert np.allclose(model.predict(f), a[:n] @ solution, atol=1e-8)


def test_gcv_matches_the_hat_matrix_definition() -> None:
    f, y = _problem(n=80, p=5, seed=1)
    z, _, _ = standardise(f)
    yc = y - y.mean()
    n = len(y)
    for alpha, score in zip((0.01, 3.0, 100.0), gcv_scores(z, yc, (0.01, 3.0, 100.0)),
                            strict=True):
        hat = z @ np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T) + 1.0 / n
        resid = y - y.mean() - hat @ yc + yc.mean()
        expected = n * float(resid @ resid) / (n - np.trace(hat)) ** 2
        assert score == pytest.approx(expected, rel=1e-9)


def test_gcv_shrinks_more_when_features_are_noise() -> None:
    rng = np.random.default_rng(2)
    f = rng.normal(size=(200, 10))
    signal = fit_ridge(f, f @ np.arange(10.0) + rng.normal(size=200), list("abcdefghij"))
    noise = fit_ridge(f, rng.normal(size=200), list("abcdefghij"))
    assert noise.alpha > signal.alpha


def test_fit_rejects_mismatched_names() -> None:
    f, y = _problem()
    with pytest.raises(ValueError, match="names"):
        fit_ridge(f, y, ["only_one"])


def test_features_do_not_depend_on_chunk_size_or_storage(small, tmp_path: Path) -> None:
    cells = small[0][:50]
    whole = set_features(cells)
    chunked = set_features(cells, chunk=7)
    assert np.array_equal(whole.cbc, chunked.cbc) and np.array_equal(whole.moments,
                                                                     chunked.moments)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["x"] = cells
    with h5py.File(tmp_path / "x.h5", "r") as f:
        from_disk = set_features(f["x"], chunk=16)
    assert np.array_equal(whole.cbc, from_disk.cbc)
    assert whole.cbc.shape == (50, len(CBC_FEATURES))
    assert whole.moments.shape == (50, len(MOMENT_FEATURES))


def test_padding_beyond_lengths_is_ignored(small) -> None:
    cells = small[0][:4].copy()
    lengths = np.array([200, 150, 120, 200])
    for i, n in enumerate(lengths):
        cells[i, n:] = 999.0  # padding garbage
    padded = set_features(cells, lengths)
    trimmed = set_features(small[0][1:2, :150])
    assert np.allclose(padded.cbc[1], trimmed.cbc[0])
    assert np.allclose(padded.moments[1], trimmed.moments[0])


def test_population_mean_mse_is_the_label_variance(small) -> None:
    cells, y, _ = small
    baselines = BaselineSet.fit(cells, None, y)
    pred = baselines.predict(cells)["population_mean"]
    assert np.mean((pred - y) ** 2) == pytest.approx(np.var(y))


def test_json_round_trip_gives_identical_predictions(small) -> None:
    cells, y, rbc = small
    baselines = BaselineSet.fit(cells[:400], None, y[:400])
    text = baselines.to_json()
    loaded = BaselineSet.from_json(text)
    before, after = baselines.predict(cells[400:], rbc=rbc[400:]), loaded.predict(
        cells[400:], rbc=rbc[400:])
    assert before.keys() == after.keys() == {"population_mean", "cbc_indices", "moments",
                                             "analyzer_formula"}
    assert all(np.array_equal(before[k], after[k]) for k in before)
    plain = json.loads(text)
    assert plain["version"] == BASELINES_VERSION and plain["n_train"] == 400
    assert plain["cbc_indices"]["features"] == list(CBC_FEATURES)
    assert {"mean", "scale", "coef", "intercept", "alpha"} <= plain["moments"].keys()


def test_json_from_another_version_is_refused(small) -> None:
    cells, y, _ = small
    d = json.loads(BaselineSet.fit(cells[:100], None, y[:100]).to_json())
    d["version"] = "0"
    with pytest.raises(ValueError, match="version"):
        BaselineSet.from_json(json.dumps(d))


def test_analyzer_formula_is_rbc_times_mcv_over_ten(small) -> None:
    cells, y, rbc = small
    baselines = BaselineSet.fit(cells, None, y)
    assert "analyzer_formula" not in baselines.predict(cells[:3])
    pred = baselines.predict(cells[:3], rbc=rbc[:3])["analyzer_formula"]
    mcv = cells[:3, :, 0].astype(np.float64).mean(axis=1)
    assert np.allclose(pred, rbc[:3] * mcv / 10.0)
    assert analyzer_hematocrit(np.array([5.0]), np.array([90.0]))[0] == pytest.approx(45.0)


def test_moments_beat_cbc_indices_and_both_beat_the_mean(tmp_path: Path) -> None:
    simulate_cohort(tmp_path / "c.h5", 3000, 300, seed=9)
    report = evaluate_baselines(tmp_path / "c.h5", tmp_path / "out", n_boot=200)
    mse = {k: v["mse"].value for k, v in report.scores.items()}
    assert mse["oracle_hct"] < mse["moments"] < mse["cbc_indices"] < mse["population_mean"]
    assert mse["analyzer_formula"] < mse["oracle_hct"]  # the count sees plasma volume
    for name in ("report.json", "report.md", "baselines.json"):
        assert (tmp_path / "out" / name).exists()
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["scores"]["cbc_indices"]["mse_reduction_pct"]["value"] == 0.0
    assert BaselineSet.from_json((tmp_path / "out" / "baselines.json").read_text()).n_train == \
        report.n_train
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.index("`population_mean`") < md.index("`cbc_indices`") < md.index("`oracle_hct`")


def test_cli_baselines_prints_the_table(tmp_path: Path) -> None:
    from service.cli import app

    simulate_cohort(tmp_path / "d.h5", 300, 100, seed=1)
    result = CliRunner().invoke(app, ["baselines", "--data", str(tmp_path / "d.h5"),
                                      "--out-dir", str(tmp_path / "rep"), "--n-boot", "50"])
    assert result.exit_code == 0, result.output
    assert "| `moments` |" in result.output and (tmp_path / "rep" / "report.md").exists()


def test_cli_baselines_reports_a_missing_file(tmp_path: Path) -> None:
    from service.cli import app

    result = CliRunner().invoke(app, ["baselines", "--data", str(tmp_path / "none.h5")])
    assert result.exit_code == 1
