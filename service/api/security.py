"""Optional API keys: `HCT_API_KEYS` holds sha256 hex digests of the keys, never the keys.

A request presents its key as `Authorization: Bearer <key>` or `X-API-Key: <key>`. Digests are
compared in constant time against every configured hash. Health and metrics stay open.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from service.api.errors import ApiError

ANONYMOUS = "anonymous"


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth and auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.headers.get("x-api-key") or None


def authenticate(request: Request, key_hashes: list[str]) -> str:
    """The caller's principal (a prefix of its key hash), or 401/403 when keys are required."""
    if not key_hashes:
        return ANONYMOUS
    key = presented_key(request)
    if key is None:
        raise ApiError(401, "unauthorized", "an API key is required: send 'Authorization: "
                       "Bearer <key>' or 'X-API-Key: <key>'", "header.authorization",
                       headers={"WWW-Authenticate": "Bearer"})
    digest = key_digest(key)
    match = False
    for candidate in key_hashes:  # no early exit: time does not depend on which key matched
        match |= hmac.compare_digest(digest, candidate)
    if not match:
        raise ApiError(403, "forbidden", "the API key is not valid", "header.authorization")
    return "key:" + digest[:12]
