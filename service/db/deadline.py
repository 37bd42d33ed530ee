"""A client-side deadline on every wait for PostgreSQL on an open connection.

The kernel cannot tell a silent database from a slow one: a server that stops answering but
whose host still acknowledges packets (a frozen postmaster, a stuck proxy or load balancer)
defeats TCP keepalives and `tcp_user_timeout`, and `statement_timeout` needs a server that
still runs. Without a deadline of its own, a request on a connection that was already pooled
when the database went silent waits until the operating system gives up, far longer than any
client. Every psycopg network wait (a statement, its rows, COMMIT, ROLLBACK, the pool's
pre-ping) therefore has a deadline; past it the connection is closed, never reused, and the
caller gets an `OperationalError` like any other lost connection. A unit of work under
`service.db.budget.within` gets the shorter of that deadline and what is left of its own.
"""

from __future__ import annotations

from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from service.db.budget import remaining

RV = TypeVar("RV")


class DatabaseTimeout(psycopg.OperationalError):
    """The database did not answer one call within the deadline; the connection is closed."""


class DeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait on the server ends within `deadline_s`."""

    deadline_s: float | None = None  # set per connection by the engine's connect hook

    def wait(self, gen: Any, interval: float = 0.1,  # psycopg's own default interval
             timeout: float | None = None) -> Any:
        limit = self.deadline_s if timeout is None else timeout
        left = remaining()
        if timeout is None and left is not None:
            limit = max(0.0, left) if limit is None else max(0.0, min(limit, left))
        try:
            return super().wait(gen, interval=interval, timeout=limit)
        except pg_errors._WaitTimeout as exc:  # the one signal psycopg gives for a timeout
            if timeout is not None:
                raise  # the caller asked for this timeout and handles it
            # The protocol is mid-message: the connection cannot be used again.
            self.pgconn.finish()
            raise DatabaseTimeout(f"the database did not answer within {limit:g} s; "
                                  "the connection was closed") from exc
