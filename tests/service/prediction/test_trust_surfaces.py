"""The shipped bundle's interval and quality verdict reach every surface: REST, FHIR, HL7, the
batch CSV; a withheld sample is stored but shows no value anywhere. Each Observation validates
against the FHIR models (R4B, the R4 line)."""

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.observation import Observation

from ingestion.synthetic.cohort import generate_block
from service.api.app import create_app
from tests.service.api.test_batches_api import _wait

BUNDLE = Path(__file__).resolve().parents[3] / "models" / "default"


@pytest.fixture
def shipped(settings):
    with TestClient(create_app(settings.model_copy(update={"model_dir": BUNDLE}))) as client:
        yield client


def _sample(patient: str, hemoglobin_scale: float = 1.0, seed: int = 0) -> dict:
    """A healthy patient of an unseen synthetic cohort (in distribution for the shipped model)."""
    block = generate_block(9300 + seed, 0, 1000)
    healthy = int(np.flatnonzero(block.patients.condition == 0)[0])
    volume, hemoglobin = block.cells[healthy, :, 0], block.cells[healthy, :, 1] * hemoglobin_scale
    return {"patient_id": patient, "sample_id": f"S-{patient}", "sex": "F",
            "volume_fl": volume.tolist(), "hemoglobin_pg": hemoglobin.tolist()}


def _fhir(client: TestClient, prediction_id: str) -> dict:
    """The prediction's Observation, after checking it validates as FHIR."""
    r = client.get(f"/v1/predictions/{prediction_id}/fhir")
    assert r.status_code == 200 and r.headers["content-type"] == "application/fhir+json"
    Observation.model_validate_json(r.content)
    return r.json()


def test_every_prediction_carries_an_interval_and_a_verdict(shipped):
    body = shipped.post("/v1/predictions", json=_sample("P-ok")).json()
    interval, quality = body["hematocrit_interval_pct"], body["quality"]
    assert interval["lower"] < body["hematocrit_pct"] < interval["upper"]
    assert interval["level"] == pytest.approx(0.9)
    assert quality["status"] == "ok" and quality["reasons"] == []
    fhir = _fhir(shipped, body["id"])
    band = fhir["component"][0]["valueRange"]
    assert band["low"]["value"] == round(interval["lower"], 2)
    assert "valueQuantity" in fhir and "dataAbsentReason" not in fhir


def test_hemoglobin_in_the_wrong_unit_is_withheld_on_every_surface(shipped):
    """fmol sent as pg: stored, but no value, no flag, no interval; the reason names the unit."""
    created = shipped.post("/v1/predictions", json=_sample("P-fmol", 1 / 16.11))
    assert created.status_code == 201
    body = created.json()
    assert body["quality"]["status"] == "withheld"
    assert body["hematocrit_pct"] is None and body["flag"] is None
    assert body["hematocrit_interval_pct"] is None
    assert any("unit" in r for r in body["quality"]["reasons"])
    assert shipped.get(f"/v1/predictions/{body['id']}").json() == body  # stored as answered
    fhir = _fhir(shipped, body["id"])
    assert "valueQuantity" not in fhir and "interpretation" not in fhir
    assert fhir["dataAbsentReason"]["coding"][0]["code"] == "error"
    hl7 = shipped.get(f"/v1/predictions/{body['id']}/hl7").text
    obx = next(s for s in hl7.split("\r") if s.startswith("OBX|1|"))
    assert obx.split("|")[5] == "" and obx.split("|")[11] == "X"


def test_batch_results_carry_interval_and_verdict_columns(shipped):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["patient_id", "sample_id", "volume_fl", "hemoglobin_pg"])
    for i, scale in enumerate((1.0, 1 / 16.11)):
        s = _sample(f"B{i}", scale, seed=i)
        for v, h in zip(s["volume_fl"], s["hemoglobin_pg"], strict=True):
            writer.writerow([s["patient_id"], s["sample_id"], f"{v:.3f}", f"{h:.4f}"])
    job = shipped.post("/v1/batches", files={"file": ("x.csv", out.getvalue(), "text/csv")})
    assert _wait(shipped, job.json()["id"])["status"] == "done"
    rows = list(csv.DictReader(io.StringIO(
        shipped.get(f"/v1/batches/{job.json()['id']}/results").text)))
    good, bad = rows
    assert good["quality"] == "ok" and float(good["hematocrit_lower_pct"]) < float(
        good["hematocrit_pct"]) < float(good["hematocrit_upper_pct"])
    assert bad["quality"] == "withheld" and bad["hematocrit_pct"] == "" and bad["flag"] == ""
    assert "unit" in bad["quality_reasons"]
