"""A full disk is a 507 with Retry-After that says so, and nothing half-stored: no upload file
left, no job row, no prediction row. The disks are real: a tiny tmpfs that fills up (ENOSPC)
under the upload folder or the SQLite file; skipped where mounting one is not permitted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from service.api.app import create_app
from service.settings import Settings
from tests.reliability.faults import prediction_body
from tests.reliability.server import REPO
from tests.reliability.tmpfs import MountRefused, fill, tiny_tmpfs


@pytest.fixture
def tiny(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 256k, or of the size an indirect parameter names."""
    try:
        with tiny_tmpfs(tmp_path / "tiny", getattr(request, "param", "256k")) as mounted:
            yield mounted
    except MountRefused as exc:
        pytest.skip(f"needs a tmpfs of its own (run as root): {exc}")


def _client(database_url: str, upload_dir: Path) -> TestClient:
    settings = Settings(environment="test", database_url=database_url, upload_dir=upload_dir,
                        model_dir=REPO / "models" / "default", execution_provider="cpu",
                        run_jobs=False, max_queue_delay_ms=1.0, _env_file=None)
    return TestClient(create_app(settings))


def _csv(samples: int, cells: int = 1000) -> bytes:
    rng = np.random.default_rng(0)
    lines = ["patient_id,sample_id,volume_fl,hemoglobin_pg"]
    for s in range(samples):
        lines += [f"P-{s},S-{s},{v:.2f},{v / 3:.2f}" for v in rng.normal(90, 8, cells)]
    return ("\n".join(lines) + "\n").encode()


def _count(database_url: str, table: str) -> int:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        n = int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    engine.dispose()
    return n


def test_full_upload_disk_is_507_with_retry_after_and_leaves_no_file_and_no_job(tiny, tmp_path):
    database = f"sqlite:///{tmp_path / 'hct.db'}"
    with _client(database, tiny) as client:
        big = _csv(40)  # ~1 MB, four times the upload disk
        r = client.post("/v1/batches", files={"file": ("big.csv", big)})
        assert r.status_code == 507, r.text
        assert r.json()["error"]["code"] == "insufficient_storage"
        assert "storage is full" in r.json()["error"]["message"]
        assert int(r.headers["Retry-After"]) > 0
        assert list(tiny.iterdir()) == []  # no partial upload, no job folder
        assert _count(database, "batch_jobs") == 0
        small = client.post("/v1/batches", files={"file": ("small.csv", _csv(1, 300))})
        assert small.status_code == 202, small.text  # the disk has room again: accepted


@pytest.mark.parametrize("tiny", ["16m"], indirect=True)  # the migrated schema fits, then
# the filler takes the rest
def test_full_database_disk_is_507_and_stores_nothing_half(tiny):
    database = f"sqlite:///{tiny / 'hct.db'}"
    with _client(database, tiny / "uploads") as client:
        assert client.post("/v1/predictions", json=prediction_body(0)).status_code == 201
        filler = fill(tiny, leave_bytes=16 * 1024)
        answers = [client.post("/v1/predictions", json=prediction_body(i))
                   for i in range(1, 60)]
        statuses = [r.status_code for r in answers]
        assert 507 in statuses, statuses
        assert set(statuses) <= {201, 507}, statuses  # never a 500
        full = next(r for r in answers if r.status_code == 507)
        assert full.json()["error"]["code"] == "insufficient_storage"
        assert "database's storage is full" in full.json()["error"]["message"]
        assert int(full.headers["Retry-After"]) > 0
        filler.unlink()
        assert client.post("/v1/predictions", json=prediction_body(99)).status_code == 201
    created = 2 + statuses.count(201)
    assert _count(database, "predictions") == created  # each 507 stored nothing
