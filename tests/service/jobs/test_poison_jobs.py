"""Poison jobs: a job whose split keeps failing, for any reason, fails after a bounded number
of attempts with a clear message that never shows the server's paths.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.jobs import store as job_store
from service.jobs.runner import MAX_SPLIT_ATTEMPTS, JobRunner
from tests.service.api.test_batches_api import _upload, _wait, export_csv


def _quiet_app(settings, **update):
    return TestClient(create_app(settings.model_copy(update={"run_jobs": False, **update})))


def _job(client: TestClient, job_id: str) -> job_store.JobRow:
    with client.app.state.hct.engine.connect() as conn:
        return job_store.get_job(conn, job_id, tenant=None)


def test_job_whose_split_keeps_killing_its_worker_fails_after_bounded_attempts(settings):
    with _quiet_app(settings) as client:
        job_id = _upload(client, export_csv(3)).json()["id"]
        engine = client.app.state.hct.engine
        for i in range(MAX_SPLIT_ATTEMPTS):  # each claimer dies mid-read (kill -9, OOM)
            with engine.begin() as conn:
                claimed = job_store.claim_job_to_split(conn, f"dead-{i}", timedelta(0))
            assert claimed is not None and claimed.attempts == i + 1
        state = client.app.state.hct
        JobRunner(state.settings, engine, state.predictor, state.writer).run_until_idle()
        status = client.get(f"/v1/batches/{job_id}").json()
    assert status["status"] == "failed"
    assert status["error"].startswith("split_failed:")
    assert f"stopped {MAX_SPLIT_ATTEMPTS} times" in status["error"]
    assert not any((settings.upload_dir / job_id).glob("*"))


def test_any_exception_in_a_split_is_retried_then_fails_the_job_without_paths(settings,
                                                                             monkeypatch):
    from service.jobs import runner as runner_module

    reads: list[str] = []

    def buggy_reader(path, **_):  # fault injection: a reader bug quoting the server path
        reads.append(str(path))
        raise KeyError(f"no reader registered for {Path(path).resolve()}")

    monkeypatch.setattr(runner_module, "iter_source", buggy_reader)
    with _quiet_app(settings, job_lease_seconds=0.2) as client:
        job_id = _upload(client, export_csv(3)).json()["id"]
        state = client.app.state.hct
        runner = JobRunner(state.settings, state.engine, state.predictor, state.writer)
        deadline = time.monotonic() + 20
        while _job(client, job_id).status == "queued":
            assert time.monotonic() < deadline, "poison job never failed"
            runner.step()
            time.sleep(0.05)
        status = client.get(f"/v1/batches/{job_id}").json()
    assert status["status"] == "failed"
    assert len(reads) == MAX_SPLIT_ATTEMPTS
    assert status["error"] == (f"split_failed: reading the upload failed {MAX_SPLIT_ATTEMPTS} "
                               "times (KeyError); not retried, see the worker log")
    assert str(settings.upload_dir) not in status["error"]
    assert not (settings.upload_dir / job_id).exists()


def test_unreadable_upload_error_names_the_file_not_the_server_path(client, settings):
    table = pa.table({"patient_id": ["P1"] * 300, "sample_id": ["S1"] * 300,
                      "volume_fl": np.full(300, 90.0), "hemoglobin_pg": np.full(300, 30.0)})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data = sink.getvalue().to_pybytes()
    truncated = data[:4] + data[len(data) // 2:]
    answer = _upload(client, truncated, name="night run.parquet")
    # The header is checked at upload, so the refusal comes at once (422), not from the job.
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "table_unreadable" and error["field"] == "body.file"
    assert error["message"].startswith("night_run.parquet: not a readable Parquet")
    for secret in (str(settings.upload_dir.resolve()), str(settings.upload_dir)):
        assert secret not in answer.text
    assert list(settings.upload_dir.glob("*/*")) == []  # the refused upload is not kept


def test_ids_too_long_or_with_control_characters_are_sample_errors_not_poison(client):
    rows = ["patient_id,sample_id,volume_fl,hemoglobin_pg"]
    rng = np.random.default_rng(0)
    for pid in ("P\x1bESC", "P" * 200, "OK-1"):
        rows += [f"{pid},S,{v:.2f},{v / 3:.2f}" for v in rng.normal(90, 8, 250)]
    job_id = _upload(client, ("\n".join(rows) + "\n").encode()).json()["id"]
    status = _wait(client, job_id, timeout=30)
    assert status["status"] == "done", status
    assert (status["done"], status["errors"]) == (1, 2)
    results = client.get(f"/v1/batches/{job_id}/results", params={"format": "json"}).json()
    bad = [r for r in results if r["status"] == "error"]
    assert bad[0]["patient_id"] == "P\ufffdESC"
    assert len(bad[1]["patient_id"]) == 128 and bad[1]["patient_id"].endswith("…")
