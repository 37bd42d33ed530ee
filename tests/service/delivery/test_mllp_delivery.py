"""HL7 delivery over MLLP to a real listener on loopback: order, ACK handling (AA/AE/AR),
dropped connections, back-off, and no loss or double marking across restarts and a crash."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import hl7
import pytest

from service.db import hl7_outbox
from service.db.engine import new_id
from service.db.writer import PredictionWriter
from service.delivery.mllp_sender import MllpSender as Hl7Sender
from tests.service.conftest import prediction_body
from tests.service.delivery.mllp_listener import MllpListener
from tests.service.prediction.test_hl7 import _record

ROOT = Path(__file__).resolve().parents[3]


def _store(engine, n: int, first: int = 0) -> list[str]:
    """Store n predictions (patients P-first on) through the writer, which queues their
    messages; returns ids."""
    records = [replace(_record(), id=new_id(), patient_id=f"P-{i}")
               for i in range(first, first + n)]
    with engine.begin() as conn:
        PredictionWriter(hl7_processing_id="T").write(conn, records)
    return [r.id for r in records]


def _rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return hl7_outbox.rows(conn)


def _sender(engine, port: int, **kw) -> Hl7Sender:
    return Hl7Sender(engine, "127.0.0.1", port, **{"backoff_seconds": 0.0, "timeout_seconds": 5,
                                                   **kw})


def test_messages_are_queued_with_the_prediction_and_sent_in_order(engine):
    ids = _store(engine, 5)
    rows = _rows(engine)
    assert [r["prediction_id"] for r in rows] == ids and {r["status"] for r in rows} == {
        "pending"}
    with MllpListener() as lis:
        asyncio.run(_sender(engine, lis.port).run_until_idle())
    assert [str(hl7.parse(m).segment("PID")[3][0][0]) for m in lis.received] == [
        f"P-{i}" for i in range(5)]
    assert lis.control_ids() == [r["control_id"] for r in rows]
    assert [(r["status"], r["ack_code"], r["attempts"]) for r in _rows(engine)] == [
        ("sent", "AA", 1)] * 5


def test_an_ae_is_retried_after_back_off_while_later_messages_go_first(engine):
    """An AE for one message (the LIS is up and refuses it) must not hold back the results
    behind it: they are delivered during its back-off, and it is resent after."""
    _store(engine, 3)
    with MllpListener(script=["AE"]) as lis:
        sender = _sender(engine, lis.port, backoff_seconds=0.4)
        asyncio.run(sender.run_until_idle())
        first, second, third = _rows(engine)
        assert (first["status"], first["ack_code"], first["attempts"]) == ("pending", "AE", 1)
        assert "try later" in first["last_error"]
        assert [(r["status"], r["attempts"]) for r in (second, third)] == [("sent", 1)] * 2
        time.sleep(0.5)
        asyncio.run(sender.run_until_idle())
    ids = [r["control_id"] for r in _rows(engine)]
    assert lis.control_ids() == [ids[0], ids[1], ids[2], ids[0]]  # the same message, resent
    assert [(r["status"], r["attempts"]) for r in _rows(engine)] == [
        ("sent", 2), ("sent", 1), ("sent", 1)]


def test_an_unreachable_lis_keeps_later_messages_behind_the_head(engine):
    _store(engine, 2)
    with MllpListener() as gone:
        port = gone.port
    asyncio.run(_sender(engine, port, backoff_seconds=0.3).run_until_idle())
    first, second = _rows(engine)
    assert (first["status"], first["attempts"]) == ("pending", 1)
    assert (second["status"], second["attempts"]) == ("pending", 0)  # not tried: order kept
    time.sleep(0.4)
    with MllpListener() as lis:
        asyncio.run(_sender(engine, lis.port).run_until_idle())
    assert lis.control_ids() == [first["control_id"], second["control_id"]]


def test_a_dropped_connection_is_retried_on_a_new_connection(engine):
    _store(engine, 2)
    with MllpListener(script=["drop", "drop"]) as lis:
        asyncio.run(_sender(engine, lis.port).run_until_idle())
    assert len(lis.received) == 4
    assert [(r["status"], r["attempts"]) for r in _rows(engine)] == [("sent", 3), ("sent", 1)]


def test_ar_is_recorded_as_rejected_and_the_queue_moves_on(engine):
    _store(engine, 2)
    with MllpListener(script=["AR"]) as lis:
        asyncio.run(_sender(engine, lis.port).run_until_idle())
    first, second = _rows(engine)
    assert (first["status"], first["ack_code"]) == ("rejected", "AR")
    assert first["last_error"] == "LIS says AR | try later"
    assert second["status"] == "sent" and len(lis.received) == 2


def test_gives_up_as_failed_after_max_attempts(engine):
    _store(engine, 1)
    with MllpListener(default="AE") as lis:
        asyncio.run(_sender(engine, lis.port, max_attempts=3).run_until_idle())
    (row,) = _rows(engine)
    assert (row["status"], row["attempts"]) == ("failed", 3) and len(lis.received) == 3


def test_no_listener_leaves_messages_pending(engine):
    _store(engine, 1)
    with MllpListener() as lis:
        port = lis.port
    asyncio.run(_sender(engine, port, max_attempts=5, backoff_seconds=30).run_until_idle())
    (row,) = _rows(engine)
    assert row["status"] == "pending" and row["attempts"] == 1
    assert "Error" in row["last_error"]


def test_a_restarted_sender_sends_the_rest_exactly_once(engine):
    _store(engine, 4)
    with MllpListener() as lis:
        first = _sender(engine, lis.port, window=1)  # one message per step

        async def two_then_stop() -> None:
            assert await first.step() and await first.step()
            await first._close()  # the process stops here

        asyncio.run(two_then_stop())
        assert [r["status"] for r in _rows(engine)] == ["sent", "sent", "pending", "pending"]
        asyncio.run(_sender(engine, lis.port).run_until_idle())  # a new process
    rows = _rows(engine)
    assert lis.control_ids() == [r["control_id"] for r in rows]  # each once, in order
    assert {r["status"] for r in rows} == {"sent"}


def test_a_crash_after_sending_resends_with_the_same_control_id(engine, database_url):
    """A sender killed after the LIS received a message but before it was marked sent: the next
    sender resends it (at-least-once) under the same MSH-10, and nothing is lost."""
    _store(engine, 2)
    script = textwrap.dedent(f"""
        import asyncio
        from service.db.engine import make_engine
        from service.delivery.mllp_sender import MllpSender
        engine = make_engine({database_url!r})
        asyncio.run(MllpSender(engine, "127.0.0.1", PORT, lease_seconds=1.0,
                              timeout_seconds=60).run_until_idle())
    """)
    with MllpListener(script=["hold"]) as lis:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        child = subprocess.Popen([sys.executable, "-c", script.replace("PORT", str(lis.port))],
                                 env=env, cwd=ROOT)
        try:
            lis.wait_for(1, 60)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(30)
        assert _rows(engine)[0]["status"] == "pending"
        time.sleep(1.2)  # the dead sender's lease runs out
        lis.released.set()
        asyncio.run(_sender(engine, lis.port).run_until_idle())
    ids = lis.control_ids()
    rows = _rows(engine)
    assert ids == [rows[0]["control_id"], rows[0]["control_id"], rows[1]["control_id"]]
    # the dead sender had leased both (one window): the second's lease counts as an attempt
    assert [(r["status"], r["attempts"]) for r in rows] == [("sent", 2), ("sent", 2)]


def test_the_service_delivers_what_it_stores_when_mllp_is_configured(settings):
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    with MllpListener() as lis:
        configured = settings.model_copy(update={"hl7_mllp_host": "127.0.0.1",
                                                 "hl7_mllp_port": lis.port})
        with TestClient(create_app(configured)) as client:
            created = client.post("/v1/predictions", json=prediction_body("P|LIS")).json()
            lis.wait_for(1)
            deadline = time.monotonic() + 10
            while True:
                with client.app.state.hct.engine.connect() as conn:
                    (row,) = hl7_outbox.rows(conn)
                if row["status"] == "sent" or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
    assert row["status"] == "sent" and row["prediction_id"] == created["id"]
    m = hl7.parse(lis.received[0])
    assert m.unescape(str(m.segment("PID")[3][0][0])) == "P|LIS"
    assert str(m.segment("OBX")[5]) == f"{created['hematocrit_pct']:.1f}"


def test_nothing_is_queued_when_mllp_is_not_configured(client):
    client.post("/v1/predictions", json=prediction_body("P-none"))
    with client.app.state.hct.engine.connect() as conn:
        assert hl7_outbox.rows(conn) == []


def test_only_the_named_tenants_predictions_are_queued_for_the_lis(engine):
    records = [replace(_record(), id=new_id(), tenant=t) for t in ("lab-a", "lab-b", "lab-a")]
    with engine.begin() as conn:
        PredictionWriter(hl7_processing_id="T", hl7_tenants=frozenset({"lab-a"})).write(
            conn, records)
    assert [r["prediction_id"] for r in _rows(engine)] == [records[0].id, records[2].id]


def test_one_lis_for_keys_of_several_tenants_needs_the_tenants_named():
    from service.api.security import key_digest
    from service.settings import Settings

    keys = f"lab-a:predict+read:{key_digest('a')},lab-b:predict+read:{key_digest('b')}"
    with pytest.raises(ValueError, match="HCT_HL7_MLLP_TENANTS"):
        Settings(api_keys=keys, hl7_mllp_host="lis.example", _env_file=None)
    named = Settings(api_keys=keys, hl7_mllp_host="lis.example", hl7_mllp_tenants="lab-a",
                     _env_file=None)
    assert named.hl7_mllp_tenants == ["lab-a"]
    single = f"lab-a:predict:{key_digest('a')},lab-a:read:{key_digest('r')}"
    assert Settings(api_keys=single, hl7_mllp_host="lis.example", _env_file=None)
