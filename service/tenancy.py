"""Tenants and scopes: who a caller is (`Principal`) and what its key may do.

A key belongs to one tenant (a lab, a study) and holds scopes: `predict` (create predictions
and batches), `read` (read them back) and `admin` (every scope, and reads across tenants).
`HCT_API_KEYS` entries are `TENANT:SCOPES:SHA256HEX` (scopes joined by `+`) or a bare digest,
which stands for tenant `default` with every scope (the single-tenant set-up).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_TENANT = "default"
SCOPES = ("predict", "read", "admin")
ALL_SCOPES = frozenset(SCOPES)
TENANT_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"  # a tenant name, as keys and queries give it
_TENANT = re.compile(TENANT_PATTERN)
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class KeyEntry:
    """One configured key: the sha256 of the key, the tenant it acts for and its scopes."""

    digest: str
    tenant: str
    scopes: frozenset[str]


def parse_key_entry(entry: str) -> KeyEntry:
    """`TENANT:SCOPES:SHA256HEX` or a bare digest; ValueError naming what is wrong."""
    parts = entry.strip().lower().split(":")
    if len(parts) == 1:
        tenant, scopes, digest = DEFAULT_TENANT, set(SCOPES), parts[0]
    elif len(parts) == 3:
        tenant, scope_text, digest = parts
        scopes = {s for s in scope_text.split("+") if s}
        if not _TENANT.match(tenant):
            raise ValueError(f"HCT_API_KEYS tenant {tenant!r}: lower-case letters, digits, "
                             "'.', '_' or '-', at most 64 characters")
        unknown = scopes - ALL_SCOPES
        if unknown or not scopes:
            raise ValueError(f"HCT_API_KEYS scopes {scope_text!r}: expected some of "
                             f"{'+'.join(SCOPES)}")
    else:
        raise ValueError("HCT_API_KEYS entries are TENANT:SCOPES:SHA256HEX or a bare digest")
    if not _DIGEST.match(digest):
        raise ValueError("HCT_API_KEYS holds sha256 hex digests (64 hex characters), "
                         "not raw keys")
    return KeyEntry(digest, tenant, frozenset(scopes))


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: its tenant, scopes and key fingerprint (for the audit)."""

    tenant: str
    scopes: frozenset[str]
    fingerprint: str  # "key:" + first 12 hex of the key's sha256, or "anonymous"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    @property
    def read_tenant(self) -> str | None:
        """The tenant reads are limited to; None for `admin` (every tenant)."""
        return None if "admin" in self.scopes else self.tenant


DEVELOPMENT = Principal(DEFAULT_TENANT, ALL_SCOPES, "anonymous")
