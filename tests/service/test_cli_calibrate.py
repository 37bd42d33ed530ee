"""`hct calibrate` writes the trust sections into a bundle's card and leaves the model alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from ingestion.synthetic.cohort import simulate_cohort
from model.card import sha256_file
from service.cli import app
from service.runtime.bundle import load_bundle


def test_calibrate_adds_conformal_quality_and_monitoring_and_keeps_the_bundle_valid(
        bundle_dir: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_dir, bundle)
    before = sha256_file(bundle / "model.onnx")
    cohort = tmp_path / "cal.h5"
    simulate_cohort(cohort, 600, 300, seed=7001)
    result = CliRunner().invoke(app, ["calibrate", "--bundle", str(bundle), "--data", str(cohort),
                                      "--alarm-simulations", "20"])
    assert result.exit_code == 0, result.output
    card = json.loads((bundle / "card.json").read_text())
    assert card["conformal"]["n_calibration"] == 600 and len(card["conformal"]["radii"]) == 4
    assert card["quality"]["warn_distance"] < card["quality"]["withheld_distance"]
    assert set(card["monitoring"]["reference_quantiles"]) >= {"mcv_fl", "mchc_g_dl"}
    assert card["monitoring"]["drift"]["threshold"] > 1.0
    assert card["monitoring"]["agreement"]["threshold"] > 2.0
    assert card["reproduce"][-1].startswith("hct calibrate --bundle")
    assert card["reproduce"][-1].endswith("--alarm-simulations 20")
    assert card["monitoring"]["drift"]["n_simulations"] == 20  # the option reached the fit
    assert sha256_file(bundle / "model.onnx") == before
    load_bundle(bundle)  # still verifies


def test_calibrate_names_a_missing_cohort(bundle_dir: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_dir, bundle)
    result = CliRunner().invoke(app, ["calibrate", "--bundle", str(bundle),
                                      "--data", str(tmp_path / "absent.h5")])
    assert result.exit_code == 1 and "absent.h5" in result.output
