from tests.service.conftest import cells_for


def _body(n: int = 400, seed: int = 0, **extra) -> dict:
    cells = cells_for(44.0, n, seed)
    return {"patient_id": "P-1", "sample_id": f"S-{seed}", "volume_fl": cells[:, 0].tolist(),
            "hemoglobin_pg": cells[:, 1].tolist(), **extra}


def test_predict_from_json_returns_prediction_baselines_and_model(client):
    r = client.post("/v1/predictions", json=_body(measured_hematocrit_pct=43.0,
                                                  rbc_count_e12_per_l=4.8, sex="F"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert 10 < body["hematocrit_pct"] < 70
    assert body["n_cells"] == 400 and body["n_cells_used"] == 400
    assert set(body["baselines"]) == {"population_mean", "cbc_indices", "moments",
                                      "analyzer_formula"}
    assert abs(body["baselines"]["analyzer_formula"] - 4.8 * body["indices"]["mcv_fl"] / 10) < 1e-6
    assert body["residuals"]["model"] == body["hematocrit_pct"] - 43.0
    assert body["model"]["onnx_sha256"] and body["model"]["provider"] == "CPUExecutionProvider"
    assert "synthetic" in body["notice"]
    assert r.headers["Location"] == f"/v1/predictions/{body['id']}"
    stored = client.get(f"/v1/predictions/{body['id']}").json()
    assert stored["hematocrit_pct"] == body["hematocrit_pct"]


def test_cells_pair_form_gives_the_same_prediction(client):
    body = _body(seed=3)
    pairs = {**{k: v for k, v in body.items() if k not in ("volume_fl", "hemoglobin_pg")},
             "cells": [list(p) for p in zip(body["volume_fl"], body["hemoglobin_pg"],
                                            strict=True)]}
    a = client.post("/v1/predictions", json=body).json()
    b = client.post("/v1/predictions", json=pairs).json()
    assert abs(a["hematocrit_pct"] - b["hematocrit_pct"]) < 1e-5


def test_out_of_range_cell_is_422_naming_the_field(client):
    body = _body()
    body["volume_fl"][17] = -3.0
    r = client.post("/v1/predictions", json=body)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "validation"
    assert err["field"] == "body.volume_fl[17]"
    assert "volume_fl[17] = -3: must be in (0, 300] fL" in err["message"]


def test_idempotent_retry_returns_the_stored_prediction(client):
    headers = {"Idempotency-Key": "retry-1"}
    first = client.post("/v1/predictions", json=_body(seed=5), headers=headers)
    again = client.post("/v1/predictions", json=_body(seed=5), headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert client.get("/v1/predictions", params={"patient_id": "P-1"}).json()["total"] == 1
    other = client.post("/v1/predictions", json=_body(seed=6), headers=headers)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
