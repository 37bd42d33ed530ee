"""A transaction that tells a failed write from one whose COMMIT outcome is unknown.

When the connection dies before COMMIT is sent, the database rolls the transaction back:
nothing was stored, and a retry is safe. When it dies while COMMIT is under way (sent, no answer
yet), the rows may be stored: a retry without an `Idempotency-Key` would store them twice.
`transaction` raises `CommitOutcomeUnknown` for the second case, so only the first is ever
called "nothing was stored".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from service.db.budget import within
from service.db.errors import CommitOutcomeUnknown


def outcome_unknown(exc: DBAPIError) -> bool:
    """Whether a failed COMMIT may have been applied: the connection was lost, or the error
    came from the client side without an answer from the server (no SQLSTATE). A SQLite
    failure is never unknown: its commit either happened or was rolled back in this process.
    """
    return bool(exc.connection_invalidated) or (
        hasattr(exc.orig, "sqlstate") and exc.orig.sqlstate is None)


@contextmanager
def transaction(engine: Engine, *, end: float | None = None) -> Iterator[Connection]:
    """`engine.begin()` under the deadline `end` (a monotonic instant), raising
    `CommitOutcomeUnknown` when the COMMIT itself lost its connection."""
    with within(end), engine.connect() as conn:
        trans = conn.begin()
        try:
            yield conn
        except BaseException:
            trans.rollback()
            raise
        try:
            trans.commit()
        except DBAPIError as exc:
            if outcome_unknown(exc):
                raise CommitOutcomeUnknown() from exc
            raise
