"""`Idempotency-Key` records: a retry of the same request gets the resource the first attempt
created; the same key with a different request is an `IdempotencyConflict`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from service.db.engine import utcnow
from service.db.errors import IdempotencyConflict
from service.db.tables import idempotency_keys


@dataclass(frozen=True)
class IdempotencyRecord:
    """A key to save beside the resource it created, in the same transaction."""

    tenant: str
    principal: str  # the key that created it (audit), not part of the lookup
    key: str
    request_sha256: str
    resource: str
    resource_id: str


def save_idempotency(conn: Connection, record: IdempotencyRecord) -> None:
    """Record a key in the same transaction as the resource it created (so a crash between
    them cannot leave one without the other); a concurrent duplicate fails on the primary key.
    """
    conn.execute(insert(idempotency_keys).values(**vars(record), created_at=utcnow()))


def replayed_id(conn: Connection, tenant: str, key: str | None, digest: str,
                resource: str) -> str | None:
    """The id created by an earlier request of this tenant with this key, or None for a new
    request (another tenant's key of the same name is another key)."""
    if key is None:
        return None
    row = conn.execute(
        select(idempotency_keys.c.request_sha256, idempotency_keys.c.resource,
               idempotency_keys.c.resource_id)
        .where(idempotency_keys.c.tenant == tenant, idempotency_keys.c.key == key)
    ).first()
    if row is None:
        return None
    request_sha256, stored_resource, resource_id = row
    if request_sha256 != digest or stored_resource != resource:
        raise IdempotencyConflict(key)
    return str(resource_id)
