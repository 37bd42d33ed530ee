"""`Idempotency-Key` look-ups for a group of keys in one query (a bulk request's samples)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from service.db.errors import IdempotencyConflict
from service.db.idempotency import IdempotencyRecord
from service.db.tables import idempotency_keys

__all__ = ["IdempotencyRecord", "replayed_ids"]


def replayed_ids(conn: Connection, tenant: str, keys: Sequence[str], digest: str,
                 resource: str) -> dict[str, str]:
    """Key → id created by an earlier request of this tenant, for the keys seen before; a key
    recorded for another request (digest or resource differs) is an `IdempotencyConflict`."""
    if not keys:
        return {}
    rows = conn.execute(
        select(idempotency_keys.c.key, idempotency_keys.c.request_sha256,
               idempotency_keys.c.resource, idempotency_keys.c.resource_id)
        .where(idempotency_keys.c.tenant == tenant, idempotency_keys.c.key.in_(keys))
    ).all()
    out: dict[str, str] = {}
    for key, request_sha256, stored_resource, resource_id in rows:
        if request_sha256 != digest or stored_resource != resource:
            raise IdempotencyConflict(key)
        out[str(key)] = str(resource_id)
    return out
