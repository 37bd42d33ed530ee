"""Time leaves the service as UTC with an offset on every surface and both databases: an
idempotent replay and a read-back are byte-identical to the original response, and every FHIR
resource the service emits validates against the FHIR models (R4B, the R4 line).
"""

from datetime import datetime

import pytest
from fhir.resources.R4B.observation import Observation

from tests.service.api.test_batches_api import export_csv
from tests.service.conftest import prediction_body


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None and value.utcoffset().total_seconds() == 0, text
    return value


def test_replay_and_read_back_are_byte_identical_to_the_original(client):
    headers = {"Idempotency-Key": "replay-bytes"}
    body = prediction_body("P-TIME", seed=11)
    first = client.post("/v1/predictions", json=body, headers=headers)
    again = client.post("/v1/predictions", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.content == first.content
    read = client.get(f"/v1/predictions/{first.json()['id']}")
    assert read.content == first.content
    listed = client.get("/v1/predictions", params={"patient_id": "P-TIME"}).json()["items"][0]
    assert listed == first.json()
    _aware(first.json()["created_at"])


def test_batch_timestamps_carry_the_offset(client):
    job = client.post("/v1/batches", files={"file": ("x.csv", export_csv(1), "text/csv")})
    status = client.get(f"/v1/batches/{job.json()['id']}").json()
    assert _aware(status["created_at"]) <= _aware(status["updated_at"])


@pytest.mark.parametrize("lab", [
    {},
    {"sex": "F", "measured_hematocrit_pct": 38.5, "rbc_count_e12_per_l": 4.4,
     "collected_at": "2026-03-04T05:06:07+01:00", "age_years": 51},
    {"sex": "M", "collected_at": "2026-03-04T05:06:07"},  # a wall time without a zone
])
def test_every_fhir_observation_validates_as_fhir(client, lab):
    created = client.post("/v1/predictions", json={**prediction_body("P-FHIR"), **lab}).json()
    r = client.get(f"/v1/predictions/{created['id']}/fhir")
    assert r.status_code == 200 and r.headers["content-type"] == "application/fhir+json"
    observation = Observation.model_validate_json(r.content)
    assert observation.issued == _aware(created["created_at"])
    if "collected_at" in lab:
        assert str(observation.effectiveDateTime).startswith("2026-03-04")
