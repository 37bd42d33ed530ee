"""Repository functions for predictions, idempotency keys and the audit log.

Routes and jobs call these; no SQL lives anywhere else. Every function takes a SQLAlchemy
`Connection` so the caller decides the transaction (one request = one transaction).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, text

from service.tables import audit_log, idempotency_keys, predictions


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def make_engine(url: str) -> Engine:
    """An engine for SQLite (file, WAL, foreign keys on) or PostgreSQL (pre-ping pool)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def ping(engine: Engine) -> bool:
    """True when the database answers a trivial query."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # any driver error means "not ready"
        return False


@dataclass(frozen=True)
class PredictionRecord:
    """Everything stored about one prediction; mirrors the `predictions` table."""

    id: str
    created_at: datetime
    patient_id: str
    sample_id: str
    source: str
    job_id: str | None
    hematocrit_pct: float
    flag: str
    n_cells: int
    n_cells_used: int
    indices: dict[str, float]
    baselines: dict[str, float | None]
    lab: dict[str, Any]
    model_name: str
    model_version: str
    onnx_sha256: str
    provider: str


InsertHook = Callable[[Connection, Sequence["PredictionRecord"]], None]
# Work that must commit with the predictions themselves (the HL7 outbox), per engine.
_insert_hooks: WeakKeyDictionary[Engine, InsertHook] = WeakKeyDictionary()


def on_insert(engine: Engine, hook: InsertHook) -> None:
    """Run `hook(conn, records)` in the same transaction as every `insert_predictions`."""
    _insert_hooks[engine] = hook


def insert_predictions(conn: Connection, records: Sequence[PredictionRecord]) -> None:
    if records:
        # vars(), not asdict(): asdict deep-copies every nested dict, per row, for nothing
        conn.execute(insert(predictions), [dict(vars(r)) for r in records])
        hook = _insert_hooks.get(conn.engine)
        if hook is not None:
            hook(conn, records)


def get_prediction(conn: Connection, prediction_id: str) -> PredictionRecord | None:
    row = conn.execute(select(predictions).where(predictions.c.id == prediction_id)).first()
    return None if row is None else PredictionRecord(**row._asdict())


def list_predictions(conn: Connection, *, patient_id: str | None, limit: int,
                     offset: int) -> tuple[list[PredictionRecord], int]:
    """One page of predictions, newest first, plus the total count for the filter."""
    query = select(predictions)
    count = select(func.count()).select_from(predictions)
    if patient_id is not None:
        query = query.where(predictions.c.patient_id == patient_id)
        count = count.where(predictions.c.patient_id == patient_id)
    query = query.order_by(predictions.c.created_at.desc(), predictions.c.id).limit(limit)
    rows = conn.execute(query.offset(offset)).all()
    total = conn.execute(count).scalar_one()
    return [PredictionRecord(**r._asdict()) for r in rows], int(total)


def count_predictions(conn: Connection, *, job_id: str | None = None) -> int:
    query = select(func.count()).select_from(predictions)
    if job_id is not None:
        query = query.where(predictions.c.job_id == job_id)
    return int(conn.execute(query).scalar_one())


@dataclass(frozen=True)
class IdempotencyHit:
    request_sha256: str
    resource: str
    resource_id: str


def find_idempotency(conn: Connection, principal: str, key: str) -> IdempotencyHit | None:
    row = conn.execute(
        select(idempotency_keys.c.request_sha256, idempotency_keys.c.resource,
               idempotency_keys.c.resource_id)
        .where(idempotency_keys.c.principal == principal, idempotency_keys.c.key == key)
    ).first()
    return None if row is None else IdempotencyHit(*row)


def save_idempotency(conn: Connection, principal: str, key: str, request_sha256: str,
                     resource: str, resource_id: str) -> None:
    """Record a key in the same transaction as the resource it created (so a crash between
    them cannot leave one without the other); a concurrent duplicate fails on the primary key.
    """
    conn.execute(insert(idempotency_keys).values(
        principal=principal, key=key, request_sha256=request_sha256, resource=resource,
        resource_id=resource_id, created_at=utcnow()))


def record_audit(conn: Connection, *, principal: str, action: str, resource: str,
                 resource_id: str | None, detail: str | None = None) -> None:
    """Append one audit entry. There is deliberately no update or delete function."""
    record_audits(conn, [AuditEntry(principal, action, resource, resource_id, detail)])


@dataclass(frozen=True)
class AuditEntry:
    principal: str
    action: str
    resource: str
    resource_id: str | None
    detail: str | None = None


def record_audits(conn: Connection, entries: Sequence[AuditEntry]) -> None:
    """Append audit entries in one statement (a micro-batch of predictions writes them all)."""
    if entries:
        at = utcnow()
        conn.execute(insert(audit_log), [{"at": at, **vars(e)} for e in entries])


def audit_entries(conn: Connection, *, resource_id: str | None = None) -> list[dict[str, Any]]:
    query = select(audit_log).order_by(audit_log.c.id)
    if resource_id is not None:
        query = query.where(audit_log.c.resource_id == resource_id)
    return [r._asdict() for r in conn.execute(query).all()]
