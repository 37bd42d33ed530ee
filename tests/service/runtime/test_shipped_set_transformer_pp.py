"""The Set Transformer++ bundle shipped beside the default (`models/set_transformer_pp/`) loads
with its sha256 verified, says what it is and how well it did, and serves a prediction through
the real app when HCT_MODEL_DIR points at it."""

import json
from pathlib import Path

import numpy as np
import pytest

from service.runtime.bundle import load_bundle
from service.settings import Settings
from tests.service.conftest import prediction_body

BUNDLE = Path(__file__).resolve().parents[3] / "models" / "set_transformer_pp"


def test_the_bundle_loads_and_its_card_names_the_architecture_and_its_test_scores():
    bundle = load_bundle(BUNDLE)  # refuses on a sha256 mismatch
    card = bundle.card
    assert bundle.name == card["name"] == "hct-set-transformer-pp"
    assert card["architecture"]["name"] == "set_transformer_pp"
    assert card["synthetic_training_data"] is True
    assert "not validated for clinical use" in card["intended_use"]
    scores = card["metrics"]["scores"]
    # Its evaluation on the synthetic test split beat the clinical-indices baseline.
    assert scores["set_transformer_pp"]["mse"]["high"] < scores["cbc_indices"]["mse"]["low"]
    assert card["training"]["onnx_parity_max_abs_diff"] <= 1e-4
    # Calibrated like the default: a conformal interval and a quality reference.
    assert card["conformal"]["calibration_coverage"] >= 0.89 and "quality" in card


def test_the_bundle_serves_a_prediction_through_the_model_dir(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    monkeypatch.setenv("HCT_MODEL_DIR", str(BUNDLE))
    settings = Settings(environment="test", database_url=f"sqlite:///{tmp_path / 'hct.db'}",
                        upload_dir=tmp_path / "uploads", execution_provider="cpu",
                        _env_file=None)
    assert settings.model_dir == BUNDLE
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/predictions", json=prediction_body("P-stpp", n=400, seed=3))
        assert r.status_code == 201, r.text
        got = r.json()
        fhir = client.get(f"/v1/predictions/{got['id']}/fhir").json()
    card = json.loads((BUNDLE / "card.json").read_text())
    assert got["model"]["version"] == card["version"]
    assert 20 < got["hematocrit_pct"] < 60 and np.isfinite(got["hematocrit_pct"])
    interval = got["hematocrit_interval_pct"]
    assert interval["lower"] < got["hematocrit_pct"] < interval["upper"]
    assert "synthetic" in got["notice"]
    assert fhir["method"]["text"].startswith("Set Transformer++ on per-cell")


@pytest.mark.parametrize("cells", [250, 1000])
def test_the_bundle_gives_the_same_blood_similar_answers_at_any_cell_count(cells, tmp_path):
    from service.runtime.onnx_model import OnnxModel

    model = OnnxModel(load_bundle(BUNDLE), "cpu", intra_op_threads=1)
    body = prediction_body("P", n=1000, seed=11)
    x = np.stack([body["volume_fl"], body["hemoglobin_pg"]], axis=1).astype(np.float32)
    full = float(model.predict(x[None], np.array([1000]))[0])
    part = float(model.predict(x[None, :cells], np.array([cells]))[0])
    assert abs(full - part) < 2.0  # percentage points: subsampling noise, not a broken mask
