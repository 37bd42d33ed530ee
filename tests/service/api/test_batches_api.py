import csv
import io
import time
from datetime import timedelta

from fastapi.testclient import TestClient

from service.api.app import create_app
from service.jobs import store as job_store
from service.jobs.runner import JobRunner
from tests.service.conftest import cells_for, metric_value


def export_csv(n_patients: int, bad: tuple[int, ...] = (), cells: int = 250) -> bytes:
    """A lab export, one row per cell; patients listed in `bad` carry an impossible volume."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["patient_id", "sample_id", "volume_fl", "hemoglobin_pg",
                     "measured_hematocrit_pct"])
    for i in range(n_patients):
        sample = cells_for(40 + i % 10, cells, i)
        if i in bad:
            sample[3, 0] = 900.0
        for v, h in sample:
            writer.writerow([f"P{i:04d}", f"S{i:04d}", f"{v:.3f}", f"{h:.3f}", 40 + i % 10])
    return out.getvalue().encode()


def _upload(client: TestClient, data: bytes, name: str = "export.csv", **kw):
    return client.post("/v1/batches", files={"file": (name, data, "text/csv")}, **kw)


def _wait(client: TestClient, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/v1/batches/{job_id}").json()
        if status["status"] in ("done", "failed"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {status}")


def _results(client: TestClient, job_id: str) -> list[dict]:
    r = client.get(f"/v1/batches/{job_id}/results")
    assert r.status_code == 200
    return list(csv.DictReader(io.StringIO(r.text)))


def test_batch_of_200_patients_scores_everyone_and_reports_bad_rows(client):
    before = client.get("/metrics").text
    r = _upload(client, export_csv(200, bad=(7, 150)))
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    status = _wait(client, job_id)
    assert status["status"] == "done"
    assert (status["total"], status["done"], status["errors"]) == (200, 198, 2)
    rows = _results(client, job_id)
    assert [int(r["seq"]) for r in rows] == list(range(200))
    bad = [r for r in rows if r["status"] == "error"]
    assert [r["patient_id"] for r in bad] == ["P0007", "P0150"]
    assert "volume_fl[3] = 900" in bad[0]["error_message"]
    done = [r for r in rows if r["status"] == "done"]
    assert all(10 < float(r["hematocrit_pct"]) < 70 for r in done)
    assert all(r["cbc_indices"] and r["moments"] for r in done)
    as_json = client.get(f"/v1/batches/{job_id}/results", params={"format": "json"}).json()
    assert len(as_json) == 200 and as_json[0]["patient_id"] == "P0000"
    after = client.get("/metrics").text  # batch job progress, as operations see it
    for sample, delta in (('hct_batch_job_items_total{outcome="done"}', 198),
                          ('hct_batch_job_items_total{outcome="error"}', 2),
                          ('hct_batch_jobs_total{status="done"}', 1),
                          ('hct_predictions_stored_total{source="batch"}', 198)):
        assert metric_value(after, sample) - metric_value(before, sample) == delta, sample


def test_restart_mid_batch_scores_every_patient_exactly_once(settings):
    quiet = settings.model_copy(update={"run_jobs": False, "job_lease_seconds": 0.5})
    with TestClient(create_app(quiet)) as first:
        job_id = _upload(first, export_csv(120)).json()["id"]
        state = first.app.state.hct
        runner = JobRunner(state.settings, state.engine, state.predictor, state.writer,
                           name="worker-a")
        assert runner.step()  # split into chunks of 16
        assert runner.step() and runner.step()  # two chunks scored
        # a worker that claims a chunk and dies before finishing it
        with state.engine.begin() as conn:
            orphan = job_store.claim_chunk(conn, "worker-dead", timedelta(seconds=0.5))
        assert orphan is not None
        mid = first.get(f"/v1/batches/{job_id}").json()
        assert mid["status"] == "running" and mid["done"] == 32
    time.sleep(0.6)  # the dead worker's lease expires
    with TestClient(create_app(settings)) as second:  # restart: jobs run in the background
        status = _wait(second, job_id)
        rows = _results(second, job_id)
    assert status["status"] == "done" and status["done"] == 120
    assert sorted(r["patient_id"] for r in rows) == [f"P{i:04d}" for i in range(120)]
    assert len({r["prediction_id"] for r in rows}) == 120
    with second.app.state.hct.engine.connect() as conn:
        from service.db.predictions import count_predictions

        assert count_predictions(conn, job_id=job_id) == 120


def test_unreadable_upload_fails_the_job_not_the_service(client):
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # unreadable only once the job opens it
        archive.writestr("notes.txt", "no FCS files")
    r = _upload(client, buffer.getvalue(), name="export.zip")
    job_id = r.json()["id"]
    status = _wait(client, job_id)
    assert status["status"] == "failed"
    assert "no .fcs files" in status["error"]
    assert client.get("/healthz").status_code == 200


def test_upload_without_cell_columns_is_422_at_once(client):
    r = _upload(client, b"patient_id,sample_id\nP1,S1\n")  # no cell columns
    assert r.status_code == 422
    assert "volume" in r.json()["error"]["message"]


def test_upload_of_unknown_binary_is_422(client):
    r = _upload(client, b"\x89PNG\r\n\x1a\n" + b"\0" * 64, name="scan.png")
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "body.file"


def test_idempotent_batch_upload(client):
    data = export_csv(3)
    a = _upload(client, data, headers={"Idempotency-Key": "nightly-1"})
    b = _upload(client, data, headers={"Idempotency-Key": "nightly-1"})
    assert a.status_code == 202 and b.status_code == 200
    assert a.json()["id"] == b.json()["id"]


def test_unknown_batch_is_404(client):
    r = client.get("/v1/batches/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
