"""What a database error means for the caller, read from the driver's own codes so the API can
answer each kind distinctly without knowing SQLite or PostgreSQL."""

from __future__ import annotations

from typing import Literal

from sqlalchemy.exc import DBAPIError

SQLITE_FULL = 13  # "database or disk is full"
_PG_KINDS = {"53100": "disk_full", "53200": "out_of_memory", "53300": "too_many_connections"}

Kind = Literal["disk_full", "out_of_memory", "too_many_connections", "unavailable"]


def failure_kind(exc: DBAPIError) -> Kind:
    """`disk_full` (SQLite SQLITE_FULL, PostgreSQL 53100), `out_of_memory` (53200),
    `too_many_connections` (53300), else `unavailable` (lost, refused, timed out)."""
    orig = exc.orig
    if (getattr(orig, "sqlite_errorcode", None) or 0) & 0xFF == SQLITE_FULL:  # primary code
        return "disk_full"
    kind = _PG_KINDS.get(str(getattr(orig, "sqlstate", None)))
    return kind if kind is not None else "unavailable"  # type: ignore[return-value]
