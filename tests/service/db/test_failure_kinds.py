"""A full database disk is recognised from the driver's own codes (SQLite SQLITE_FULL,
PostgreSQL SQLSTATE 53100) and answered 507; other outages stay 503. The errors are real:
SQLite capped by `max_page_count`, PostgreSQL raising the SQLSTATE itself."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from service.api.errors import storage_answer
from service.db.failures import failure_kind

PG = os.environ.get("HCT_TEST_DATABASE_URL", "")


def _raised(engine, *statements: str) -> OperationalError:
    with pytest.raises(OperationalError) as caught, engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    return caught.value


def test_sqlite_full_is_disk_full_and_a_507(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'capped.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (v TEXT)"))
    exc = _raised(engine, "PRAGMA max_page_count = 3",
                  "INSERT INTO t SELECT hex(randomblob(4000)) FROM "
                  "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                  "WHERE i < 50) SELECT i FROM n)")
    engine.dispose()
    assert "full" in str(exc.orig)
    assert failure_kind(exc) == "disk_full"
    answer = storage_answer(exc)
    assert answer is not None and answer.status == 507 and answer.retry_after_s > 0


def test_sqlite_that_cannot_open_is_an_outage_not_a_full_disk(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'hct.db'}")
    with pytest.raises(OperationalError) as caught, engine.connect():
        pass
    engine.dispose()
    assert failure_kind(caught.value) == "unavailable"
    answer = storage_answer(caught.value)
    assert answer is not None and answer.status == 503 and "nothing was stored" in answer.message


@pytest.mark.skipif(not PG.startswith("postgresql"), reason="needs PostgreSQL "
                    "(HCT_TEST_DATABASE_URL)")
@pytest.mark.parametrize(("condition", "kind", "status"), [
    ("disk_full", "disk_full", 507), ("out_of_memory", "out_of_memory", 503),
    ("too_many_connections", "too_many_connections", 503)])
def test_postgres_resource_sqlstates_are_told_apart(condition, kind, status):
    engine = create_engine(PG)
    exc = _raised(engine, f"DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '{condition}'; "
                          "END $$")
    engine.dispose()
    assert failure_kind(exc) == kind
    answer = storage_answer(exc)
    assert answer is not None and answer.status == status
