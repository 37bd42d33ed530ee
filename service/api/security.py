"""Optional API keys: `HCT_API_KEYS` holds sha256 hex digests of the keys, never the keys,
each with the tenant it acts for and its scopes (`service/tenancy.py`).

A request presents its key as `Authorization: Bearer <key>` or `X-API-Key: <key>`. HTTP Basic
(the key as password) is accepted only where a browser itself must answer a login prompt, the
docs and the schema (`docs_guard`): a browser resends cached Basic credentials on its own, so a
cross-site page could make it post to `/v1` as the user. Bearer and `X-API-Key` headers are
set only by a script on the service's own origin. Digests are compared in constant time
against every configured hash. Health and metrics stay open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence

from service.api.errors import ApiError
from service.tenancy import DEVELOPMENT, KeyEntry, Principal

ANONYMOUS = "anonymous"
FINGERPRINT_HEX = 12


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def fingerprint(key: str | None) -> str:
    """How a key is named in the audit: the first 12 hex of its sha256, never the key."""
    return ANONYMOUS if key is None else "key:" + key_digest(key)[:FINGERPRINT_HEX]


def _is_basic(headers: Mapping[str, str]) -> bool:
    return (headers.get("authorization") or "").partition(" ")[0].lower() == "basic"


def presented_key(headers: Mapping[str, str], *, allow_basic: bool = False) -> str | None:
    """The key the request carries; Basic credentials count only with `allow_basic`."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() or None
        if scheme.lower() == "basic" and allow_basic:
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            return decoded.partition(":")[2] or None
    return headers.get("x-api-key") or None


class Rejected(ApiError):
    """A refused credential (401/403); carries what the audit records about the caller."""

    def __init__(self, status: int, code: str, message: str, *, presented: str | None,
                 tenant: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, code, message, "header.authorization", headers)
        self.fingerprint = fingerprint(presented)
        self.tenant = tenant


def authenticate(headers: Mapping[str, str], keys: Sequence[KeyEntry], *,
                 allow_basic: bool = False) -> Principal:
    """The caller's `Principal`, or `Rejected` (401 without a key, 403 with a wrong one).

    Without configured keys (development) every caller is tenant `default` with all scopes.
    HTTP Basic counts as a key only with `allow_basic` (the docs); elsewhere a request whose
    only credential is Basic gets a 401 saying which header to send instead.
    """
    if not keys:
        return DEVELOPMENT
    key = presented_key(headers, allow_basic=allow_basic)
    if key is None:
        message = ("HTTP Basic credentials are accepted only on the docs (/docs, /redoc, "
                   "/openapi.json): send the API key as 'Authorization: Bearer <key>' or "
                   "'X-API-Key: <key>'") if _is_basic(headers) and not allow_basic else (
                   "an API key is required: send 'Authorization: Bearer <key>' or "
                   "'X-API-Key: <key>'")
        raise Rejected(401, "unauthorized", message, presented=None,
                       headers={"WWW-Authenticate": "Bearer"})
    digest = key_digest(key)
    found: KeyEntry | None = None
    for entry in keys:  # no early exit: time does not depend on which key matched
        if hmac.compare_digest(digest, entry.digest):
            found = entry
    if found is None:
        raise Rejected(403, "forbidden", "the API key is not valid", presented=key)
    return Principal(found.tenant, found.scopes, fingerprint(key))


def require_scope(principal: Principal, scope: str, presented: str | None) -> Principal:
    """`principal` if its key holds `scope` (or `admin`); else a 403 naming the scope."""
    if principal.allows(scope):
        return principal
    raise Rejected(403, "insufficient_scope", f"this API key lacks the {scope!r} scope "
                   f"(it has {'+'.join(sorted(principal.scopes))})", presented=presented,
                   tenant=principal.tenant,
                   headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", '
                                                f'scope="{scope}"'})
