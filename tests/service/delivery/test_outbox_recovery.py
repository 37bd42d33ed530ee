"""An outbox that recovers: rows hold a reference and the sender renders the message; failed
messages are requeued (CLI, admin route) and then delivered once each, in order; a poison
message the LIS refuses forever never holds back the results behind it; the counts are on
/metrics; rows queued before the reference schema are still delivered as stored."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta

import hl7
from prometheus_client import REGISTRY
from sqlalchemy import text
from typer.testing import CliRunner

from service.cli import app as cli
from service.db import hl7_outbox
from service.db.engine import make_engine, new_id, utcnow
from service.db.migrate import current_revision, upgrade
from service.db.predictions import get_prediction, insert_predictions
from service.prediction import hl7 as hl7v2
from tests.service.delivery.mllp_listener import MllpListener
from tests.service.delivery.test_mllp_delivery import _rows, _sender, _store
from tests.service.prediction.test_hl7 import _record


def _closed_port() -> int:
    with MllpListener() as gone:
        return gone.port


def _fail_head(engine) -> None:
    """One delivery attempt at an unreachable LIS with a budget of one: the head fails."""
    sender = _sender(engine, _closed_port(), max_attempts=1)

    async def once() -> None:
        assert await sender.step()
        sender.refresh_gauges(force=True)

    asyncio.run(once())


def _patients(lis: MllpListener) -> list[str]:
    return [str(hl7.parse(m).segment("PID")[3][0][0]) for m in lis.received]


def test_the_write_queues_a_reference_and_the_sender_renders_the_stored_prediction(engine):
    (pid,) = _store(engine, 1)
    (row,) = _rows(engine)
    assert row["message"] is None and row["processing_id"] == "T"  # no HL7 built in the write
    with MllpListener() as lis:
        asyncio.run(_sender(engine, lis.port).run_until_idle())
    with engine.connect() as conn:
        stored = get_prediction(conn, pid, tenant=None)
    assert lis.received == [hl7v2.message_for(stored, now=row["created_at"],
                                              processing_id="T")]
    assert str(hl7.parse(lis.received[0]).segment("MSH")[11]) == "T"


def test_a_resend_renders_the_same_text(engine):
    _store(engine, 1)
    with MllpListener(script=["AE"]) as lis:
        sender = _sender(engine, lis.port)
        asyncio.run(sender.run_until_idle())
    assert len(lis.received) == 2 and lis.received[0] == lis.received[1]


def test_after_an_outage_beyond_the_retry_budget_requeue_delivers_each_once_in_order(engine):
    _store(engine, 4)
    down = _sender(engine, _closed_port(), max_attempts=2)
    for _ in range(8):  # each head fails twice, then the next one is tried
        asyncio.run(down.run_until_idle())
    assert [r["status"] for r in _rows(engine)] == ["failed"] * 4
    _store(engine, 1, first=4)  # stored after the outage: pending behind the failed ones
    with engine.begin() as conn:
        assert len(hl7_outbox.requeue(conn)) == 4
    assert [(r["status"], r["attempts"]) for r in _rows(engine)] == [("pending", 0)] * 5
    with MllpListener() as lis:
        asyncio.run(_sender(engine, lis.port).run_until_idle())
    assert _patients(lis) == [f"P-{i}" for i in range(5)]  # each once, original order
    assert {r["status"] for r in _rows(engine)} == {"sent"}


def test_a_poison_message_refused_forever_does_not_hold_back_the_rest(engine):
    _store(engine, 5)
    poison = _rows(engine)[1]["control_id"]
    with MllpListener(refuse=[poison]) as lis:
        sender = _sender(engine, lis.port, max_attempts=3, backoff_seconds=1.0)
        asyncio.run(sender.run_until_idle())
        # during the poison message's first back-off every other result was delivered
        assert [r["status"] for r in _rows(engine)] == ["sent", "pending", "sent", "sent",
                                                        "sent"]
        deadline = time.monotonic() + 20
        while _rows(engine)[1]["status"] == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.1)
            asyncio.run(sender.run_until_idle())
    rows = _rows(engine)
    assert (rows[1]["status"], rows[1]["attempts"], rows[1]["ack_code"]) == ("failed", 3, "AE")
    received = _patients(lis)
    assert [p for p in received if p != "P-1"] == ["P-0", "P-2", "P-3", "P-4"]  # once, in order
    assert received.count("P-1") == 3


def test_the_sender_publishes_pending_and_failed_counts(engine):
    _store(engine, 3)
    _fail_head(engine)

    def gauge(status: str) -> float | None:
        return REGISTRY.get_sample_value("hct_hl7_outbox_messages", {"status": status})

    assert (gauge("failed"), gauge("pending")) == (1.0, 2.0)


def test_requeue_by_id_or_since_takes_only_those_failed_rows(engine):
    _store(engine, 3)
    _fail_head(engine)
    _fail_head(engine)
    first, second, third = _rows(engine)
    assert [first["status"], second["status"], third["status"]] == [
        "failed", "failed", "pending"]
    with engine.begin() as conn:
        assert hl7_outbox.requeue(conn, ids=[second["id"], third["id"]]) == [second["id"]]
        assert hl7_outbox.requeue(conn, since=utcnow() + timedelta(minutes=1)) == []
        assert hl7_outbox.requeue(conn, since=first["created_at"]) == [first["id"]]


def test_hct_hl7_requeue_puts_failed_messages_back_and_says_how_many(engine, database_url,
                                                                     monkeypatch):
    _store(engine, 2)
    _fail_head(engine)
    first = _rows(engine)[0]
    monkeypatch.setenv("HCT_DATABASE_URL", database_url)
    from service.settings import get_settings

    get_settings.cache_clear()
    try:
        bad = CliRunner().invoke(cli, ["hl7", "requeue", "--since", "yesterday"])
        done = CliRunner().invoke(cli, ["hl7", "requeue", "--id", str(first["id"])])
        status = CliRunner().invoke(cli, ["hl7", "status"])
    finally:
        get_settings.cache_clear()
    assert bad.exit_code == 2 and "--since" in bad.stderr
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == f"requeued 1 failed messages: {first['id']}"
    assert "pending\t2" in status.stdout and "failed\t0" in status.stdout
    with engine.connect() as conn:
        audit = conn.execute(text("SELECT principal, action, resource FROM audit_log "
                                  "WHERE action = 'requeue'")).all()
    assert [tuple(a) for a in audit] == [("cli", "requeue", "hl7_outbox")]


def test_the_admin_route_requeues_and_other_scopes_are_refused(settings):
    from fastapi.testclient import TestClient

    from service.api.app import create_app
    from service.api.security import key_digest

    keyed = settings.model_copy(update={"api_keys": [
        f"ops:admin:{key_digest('admin')}", f"lab:predict+read:{key_digest('user')}"]})
    admin, user = {"X-API-Key": "admin"}, {"X-API-Key": "user"}
    with TestClient(create_app(keyed)) as client:
        engine = client.app.state.hct.engine
        _store(engine, 2)
        _fail_head(engine)
        refused = client.post("/v1/hl7/outbox/requeue", headers=user)
        naive = client.post("/v1/hl7/outbox/requeue", headers=admin,
                            json={"since": "2026-12-08T03:00:00"})
        counts = client.get("/v1/hl7/outbox", headers=admin).json()
        done = client.post("/v1/hl7/outbox/requeue", headers=admin)
        again = client.post("/v1/hl7/outbox/requeue", headers=admin, json={"ids": [1, 2]})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
    assert naive.status_code == 422 and "since" in naive.json()["error"]["field"]
    assert counts == {"pending": 1, "sent": 0, "rejected": 0, "failed": 1}
    assert done.status_code == 200 and done.json() == {"requeued": 1, "ids": [1]}
    assert again.json() == {"requeued": 0, "ids": []}  # already pending


def test_a_row_queued_before_the_reference_schema_is_sent_as_stored(database_url):
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0005")
        record = replace(_record(), id=new_id())
        stored_text = hl7v2.message_for(record, processing_id="P")
        now = utcnow()
        with engine.begin() as conn:
            insert_predictions(conn, [record])
            conn.execute(text(
                "INSERT INTO hl7_outbox (prediction_id, control_id, message, status, attempts, "
                "next_attempt_at, created_at) VALUES (:p, :c, :m, 'pending', 0, :t, :t)"),
                {"p": record.id, "c": hl7v2.control_id(record), "m": stored_text,
                 "t": now if conn.dialect.name != "sqlite" else now.replace(tzinfo=None)})
        upgrade(engine)
        assert current_revision(engine) == "0006"
        with MllpListener() as lis:
            asyncio.run(_sender(engine, lis.port).run_until_idle())
        assert lis.received == [stored_text]
        assert [r["status"] for r in _rows(engine)] == ["sent"]
    finally:
        engine.dispose()


def test_windows_of_messages_go_out_each_once_in_stored_order(engine):
    # More rows than one window holds: every message on the wire once, in the stored order,
    # all marked sent with one attempt each.
    _store(engine, 70)
    with MllpListener() as lis:
        asyncio.run(_sender(engine, lis.port, window=32).run_until_idle())
    rows = _rows(engine)
    assert lis.control_ids() == [r["control_id"] for r in rows]
    assert {(r["status"], r["attempts"]) for r in rows} == {("sent", 1)}
