"""The client-side deadline on database calls: its setting is refused when it could fire
before the server's own statement timeout, a spent unit of work never reaches the database,
and (PostgreSQL) a call that overruns it closes its connection instead of waiting on."""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from service.db.budget import remaining, within
from service.db.engine import make_engine
from service.db.errors import DatabaseDeadlineSpent
from service.db.transaction import transaction
from service.settings import Settings

PG = os.environ.get("HCT_TEST_DATABASE_URL", "")


def test_deadline_not_longer_than_the_statement_timeout_is_refused_naming_both():
    with pytest.raises(ValueError, match=r"HCT_DATABASE_TIMEOUT_S.*HCT_DB_STATEMENT_TIMEOUT_S"):
        Settings(environment="test", database_timeout_s=5, db_statement_timeout_s=5,
                 _env_file=None)


def test_spent_unit_of_work_fails_before_connecting(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'never.db'}")
    with pytest.raises(DatabaseDeadlineSpent), \
            transaction(engine, end=time.monotonic() - 1):
        pass
    assert not (tmp_path / "never.db").exists()  # nothing was opened, let alone sent


def test_inner_deadline_cannot_outlast_the_outer_one():
    now = time.monotonic()
    with within(now + 5):
        with within(now + 60):
            left = remaining()
            assert left is not None and left <= 5
        assert remaining() is not None
    assert remaining() is None


@pytest.mark.skipif(not PG.startswith("postgresql"), reason="needs PostgreSQL "
                    "(HCT_TEST_DATABASE_URL)")
def test_call_overrunning_the_deadline_closes_its_connection_within_it():
    # statement timeout far above the client deadline: only the client can end this wait
    engine = make_engine(PG, statement_timeout_s=60, call_timeout_s=1.0)
    try:
        start = time.monotonic()
        with pytest.raises(OperationalError, match="did not answer within 1 s"), \
                engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - start < 2.5
        with engine.connect() as conn:  # the pool hands out a working connection again
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        start = time.monotonic()
        with pytest.raises(OperationalError), within(time.monotonic() + 0.5), \
                engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - start < 1.5  # the unit of work's own, shorter deadline
    finally:
        engine.dispose()
