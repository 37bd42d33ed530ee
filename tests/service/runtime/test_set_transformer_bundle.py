"""The service serves any bundle the export writes: a Set Transformer++ bundle answers a
prediction through the real app, with nothing changed but the model directory."""

import json

import numpy as np
import pytest

from service.settings import Settings
from tests.service.conftest import cells_for, prediction_body

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def st_pp_bundle(tmp_path_factory):
    from model.baselines import BaselineSet
    from model.export import write_bundle
    from model.factory import build_network

    torch.manual_seed(0)
    model = build_network({"name": "set_transformer_pp", "hidden": 8, "blocks": 2, "heads": 2,
                           "inducing": 4, "decoder_layers": 1})
    model.set_normalisation(torch.tensor([90.0, 30.0]), torch.tensor([14.0, 4.6]), 42.0, 5.0)
    labels = np.random.default_rng(1).normal(42, 5, 100)
    x = np.stack([cells_for(h, 200, i) for i, h in enumerate(labels)]).astype(np.float32)
    out = tmp_path_factory.mktemp("st_pp_bundle")
    write_bundle(model, out, baselines=BaselineSet.fit(x, None, labels), version="st-test-0",
                 cells_per_set=1000, training={"note": "untrained test model"}, metrics={},
                 reproduce=["pytest fixture"])
    return out, model.eval()


def test_set_transformer_pp_bundle_serves_a_prediction(st_pp_bundle, tmp_path):
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    bundle, model = st_pp_bundle
    card = json.loads((bundle / "card.json").read_text())
    assert card["architecture"]["name"] == "set_transformer_pp"
    assert card["architecture"]["inducing"] == 4
    settings = Settings(environment="test", database_url=f"sqlite:///{tmp_path / 'hct.db'}",
                        model_dir=bundle, upload_dir=tmp_path / "uploads",
                        execution_provider="cpu", _env_file=None)
    body = prediction_body("P-st", n=300, seed=5)
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/predictions", json=body)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["model"]["version"] == "st-test-0"
    assert "synthetic" in got["notice"]
    cells = torch.tensor(np.stack([body["volume_fl"], body["hemoglobin_pg"]], axis=1),
                         dtype=torch.float32)[None]  # [1, 300, 2]
    with torch.no_grad():
        want = float(model(cells, torch.tensor([300])))
    assert got["hematocrit_pct"] == pytest.approx(want, abs=1e-3)
