"""The service serves any bundle the export writes: a Set Transformer++ bundle answers a
prediction through the real app, with nothing changed but the model directory, and its FHIR and
HL7 renderings name the Set Transformer++ rather than the default family. The bundle is the
session's `st_pp_bundle` (tests/conftest.py), whose graph test_export_architectures.py also
checks."""

import json

import numpy as np
import pytest

from service.settings import Settings
from tests.service.conftest import prediction_body

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_set_transformer_pp_bundle_serves_a_prediction(st_pp_bundle, tmp_path):
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    bundle, model = st_pp_bundle
    card = json.loads((bundle / "card.json").read_text())
    assert card["architecture"]["name"] == "set_transformer_pp"
    assert card["architecture"]["inducing"] == 4
    assert card["name"] == "hct-set-transformer-pp"
    settings = Settings(environment="test", database_url=f"sqlite:///{tmp_path / 'hct.db'}",
                        model_dir=bundle, upload_dir=tmp_path / "uploads",
                        execution_provider="cpu", _env_file=None)
    body = prediction_body("P-st", n=300, seed=5)
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/predictions", json=body)
        assert r.status_code == 201, r.text
        got = r.json()
        fhir = client.get(f"/v1/predictions/{got['id']}/fhir")
        hl7 = client.get(f"/v1/predictions/{got['id']}/hl7")
    assert fhir.status_code == 200 and hl7.status_code == 200
    method = fhir.json()["method"]["text"]
    assert method.startswith("Set Transformer++ on per-cell") and "Deep Sets" not in method
    assert f"Set Transformer++ hct-set-transformer-pp {card['version']}" in hl7.text
    assert "Deep Sets" not in hl7.text
    assert got["model"]["version"] == card["version"]
    assert "synthetic" in got["notice"]
    cells = torch.tensor(np.stack([body["volume_fl"], body["hemoglobin_pg"]], axis=1),
                         dtype=torch.float32)[None]  # [1, 300, 2]
    with torch.no_grad():
        want = float(model(cells, torch.tensor([300])))
    assert got["hematocrit_pct"] == pytest.approx(want, abs=1e-3)
