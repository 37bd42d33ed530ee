"""`Idempotency-Key` handling shared by every POST: a retry of the same request gets the
resource the first attempt created; the same key with a different request is a 409.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection

from service import store
from service.errors import ApiError


def request_digest(*parts: bytes) -> str:
    """sha256 over length-prefixed parts, so two different requests never share a digest."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def replayed_id(conn: Connection, principal: str, key: str | None, digest: str,
                resource: str) -> str | None:
    """The id created by an earlier request with this key, or None for a new request."""
    if key is None:
        return None
    hit = store.find_idempotency(conn, principal, key)
    if hit is None:
        return None
    if hit.request_sha256 != digest or hit.resource != resource:
        raise ApiError(409, "idempotency_key_reused", "Idempotency-Key was already used for a "
                       "different request", "header.idempotency-key")
    return hit.resource_id
