"""Scale-out: several `hct worker` processes share one job through PostgreSQL; killing one
mid-way loses nothing and duplicates nothing (lease expiry hands its chunk to another)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.api.app import create_app
from service.db.tables import job_items, predictions
from tests.service.api.test_batches_api import export_csv

pytestmark = pytest.mark.skipif(not os.environ.get("HCT_TEST_DATABASE_URL"),
                                reason="needs PostgreSQL (HCT_TEST_DATABASE_URL)")


def _spawn(settings, name: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "HCT_DATABASE_URL": settings.database_url,
           "HCT_MODEL_DIR": str(settings.model_dir), "HCT_UPLOAD_DIR": str(settings.upload_dir),
           "HCT_JOB_LEASE_SECONDS": "3", "HCT_JOB_CHUNK_SIZE": "10", "HCT_ENVIRONMENT": "test",
           "HCT_EXECUTION_PROVIDER": "cpu", "HCT_LOG_LEVEL": "warning"}
    code = ("import sys; from service.settings import Settings; "
            "from service.jobs.worker import run_worker; "
            f"run_worker(Settings(_env_file=None), name={name!r})")
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def test_three_workers_one_killed_every_patient_scored_exactly_once(settings, tmp_path):
    quiet = settings.model_copy(update={"run_jobs": False})
    with TestClient(create_app(quiet)) as client:
        job_id = client.post("/v1/batches", files={
            "file": ("night.csv", export_csv(1000, cells=200), "text/csv")}).json()["id"]
        engine = client.app.state.hct.engine
        workers = [_spawn(settings, f"w{i}", tmp_path / f"w{i}.log") for i in range(3)]
        try:
            deadline = time.monotonic() + 240
            killed = False
            while time.monotonic() < deadline:
                status = client.get(f"/v1/batches/{job_id}").json()
                if not killed and status["done"] >= 200:
                    os.killpg(workers[0].pid, signal.SIGKILL)  # dies holding whatever it had
                    killed = True
                if status["status"] in ("done", "failed"):
                    break
                time.sleep(0.2)
        finally:
            for w in workers:
                if w.poll() is None:
                    os.killpg(w.pid, signal.SIGTERM)
            for w in workers:
                w.wait(timeout=30)
        assert killed, "the job finished before a worker could be killed"
        assert status["status"] == "done", (status, (tmp_path / "w1.log").read_text()[-2000:])
        assert (status["total"], status["done"], status["errors"]) == (1000, 1000, 0)
        with engine.connect() as conn:
            n_items = conn.execute(select(func.count()).select_from(job_items).where(
                job_items.c.job_id == job_id)).scalar_one()
            n_preds = conn.execute(select(func.count()).select_from(predictions).where(
                predictions.c.job_id == job_id)).scalar_one()
            n_patients = conn.execute(select(func.count(func.distinct(predictions.c.patient_id)))
                                      .where(predictions.c.job_id == job_id)).scalar_one()
            by_worker = dict(conn.execute(select(job_items.c.worker, func.count()).where(
                job_items.c.job_id == job_id).group_by(job_items.c.worker)).all())
        assert n_items == n_preds == n_patients == 1000
        assert len([w for w in by_worker if w in ("w1", "w2")]) == 2, by_worker  # shared work
