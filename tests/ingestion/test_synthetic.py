"""The synthetic cohort: realistic indices per condition, an honest label, determinism, layout."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from ingestion.cells import CellSet
from ingestion.flowrbc import FlowRBCFile, iter_flowrbc
from ingestion.indices import indices_table
from ingestion.synthetic.cohort import (
    BLOCK_PATIENTS,
    GENERATOR_VERSION,
    CohortBlock,
    generate_block,
    generate_patients,
    simulate_cohort,
)
from ingestion.synthetic.conditions import CONDITIONS, Condition, prevalence
from ingestion.synthetic.export import LONG_COLUMNS, export_long
from ingestion.synthetic.patients import LATENT_NAMES

N_PATIENTS = 8 * BLOCK_PATIENTS
N_CELLS = 1000


@pytest.fixture(scope="module")
def cohort() -> dict[str, np.ndarray]:
    """2,048 patients x 1,000 cells with their indices, drawn once for the realism tests."""
    blocks = list(generate_patients(0, N_PATIENTS, N_CELLS))
    cells = np.concatenate([b.cells for b in blocks])
    out = {k: v for k, v in indices_table(cells, np.full(len(cells), N_CELLS)).items()}
    out["cells"] = cells
    out["condition"] = np.concatenate([b.patients.condition for b in blocks])
    out["hct"] = np.concatenate([b.patients.hct for b in blocks])
    out["oracle"] = np.concatenate([b.patients.oracle_hct for b in blocks])
    out["rbc"] = np.concatenate([b.rbc_count_e12_per_l for b in blocks])
    return out


def _of(cohort: dict[str, np.ndarray], condition: Condition, name: str) -> np.ndarray:
    return cohort[name][cohort["condition"] == condition]


def test_every_cell_is_finite_and_inside_cellset_ranges(cohort: dict[str, np.ndarray]) -> None:
    cells = cohort["cells"]
    assert cells.dtype == np.float32 and cells.shape == (N_PATIENTS, N_CELLS, 2)
    assert np.isfinite(cells).all()
    assert (cells[..., 0] > 0).all() and (cells[..., 0] <= 300).all()
    assert (cells[..., 1] > 0).all() and (cells[..., 1] <= 100).all()
    CellSet("p", "s", cells[0, :, 0], cells[0, :, 1])  # validates without raising


def test_healthy_indices_sit_in_adult_reference_ranges(cohort: dict[str, np.ndarray]) -> None:
    # name: (reference range, share of healthy patients that must fall inside it)
    ranges = {"mcv_fl": (80, 100, 0.85), "mch_pg": (27, 33, 0.85), "mchc_g_dl": (32, 36, 0.75),
              "rdw_cv_pct": (11.5, 14.5, 0.6)}
    for name, (lo, hi, share) in ranges.items():
        values = _of(cohort, Condition.HEALTHY, name)
        assert lo < np.median(values) < hi, name
        assert np.mean((values >= lo) & (values <= hi)) > share, name


def test_iron_deficiency_is_microcytic_hypochromic_with_wide_rdw(
        cohort: dict[str, np.ndarray]) -> None:
    assert np.median(_of(cohort, Condition.IRON_DEFICIENCY, "mcv_fl")) < 80
    assert np.median(_of(cohort, Condition.IRON_DEFICIENCY, "mch_pg")) < 27
    assert (np.median(_of(cohort, Condition.IRON_DEFICIENCY, "mchc_g_dl"))
            < np.median(_of(cohort, Condition.HEALTHY, "mchc_g_dl")))
    assert np.mean(_of(cohort, Condition.IRON_DEFICIENCY, "rdw_cv_pct") > 14.5) > 0.8


def test_thalassemia_trait_is_microcytic_with_near_normal_rdw_and_low_mentzer(
        cohort: dict[str, np.ndarray]) -> None:
    mcv = _of(cohort, Condition.THALASSEMIA_TRAIT, "mcv_fl")
    rdw = _of(cohort, Condition.THALASSEMIA_TRAIT, "rdw_cv_pct")
    assert np.median(mcv) < 72
    assert np.median(rdw) < 15.0
    assert np.median(rdw) < np.median(_of(cohort, Condition.IRON_DEFICIENCY, "rdw_cv_pct")) - 2
    mentzer = mcv / _of(cohort, Condition.THALASSEMIA_TRAIT, "rbc")
    assert np.mean(mentzer < 13) > 0.8
    iron = (_of(cohort, Condition.IRON_DEFICIENCY, "mcv_fl")
            / _of(cohort, Condition.IRON_DEFICIENCY, "rbc"))
    assert np.mean(iron > 13) > 0.7  # the screen separates the two microcytic conditions


def test_b12_folate_deficiency_is_macrocytic(cohort: dict[str, np.ndarray]) -> None:
    mcv = _of(cohort, Condition.MACROCYTIC, "mcv_fl")
    assert np.median(mcv) > 100
    assert np.mean(mcv > 100) > 0.75


def test_label_spread_matches_the_real_data_set(cohort: dict[str, np.ndarray]) -> None:
    hct = cohort["hct"]
    assert 34 < hct.mean() < 41
    assert 4.5 < hct.std() < 6.0  # Flow-RBC: predicting the mean gives MSE ~ 25.9


def test_oracle_is_unbiased_and_leaves_the_plasma_volume_floor(
        cohort: dict[str, np.ndarray]) -> None:
    err = cohort["hct"] - cohort["oracle"]
    assert abs(err.mean()) < 0.3
    assert 5.0 < np.mean(err**2) < 10.0


def test_rbc_count_agrees_with_analyzer_formula_up_to_counting_error(
        cohort: dict[str, np.ndarray]) -> None:
    formula = cohort["rbc"] * cohort["mcv_fl"] / 10.0
    relative = formula / cohort["hct"] - 1.0
    assert abs(np.median(relative)) < 0.005
    assert 0.015 < relative.std() < 0.04


def test_condition_prevalence_follows_the_table(cohort: dict[str, np.ndarray]) -> None:
    counts = np.bincount(cohort["condition"], minlength=len(CONDITIONS)) / N_PATIENTS
    assert np.allclose(counts, prevalence(), atol=0.025)


def test_same_seed_same_patients_different_seed_different() -> None:
    a, b, c = generate_block(7, 3, 50), generate_block(7, 3, 50), generate_block(8, 3, 50)
    assert np.array_equal(a.cells, b.cells) and np.array_equal(a.patients.hct, b.patients.hct)
    assert not np.array_equal(a.cells, c.cells)


def test_a_patient_does_not_depend_on_cohort_size() -> None:
    small = list(generate_patients(3, 300, 40))
    large = list(generate_patients(3, 700, 40))
    assert [len(b.patient_index) for b in small] == [BLOCK_PATIENTS, 300 - BLOCK_PATIENTS]
    cells = np.concatenate([b.cells for b in small])
    assert np.array_equal(cells, np.concatenate([b.cells for b in large])[:300])


def _written(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][...] for k in f}


def test_simulate_writes_the_flowrbc_layout_deterministically(tmp_path: Path) -> None:
    steps: list[int] = []
    summary = simulate_cohort(tmp_path / "a.h5", 300, 60, seed=5, progress=steps.append)
    simulate_cohort(tmp_path / "b.h5", 300, 60, seed=5)
    a, b = _written(tmp_path / "a.h5"), _written(tmp_path / "b.h5")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert sum(steps) == 300 and summary.n_train + summary.n_test == 300
    for split, n in (("train", summary.n_train), ("test", summary.n_test)):
        assert a[f"{split}_data"].shape == (n, 60, 2)
        assert a[f"{split}_labels"].shape == (n,)
        assert a[f"{split}_latents"].shape == (n, len(LATENT_NAMES))
        for extra in ("oracle_hct", "condition", "sex", "age_years", "rbc_count_e12_per_l",
                      "patient_id"):
            assert a[f"{split}_{extra}"].shape == (n,), extra
    ids = np.concatenate([a["train_patient_id"], a["test_patient_id"]])
    assert sorted(ids) == [f"P{i:07d}".encode() for i in range(300)]


def test_cohort_attrs_say_synthetic_and_how_to_regenerate(tmp_path: Path) -> None:
    simulate_cohort(tmp_path / "c.h5", 10, 30, seed=11)
    with FlowRBCFile.open(tmp_path / "c.h5") as f:
        attrs = f.attrs
        assert f.extra("train", "latents").shape[1] == len(LATENT_NAMES)
    assert attrs["synthetic"] and attrs["seed"] == 11
    assert attrs["generator_version"] == GENERATOR_VERSION
    params = json.loads(attrs["parameters"])
    assert params["block_patients"] == BLOCK_PATIENTS and len(params["conditions"]) == 9
    assert json.loads(attrs["latent_names"]) == list(LATENT_NAMES)


def test_cohort_reads_back_as_valid_cell_sets(tmp_path: Path) -> None:
    simulate_cohort(tmp_path / "d.h5", 40, 250, seed=1)
    samples = list(iter_flowrbc(tmp_path / "d.h5"))
    assert len(samples) == 40 and all(isinstance(s, CellSet) for s in samples)
    assert all(s.lab.rbc_count_e12_per_l is not None for s in samples)


def test_export_long_csv_round_trips_the_first_patients(tmp_path: Path) -> None:
    simulate_cohort(tmp_path / "e.h5", 30, 50, seed=2)
    rows = export_long(tmp_path / "e.h5", tmp_path / "demo.csv", 3)
    with (tmp_path / "demo.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert rows == len(table) == 150 and tuple(table[0]) == LONG_COLUMNS
    assert [r["patient_id"] for r in table[::50]] == ["P0000000", "P0000001", "P0000002"]
    block = generate_block(2, 0, 50)
    first = [float(r["volume_fl"]) for r in table[:50]]
    assert np.array_equal(np.float32(first), block.cells[0, :, 0])
    assert np.float32(table[0]["measured_hematocrit_pct"]) == np.float32(block.patients.hct[0])
    assert table[0]["sex"] in ("F", "M")


def test_export_long_parquet(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    simulate_cohort(tmp_path / "f.h5", 5, 20, seed=2)
    assert export_long(tmp_path / "f.h5", tmp_path / "demo.parquet", 2) == 40
    assert pq.read_table(tmp_path / "demo.parquet").column_names == list(LONG_COLUMNS)


def test_simulate_rejects_empty_cohorts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_patients"):
        simulate_cohort(tmp_path / "g.h5", 0, 100)


def test_block_take_keeps_patients_aligned() -> None:
    block = generate_block(0, 0, 20)
    part: CohortBlock = block.take(np.array([5, 2]))
    assert np.array_equal(part.cells, block.cells[[5, 2]])
    assert list(part.patient_ids) == ["P0000005", "P0000002"]
    assert np.array_equal(part.patients.hct, block.patients.hct[[5, 2]])


def test_cli_simulate_writes_cohort_and_export(tmp_path: Path) -> None:
    from service.cli import app

    result = CliRunner().invoke(app, ["simulate", "--patients", "20", "--cells", "40", "--seed",
                                      "0", "--out", str(tmp_path / "h.h5"), "--export-csv",
                                      str(tmp_path / "h.csv"), "--export-patients", "2"])
    assert result.exit_code == 0, result.output
    assert "patients/s" in result.output and (tmp_path / "h.csv").exists()
    with FlowRBCFile.open(tmp_path / "h.h5") as f:
        assert sum(f.data(s).shape[0] for s in f.splits) == 20


def test_export_fcs_writes_files_the_reader_reads_back_exactly(tmp_path: Path) -> None:
    from ingestion.fcs.reader import read_fcs
    from ingestion.synthetic.export import export_fcs, first_patients

    simulate_cohort(tmp_path / "c.h5", 12, 250, seed=3)
    files = export_fcs(tmp_path / "c.h5", tmp_path / "fcs", n_patients=3)
    assert len(files) == 3
    with FlowRBCFile.open(tmp_path / "c.h5") as f:
        for path, (split, i) in zip(files, first_patients(f, 3), strict=True):
            cs = read_fcs(path)
            assert cs.sample_id == f"{split}-{i}" == path.stem
            assert cs.patient_id == f.extra(split, "patient_id")[i].decode()
            assert np.array_equal(cs.cells(), np.asarray(f.data(split)[i], np.float32))
