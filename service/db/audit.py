"""The append-only audit log: who did what to which resource."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from service.db.engine import utcnow
from service.db.tables import audit_log


@dataclass(frozen=True)
class AuditEntry:
    principal: str
    action: str
    resource: str
    resource_id: str | None
    detail: str | None = None
    tenant: str | None = None  # None only for a refused key that names no tenant


def record_audit(conn: Connection, *, principal: str, tenant: str | None, action: str,
                 resource: str, resource_id: str | None, detail: str | None = None) -> None:
    """Append one audit entry. There is deliberately no update or delete function."""
    record_audits(conn, [AuditEntry(principal, action, resource, resource_id, detail, tenant)])


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
