"""Uploads are transient: a job's file is deleted once it is split into chunks (the chunks live
in the database) or once the job fails, and a sweep removes what a crash left behind.

Each upload lives in `<upload_dir>/<job id>/`. An entry of the upload folder is an orphan when
no queued job owns it and nothing in it changed for a grace period (an upload still being
received has no job row yet, but its file keeps changing).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from sqlalchemy import Engine

from service.jobs import store as job_store

log = logging.getLogger("hct.jobs")


def remove_upload(upload_path: str | Path, job_id: str) -> None:
    """Delete a job's upload: its own folder when it has one, else just the file."""
    path = Path(upload_path)
    if path.parent.name == job_id:
        shutil.rmtree(path.parent, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _last_change(entry: Path) -> float:
    """Newest mtime of an entry and (for a folder) of what it holds, one level down."""
    try:
        newest = entry.lstat().st_mtime
        if entry.is_dir() and not entry.is_symlink():
            for child in entry.iterdir():
                newest = max(newest, child.lstat().st_mtime)
        return newest
    except FileNotFoundError:  # removed meanwhile (another worker's sweep, a finished split)
        return time.time()


def sweep_orphans(engine: Engine, upload_dir: Path, grace_seconds: float) -> int:
    """Remove upload entries no queued job owns and unchanged for `grace_seconds`; returns
    how many were removed.
    """
    if not upload_dir.is_dir():
        return 0
    cutoff = time.time() - grace_seconds
    old = [e for e in upload_dir.iterdir() if _last_change(e) < cutoff]
    if not old:
        return 0
    with engine.connect() as conn:
        live = job_store.queued_job_ids(conn, [e.name for e in old])
    removed = 0
    for entry in old:
        if entry.name in live:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.info("upload sweep removed %d orphaned entries", removed)
    return removed
