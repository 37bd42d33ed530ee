"""Persisted, resumable batch-scoring jobs, worked by any number of processes.

A job moves queued → running → done (or failed when the upload cannot be read at all). Work
happens in two claimable steps, both leased through the database:
1. split: one worker reads the upload and stores it as chunks of cell sets (per-sample read
   errors become error items at once); chunks become claimable only when the split is whole.
2. score: workers lease chunks, score them through the shared pipeline, and store predictions,
   items and the chunk's completion in one transaction.
A worker that dies loses its lease; the next one redoes the unfinished step. Nothing is stored
twice: completion requires the lease, and items are keyed by (job, position in upload).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from ingestion.errors import IngestionError, SampleError
from ingestion.sources import iter_source
from service import metrics
from service.collection_time import localized
from service.db.writer import PredictionWriter
from service.jobs import store as job_store
from service.jobs.chunks import decode_chunk, encode_chunk
from service.jobs.redact import without_paths
from service.jobs.uploads import remove_upload, sweep_orphans
from service.monitoring import Monitor, Observation
from service.prediction.predictor import Predictor
from service.settings import Settings

if TYPE_CHECKING:
    from ingestion.cells import CellSet

log = logging.getLogger("hct.jobs")
MAX_CHUNK_ATTEMPTS = 3
MAX_SPLIT_ATTEMPTS = 3  # a split that fails (or kills its worker) this often is poison


class _LeaseLost(Exception):
    """Another worker took over this work; roll back and move on."""


def worker_name() -> str:
    return f"{socket.gethostname()[:24]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobRunner:
    """Polls the database for job work; runs in a thread beside the API, or alone (`hct worker`)."""

    def __init__(self, settings: Settings, engine: Engine, predictor: Predictor,
                 writer: PredictionWriter, *, monitor: Monitor | None = None,
                 poll_seconds: float = 0.25, name: str | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.predictor = predictor
        self.writer = writer
        self.monitor = monitor  # None in a worker process without /metrics
        self.name = name or worker_name()
        self.poll_seconds = poll_seconds
        self.lease = timedelta(seconds=settings.job_lease_seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="hct-jobs", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Finish the current unit of work, then leave `run_forever` (signal-safe)."""
        self._stop.set()

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def sweep_uploads(self) -> int:
        """Remove uploads no queued job needs (left by crashes); errors only get logged."""
        try:
            return sweep_orphans(self.engine, Path(self.settings.upload_dir),
                                 self.settings.upload_orphan_grace_s)
        except Exception:
            log.exception("upload sweep failed")
            return 0

    def run_forever(self) -> None:
        self.sweep_uploads()
        next_sweep = time.monotonic() + self.settings.upload_sweep_interval_s
        while not self._stop.is_set():
            if time.monotonic() >= next_sweep:
                self.sweep_uploads()
                next_sweep = time.monotonic() + self.settings.upload_sweep_interval_s
            try:
                busy = self.step()
            except Exception:  # keep the worker alive; the lease returns the work to the pool
                log.exception("job worker step failed")
                busy = False
            if not busy:
                self._stop.wait(self.poll_seconds)

    def run_until_idle(self) -> None:
        """Work until nothing is claimable (tests and `hct worker --once`)."""
        while self.step():
            pass

    def step(self) -> bool:
        """Do one unit of work (split a job or score a chunk); False when there was none."""
        with self.engine.begin() as conn:
            job = job_store.claim_job_to_split(conn, self.name, self.lease)
        if job is not None:
            self.split(job)
            return True
        with self.engine.begin() as conn:
            claim = job_store.claim_chunk(conn, self.name, self.lease)
        if claim is not None:
            self.score(claim)
            return True
        return False

    def split(self, job: job_store.JobRow) -> None:
        settings = self.settings
        if job.attempts > MAX_SPLIT_ATTEMPTS:  # earlier tries died without a word
            self._fail_job(job, f"split_failed: reading the upload stopped {MAX_SPLIT_ATTEMPTS} "
                           "times without finishing (the worker reading it died or was "
                           "stopped); not retried", "split_failed")
            return
        with self.engine.begin() as conn:
            job_store.reset_split(conn, job.id)
        chunk: list[tuple[int, CellSet]] = []
        errors: list[dict[str, object]] = []
        n_chunks, total = 0, 0

        def flush() -> None:
            nonlocal n_chunks, chunk, errors
            with self.engine.begin() as conn:
                if not job_store.renew_job_lease(conn, job.id, self.name, self.lease):
                    raise _LeaseLost
                if chunk:
                    job_store.add_chunk(conn, job.id, n_chunks, [q for q, _ in chunk],
                                        encode_chunk(chunk))
                    n_chunks += 1
                job_store.add_error_items(conn, job.id, errors)
            for e in errors:
                metrics.INGESTION_ERRORS.labels(str(e["error_kind"])).inc()
            chunk, errors = [], []

        try:
            samples = iter_source(Path(job.upload_path), fmt=job.format,
                                  min_cells=settings.min_cells, max_cells=settings.max_cells)
            for seq, item in enumerate(localized(samples, settings.local_zone)):
                total += 1
                if isinstance(item, SampleError):
                    errors.append(_error_item(seq, item, job))
                else:
                    chunk.append((seq, item))
                if len(chunk) >= settings.job_chunk_size or len(errors) >= 1000:
                    flush()
            flush()
        except _LeaseLost:
            log.warning("job %s: split lease lost; another worker will redo it", job.id)
            return
        except IngestionError as exc:
            self._fail_job(job, f"{exc.kind}: {exc.message}", exc.kind)
            return
        except Exception as exc:  # a bug or an outage: retry a few times, then give up
            log.exception("job %s: split attempt %d failed", job.id, job.attempts)
            self._split_failed(job, exc)
            return
        with self.engine.begin() as conn:
            n_errors = job_store.count_items(conn, job.id, "error")
            split = job_store.finish_split(conn, job.id, self.name, total, n_errors)
            if split:
                metrics.JOB_ITEMS.labels("error").inc(n_errors)
                if job_store.finish_job_if_complete(conn, job.id):
                    metrics.JOBS.labels("done").inc()
        if split:  # the chunks are committed: the upload is no longer needed
            remove_upload(job.upload_path, job.id)
        log.info("job %s: %d samples in %d chunks, %d unreadable", job.id, total, n_chunks,
                 n_errors)

    def _split_failed(self, job: job_store.JobRow, exc: Exception) -> None:
        if job.attempts >= MAX_SPLIT_ATTEMPTS:
            # The exception text is for the log (SQL, paths, internals), not for the caller.
            self._fail_job(job, f"split_failed: reading the upload failed {job.attempts} times "
                           f"({type(exc).__name__}); not retried, see the worker log",
                           "split_failed")
            return
        delay = min(self.lease, timedelta(seconds=2 ** job.attempts))
        try:
            with self.engine.begin() as conn:
                job_store.retry_split_later(conn, job.id, self.name, delay)
        except Exception:  # the database is away: the lease expires and the job returns
            log.exception("job %s: could not schedule the retry", job.id)

    def _fail_job(self, job: job_store.JobRow, message: str, kind: str) -> None:
        """Fail the whole job with a message free of server paths, and drop its upload."""
        with self.engine.begin() as conn:
            job_store.fail_job(conn, job.id, without_paths(message, job.upload_path,
                                                           job.filename))
        remove_upload(job.upload_path, job.id)
        metrics.INGESTION_ERRORS.labels(kind).inc()
        metrics.JOBS.labels("failed").inc()

    def score(self, claim: job_store.ChunkClaim) -> None:
        try:
            if claim.attempts > MAX_CHUNK_ATTEMPTS:
                raise RuntimeError(f"chunk failed {MAX_CHUNK_ATTEMPTS} times")
            items = decode_chunk(claim.payload, self.settings.min_cells)
            records = self.predictor.predict_many([cs for _, cs in items], source="batch",
                                                  job_id=claim.job_id, tenant=claim.tenant)
        except Exception as exc:  # an unscorable chunk must not block the job forever
            log.exception("job %s chunk %d could not be scored", claim.job_id, claim.chunk_index)
            self._fail_chunk(claim, without_paths(f"{type(exc).__name__}: {exc}"))
            return
        done = [{"seq": seq, "patient_id": cs.patient_id, "sample_id": cs.sample_id,
                 "prediction_id": r.id, "worker": self.name}
                for (seq, cs), r in zip(items, records, strict=True)]
        try:
            with self.engine.begin() as conn:
                if not job_store.complete_chunk(conn, claim, self.name, len(done), 0):
                    raise _LeaseLost
                self.writer.write(conn, records)
                job_store.add_done_items(conn, claim.job_id, done)
                finished = job_store.finish_job_if_complete(conn, claim.job_id)
        except _LeaseLost:
            log.warning("job %s chunk %d: lease lost; result discarded", claim.job_id,
                        claim.chunk_index)
            return
        metrics.PREDICTIONS_STORED.labels("batch").inc(len(records))
        if self.monitor is not None:
            self.monitor.observe_many(Observation.of_prediction(p) for p in records)
        metrics.JOB_ITEMS.labels("done").inc(len(records))
        if finished:
            metrics.JOBS.labels("done").inc()

    def _fail_chunk(self, claim: job_store.ChunkClaim, message: str) -> None:
        """Retry later (lease expiry) until attempts run out, then record every sample of the
        chunk as an error item so the job still finishes.
        """
        if claim.attempts <= MAX_CHUNK_ATTEMPTS:
            return
        errors = [{"seq": s, "error_kind": "scoring_failed", "error_message": message,
                   "worker": self.name} for s in claim.seqs]
        with self.engine.begin() as conn:
            if job_store.complete_chunk(conn, claim, self.name, 0, len(errors)):
                job_store.add_error_items(conn, claim.job_id, errors)
                job_store.finish_job_if_complete(conn, claim.job_id)


def _error_item(seq: int, err: SampleError, job: job_store.JobRow) -> dict[str, object]:
    return {"seq": seq, "patient_id": _storable_id(err.patient_id),
            "sample_id": _storable_id(err.sample_id), "error_kind": err.kind,
            "error_message": without_paths(err.message, job.upload_path, job.filename)}


def _storable_id(value: str | None) -> str | None:
    """An id a reader could not accept, shown in the results as far as it fits the column:
    control characters (NUL breaks PostgreSQL text) replaced, at most 128 characters.
    """
    if value is None:
        return None
    cleaned = "".join("\ufffd" if ord(c) < 32 or 0x7F <= ord(c) <= 0x9F else c for c in value)
    return cleaned if len(cleaned) <= 128 else cleaned[:127] + "…"
