"""Uploads are transient: deleted once split into chunks or when the job fails, and a sweep
(at worker start and periodically) removes entries no queued job owns after a grace period.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from fastapi.testclient import TestClient

from service.api.app import create_app
from service.jobs.uploads import sweep_orphans
from tests.service.api.test_batches_api import _upload, _wait, export_csv


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (then, then))


def test_no_upload_is_left_once_jobs_finish_or_fail(client, settings):
    import io
    import zipfile

    empty_zip = io.BytesIO()
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("readme.txt", "no FCS files here")
    jobs = [_upload(client, export_csv(40, bad=(3,))).json()["id"],  # done, one bad sample
            _upload(client, empty_zip.getvalue(), name="x.zip").json()["id"]]  # the job fails
    refused = [_upload(client, b"patient_id,sample_id\nP1,S1\n"),  # header checked at upload
               _upload(client, b"PAR1" + b"\0" * 64 + b"PAR1", name="x.parquet")]
    assert [r.status_code for r in refused] == [422, 422]
    statuses = [_wait(client, j)["status"] for j in jobs]
    assert statuses == ["done", "failed"]
    assert _files(settings.upload_dir) == []
    assert list(settings.upload_dir.iterdir()) == []  # the job folders too


def test_sweep_removes_only_old_entries_no_queued_job_owns(settings):
    quiet = settings.model_copy(update={"run_jobs": False})
    with TestClient(create_app(quiet)) as client:
        queued = _upload(client, export_csv(2)).json()["id"]
        uploads = settings.upload_dir
        orphan, fresh, stray = uploads / "crashed-upload", uploads / "receiving", uploads / "x.tmp"
        for folder in (orphan, fresh):
            folder.mkdir()
            (folder / "export.csv").write_bytes(b"patient_id\n")
        stray.write_bytes(b"left over")
        for old in (orphan, stray, uploads / queued):
            _age(old, 7200)
        removed = sweep_orphans(client.app.state.hct.engine, uploads, grace_seconds=3600)
        assert removed == 2
        assert sorted(p.name for p in uploads.iterdir()) == sorted([queued, "receiving"])
        assert _files(uploads / queued)  # a queued job's upload is still needed


def test_worker_sweeps_orphans_when_it_starts(settings):
    orphan = settings.upload_dir / "left-by-a-crash"
    orphan.mkdir(parents=True)
    (orphan / "export.csv").write_bytes(b"patient_id,sample_id\n")
    _age(orphan, 7200)
    with TestClient(create_app(settings)):
        deadline = time.monotonic() + 10
        while orphan.exists():
            assert time.monotonic() < deadline, "orphan upload still there"
            time.sleep(0.05)
