"""Database engines (SQLite file for development and tests, PostgreSQL in production), ids and
timestamps shared by every table.
"""

from __future__ import annotations

import math
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from service.db.budget import remaining, within
from service.db.errors import DatabaseDeadlineSpent


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def make_engine(url: str, *, connect_timeout_s: float = 3.0, statement_timeout_s: float = 10.0,
                pool_timeout_s: float = 5.0, call_timeout_s: float = 12.0) -> Engine:
    """An engine for SQLite (file, WAL, foreign keys on) or PostgreSQL (pre-ping pool).

    Every wait is bounded so a hung database surfaces as an error (503) within seconds:
    connecting, each statement (SQLite: the busy lock), waiting for a pooled connection, and
    (PostgreSQL) each call on an open connection, which the client closes after
    `call_timeout_s` even when the server is silent (service/db/deadline.py).
    Statement parameters (patient ids) never reach logs or error messages.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False,
                                                  "timeout": statement_timeout_s},
                               pool_timeout=pool_timeout_s, hide_parameters=True)
        busy_ms = int(statement_timeout_s * 1000)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.close()

        return engine
    existing = make_url(url).query.get("options", "")
    options = " ".join([*(existing if isinstance(existing, tuple) else [existing]),
                        f"-c statement_timeout={int(statement_timeout_s * 1000)}"]).strip()
    connect_args = {
        "connect_timeout": max(2, math.ceil(connect_timeout_s)),  # libpq: whole seconds, >= 2
        "options": options,  # merged: connect_args would replace the URL's own options
        # A peer that vanishes without a FIN: let the kernel notice within seconds.
        "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 2,
        "tcp_user_timeout": int(connect_timeout_s * 1000),
    }
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10,
                           pool_timeout=pool_timeout_s, connect_args=connect_args,
                           hide_parameters=True)
    if engine.dialect.driver == "psycopg":
        from service.db.deadline import DeadlineConnection  # psycopg only where it is used

        @event.listens_for(engine, "do_connect")
        def _with_deadline(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            left = remaining()
            if left is not None and left < 1:  # no time to connect: fail before trying
                raise DatabaseDeadlineSpent()
            if left is not None:  # a unit of work near its deadline connects for less
                cparams = {**cparams, "connect_timeout": max(
                    2, min(cparams["connect_timeout"], math.ceil(left)))}
            conn = DeadlineConnection.connect(*cargs, **cparams)
            conn.deadline_s = call_timeout_s
            return conn

        ping = engine.dialect.do_ping
        ping_s = max(2.0, connect_timeout_s)

        def _ping_briefly(dbapi_connection: Any) -> bool:
            # The pool's pre-ping: a pooled connection that does not answer a trivial query
            # within a connect's time is dead; a fresh one is tried at once instead of the
            # request waiting out the whole call deadline on it first.
            with within(time.monotonic() + ping_s):
                return bool(ping(dbapi_connection))

        engine.dialect.do_ping = _ping_briefly  # type: ignore[method-assign]

    return engine


def ping(engine: Engine) -> bool:
    """True when the database answers a trivial query."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # any driver error means "not ready"
        return False
