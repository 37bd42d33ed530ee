"""A database created before split attempts were counted gains the column on upgrade."""

from __future__ import annotations

from sqlalchemy import inspect

from service.db.engine import make_engine
from service.db.migrate import current_revision, upgrade


def _columns(engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("batch_jobs")}


def test_upgrade_adds_attempts_to_an_older_batch_jobs_table(database_url):
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0004")  # the schema just before attempts were counted
        assert "attempts" not in _columns(engine)
        upgrade(engine)
        assert "attempts" in _columns(engine) and current_revision(engine) != "0004"
        upgrade(engine)  # idempotent
    finally:
        engine.dispose()
