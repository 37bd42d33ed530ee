"""Repository functions for batch jobs, their chunks and their per-sample items.

Exactly-once scoring rests on two guards: a chunk is completed only by the worker holding its
lease (a conditional UPDATE), and `job_items` is keyed by (job_id, seq), so a sample can never
be stored twice even if two workers raced.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from service.db.engine import utcnow
from service.db.tables import batch_jobs, job_chunks, job_items, predictions
from service.prediction.prediction import Prediction


@dataclass(frozen=True)
class JobRow:
    id: str
    created_at: datetime
    updated_at: datetime
    status: str
    filename: str
    format: str | None
    upload_path: str
    total_items: int | None
    done_items: int
    error_items: int
    error: str | None
    principal: str
    tenant: str
    lease_owner: str | None
    lease_expires_at: datetime | None
    attempts: int = 0  # splits begun, this one included


@dataclass(frozen=True)
class ChunkClaim:
    job_id: str
    chunk_index: int
    seqs: list[int]
    payload: bytes
    attempts: int
    tenant: str  # the job's: its predictions are the tenant's


def create_job(conn: Connection, *, job_id: str, filename: str, fmt: str | None,
               upload_path: str, principal: str, tenant: str) -> None:
    now = utcnow()
    conn.execute(insert(batch_jobs).values(
        id=job_id, created_at=now, updated_at=now, status="queued", filename=filename,
        format=fmt, upload_path=upload_path, done_items=0, error_items=0, principal=principal,
        tenant=tenant))


def get_job(conn: Connection, job_id: str, *, tenant: str | None) -> JobRow | None:
    """The job, if it exists and is the tenant's (`None`: any tenant's)."""
    query = select(batch_jobs).where(batch_jobs.c.id == job_id)
    if tenant is not None:
        query = query.where(batch_jobs.c.tenant == tenant)
    row = conn.execute(query).first()
    return None if row is None else JobRow(**row._asdict())


def _expired(table: Any, now: datetime) -> Any:
    return or_(table.c.lease_owner.is_(None), table.c.lease_expires_at < now)


def _lock_one(conn: Connection, query: Any) -> Any:
    """`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serialises writers by itself."""
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return conn.execute(query.limit(1)).first()


def renew_job_lease(conn: Connection, job_id: str, worker: str, lease: timedelta) -> bool:
    result = conn.execute(update(batch_jobs).where(
        batch_jobs.c.id == job_id, batch_jobs.c.lease_owner == worker
    ).values(lease_expires_at=utcnow() + lease))
    return result.rowcount == 1


def claim_job_to_split(conn: Connection, worker: str, lease: timedelta) -> JobRow | None:
    """Take a queued job (or one whose splitter died) to read its upload into chunks."""
    now = utcnow()
    row = _lock_one(conn, select(batch_jobs.c.id).where(
        batch_jobs.c.status == "queued", _expired(batch_jobs, now)
    ).order_by(batch_jobs.c.created_at))
    if row is None:
        return None
    taken = conn.execute(update(batch_jobs).where(
        batch_jobs.c.id == row.id, batch_jobs.c.status == "queued", _expired(batch_jobs, now)
    ).values(lease_owner=worker, lease_expires_at=now + lease, updated_at=now,
             attempts=batch_jobs.c.attempts + 1))
    return get_job(conn, row.id, tenant=None) if taken.rowcount == 1 else None


def retry_split_later(conn: Connection, job_id: str, worker: str, delay: timedelta) -> None:
    """Give a failed split back to the pool after `delay` (the attempt stays counted)."""
    conn.execute(update(batch_jobs).where(
        batch_jobs.c.id == job_id, batch_jobs.c.lease_owner == worker
    ).values(lease_expires_at=utcnow() + delay, updated_at=utcnow()))


def queued_job_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Those of `ids` whose job still waits to be split (their uploads are still needed)."""
    found: set[str] = set()
    for i in range(0, len(ids), 500):
        found.update(conn.execute(select(batch_jobs.c.id).where(
            batch_jobs.c.id.in_(ids[i:i + 500]), batch_jobs.c.status == "queued")).scalars())
    return found


def reset_split(conn: Connection, job_id: str) -> None:
    """Forget a half-finished split (its chunks were never claimable) before redoing it."""
    conn.execute(delete(job_items).where(job_items.c.job_id == job_id))
    conn.execute(delete(job_chunks).where(job_chunks.c.job_id == job_id))


def add_chunk(conn: Connection, job_id: str, chunk_index: int, seqs: Sequence[int],
              payload: bytes) -> None:
    conn.execute(insert(job_chunks).values(
        job_id=job_id, chunk_index=chunk_index, first_seq=seqs[0], n_items=len(seqs),
        seqs=list(seqs), payload=payload, status="pending", attempts=0))


def count_items(conn: Connection, job_id: str, status: str) -> int:
    return int(conn.execute(select(func.count()).select_from(job_items).where(
        job_items.c.job_id == job_id, job_items.c.status == status)).scalar_one())


def add_error_items(conn: Connection, job_id: str, items: Sequence[dict[str, Any]]) -> None:
    """Per-sample failures found while reading; they count as processed, not as failed jobs."""
    if items:
        conn.execute(insert(job_items), [{"job_id": job_id, "status": "error", **i}
                                         for i in items])


def finish_split(conn: Connection, job_id: str, worker: str, total: int, errors: int) -> bool:
    """Publish the chunks (status `running`) — only if this worker still holds the split."""
    done = conn.execute(update(batch_jobs).where(
        batch_jobs.c.id == job_id, batch_jobs.c.lease_owner == worker,
        batch_jobs.c.status == "queued"
    ).values(status="running", total_items=total, error_items=errors, lease_owner=None,
             lease_expires_at=None, updated_at=utcnow()))
    return done.rowcount == 1


def fail_job(conn: Connection, job_id: str, message: str) -> None:
    conn.execute(update(batch_jobs).where(batch_jobs.c.id == job_id).values(
        status="failed", error=message, lease_owner=None, lease_expires_at=None,
        updated_at=utcnow()))


def claim_chunk(conn: Connection, worker: str, lease: timedelta) -> ChunkClaim | None:
    """Lease one pending chunk of a running job (expired leases are fair game)."""
    now = utcnow()
    row = _lock_one(conn, select(job_chunks.c.job_id, job_chunks.c.chunk_index).join(
        batch_jobs, batch_jobs.c.id == job_chunks.c.job_id
    ).where(batch_jobs.c.status == "running", job_chunks.c.status == "pending",
            _expired(job_chunks, now)).order_by(job_chunks.c.job_id, job_chunks.c.chunk_index))
    if row is None:
        return None
    key = and_(job_chunks.c.job_id == row.job_id, job_chunks.c.chunk_index == row.chunk_index)
    taken = conn.execute(update(job_chunks).where(
        key, job_chunks.c.status == "pending", _expired(job_chunks, now)
    ).values(lease_owner=worker, lease_expires_at=now + lease,
             attempts=job_chunks.c.attempts + 1))
    if taken.rowcount != 1:
        return None
    chunk = conn.execute(select(job_chunks, batch_jobs.c.tenant).join(
        batch_jobs, batch_jobs.c.id == job_chunks.c.job_id).where(key)).one()
    return ChunkClaim(chunk.job_id, chunk.chunk_index, list(chunk.seqs), chunk.payload,
                      chunk.attempts, chunk.tenant)


def complete_chunk(conn: Connection, claim: ChunkClaim, worker: str, done: int,
                   errors: int) -> bool:
    """Mark a chunk done if this worker still holds its lease; False means roll back.

    The job row is updated first: that row lock serialises chunk completions of one job, so
    the "no chunk pending" check that follows sees every other completion.
    """
    conn.execute(update(batch_jobs).where(batch_jobs.c.id == claim.job_id).values(
        done_items=batch_jobs.c.done_items + done, error_items=batch_jobs.c.error_items + errors,
        updated_at=utcnow()))
    result = conn.execute(update(job_chunks).where(
        job_chunks.c.job_id == claim.job_id, job_chunks.c.chunk_index == claim.chunk_index,
        job_chunks.c.status == "pending", job_chunks.c.lease_owner == worker
    ).values(status="done", lease_owner=None, lease_expires_at=None))
    return result.rowcount == 1


def finish_job_if_complete(conn: Connection, job_id: str) -> bool:
    pending = conn.execute(select(func.count()).select_from(job_chunks).where(
        job_chunks.c.job_id == job_id, job_chunks.c.status == "pending")).scalar_one()
    if pending:
        return False
    result = conn.execute(update(batch_jobs).where(
        batch_jobs.c.id == job_id, batch_jobs.c.status == "running"
    ).values(status="done", updated_at=utcnow()))
    return result.rowcount == 1


def add_done_items(conn: Connection, job_id: str, items: Sequence[dict[str, Any]]) -> None:
    if items:
        conn.execute(insert(job_items), [{"job_id": job_id, "status": "done", **i}
                                         for i in items])


@dataclass(frozen=True)
class JobResult:
    """One processed sample of a job: its prediction, or why it could not be scored."""

    seq: int
    patient_id: str | None
    sample_id: str | None
    status: str  # done | error
    error_kind: str | None
    error_message: str | None
    prediction: Prediction | None


def iter_results(conn: Connection, job_id: str, page: int = 500) -> Iterator[JobResult]:
    """Every processed sample of a job in upload order, keyset-paginated."""
    stored = [c.label(f"p_{c.name}") for c in predictions.columns]
    last = -1
    while True:
        rows = conn.execute(
            select(job_items.c.seq, job_items.c.patient_id, job_items.c.sample_id,
                   job_items.c.status, job_items.c.error_kind, job_items.c.error_message,
                   *stored)
            .select_from(job_items.outerjoin(predictions,
                                             predictions.c.id == job_items.c.prediction_id))
            .where(job_items.c.job_id == job_id, job_items.c.seq > last)
            .order_by(job_items.c.seq).limit(page)).all()
        if not rows:
            return
        for r in rows:
            row = r._asdict()
            p = {k[2:]: row.pop(k) for k in list(row) if k.startswith("p_")}
            yield JobResult(**row, prediction=None if p["id"] is None else Prediction(**p))
        last = rows[-1].seq
