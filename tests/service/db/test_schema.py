"""The migrations build the schema `tables.py` describes, carry rows written before tenants
into tenant `default`, and every timestamp column reads back as aware UTC on both databases.
"""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select, text

from service.db.engine import make_engine
from service.db.migrate import current_revision, upgrade
from service.db.tables import audit_log, batch_jobs, idempotency_keys, metadata, predictions


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_migrations_build_exactly_the_schema_tables_py_describes(engine):
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_rows_written_before_tenants_belong_to_the_default_tenant(engine):
    upgrade(engine, "0001")
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    with engine.begin() as conn:  # the 0001 columns only, as the old code wrote them
        conn.execute(text(
            "INSERT INTO predictions (id, created_at, patient_id, sample_id, source, "
            "hematocrit_pct, flag, n_cells, n_cells_used, indices, baselines, lab, model_name, "
            "model_version, onnx_sha256, provider) VALUES ('p1', :at, 'P', 'S', 'api', 41.0, "
            "'N', 300, 300, '{}', '{}', '{}', 'm', 'v', :sha, 'cpu')"),
            {"at": at if conn.dialect.name != "sqlite" else at.replace(tzinfo=None),
             "sha": "0" * 64})
        for principal, created in (("key:aaaaaaaaaaaa", at), ("key:bbbbbbbbbbbb",
                                                              at + timedelta(seconds=1))):
            conn.execute(text(
                "INSERT INTO idempotency_keys (principal, key, request_sha256, resource, "
                "resource_id, created_at) VALUES (:p, 'k1', :d, :r, :i, :c)"),
                {"p": principal, "d": "a" * 64, "r": "prediction",
                 "i": principal[-1] * 2, "c": created if conn.dialect.name != "sqlite"
                 else created.replace(tzinfo=None)})
        conn.execute(text("INSERT INTO audit_log (at, principal, action, resource) "
                          "VALUES (:at, 'anonymous', 'create', 'prediction')"),
                     {"at": at if conn.dialect.name != "sqlite" else at.replace(tzinfo=None)})
    upgrade(engine)
    assert current_revision(engine) == "0006"  # head: tenants, job attempts, outbox references
    with engine.connect() as conn:
        row = conn.execute(select(predictions)).one()
        keys = conn.execute(select(idempotency_keys)).all()
        audit = conn.execute(select(audit_log)).one()
    assert row.tenant == "default" and row.created_at == at and row.created_at.tzinfo == UTC
    # two old keys had used the same Idempotency-Key: the earlier record is the tenant's now
    assert [(k.tenant, k.key, k.principal) for k in keys] == [
        ("default", "k1", "key:aaaaaaaaaaaa")]
    assert audit.tenant == "default"


def test_timestamps_are_stored_as_utc_and_read_back_aware(engine):
    upgrade(engine)
    local = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    with engine.begin() as conn:
        conn.execute(insert(batch_jobs).values(
            id="j1", created_at=local, updated_at=local, status="queued", filename="f",
            upload_path="u", done_items=0, error_items=0, principal="anonymous",
            tenant="default"))
        later = conn.execute(select(batch_jobs.c.id).where(
            batch_jobs.c.created_at < datetime(2026, 6, 1, 10, 30, tzinfo=UTC))).all()
        stored = conn.execute(select(batch_jobs.c.created_at)).scalar_one()
    assert stored == local and stored.tzinfo == UTC
    assert stored.isoformat() == "2026-06-01T10:00:00.123456+00:00"
    assert [r.id for r in later] == ["j1"]  # compared as instants, not as wall-clock text


def test_a_naive_timestamp_is_refused(engine):
    upgrade(engine)
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as conn:
        conn.execute(insert(audit_log).values(at=datetime(2026, 1, 1), principal="x",
                                              action="a", resource="r"))
