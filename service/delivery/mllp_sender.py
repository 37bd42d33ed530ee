"""Delivers the HL7 outbox to the LIS over MLLP, one message at a time, in order.

Each step leases the head of the outbox, renders its ORU^R01 from the stored prediction
(`outbox_message`: off the store thread, so storing a prediction never waits for HL7), sends it
in an MLLP block (python-hl7's asyncio streams do the `<VT> … <FS><CR>` framing) and waits for
the LIS's ACK:
  AA / CA  → sent
  AE / CE  → retried after a back-off (1 s, 2 s, 4 s … capped); while it backs off the messages
             behind it go first (the LIS is up and refuses this one: a poison message must not
             hold back the rest)
  AR / CR  → rejected, with the LIS's reason recorded; the queue moves on
  no answer, a dropped connection, an ACK for another control id → retried after the back-off,
             and later messages wait behind it (the LIS is unreachable: order is kept)
After `max_attempts` tries without an AA the row is marked failed and the queue moves on; a
message that cannot be built is failed at once. Failed rows stay until `hct hl7 requeue` (or
`POST /v1/hl7/outbox/requeue`) puts them back in line. The sender keeps the pending and failed
counts on `/metrics` (`hct_hl7_outbox_messages`).

Guarantee: every prediction stored while delivery is configured has its outbox row in the same
transaction, and a message is marked sent only after an AA under the lease that sent it, so
nothing is lost. A crash after the LIS received a message but before it was marked sent means
the next sender (once the lease expires) sends it again: delivery is at-least-once, and the
resend carries the same MSH-10 message control id (derived from the prediction id), by which
the LIS de-duplicates. Exactly-once on the wire is not possible without the LIS's help.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

import hl7
from hl7.mllp import open_hl7_connection
from sqlalchemy import Engine

from service import metrics
from service.db import hl7_outbox
from service.delivery.outbox_message import (
    MessageUnavailable,
    render,
    stored_prediction,
)

log = logging.getLogger("hct.hl7")
ACCEPTED, ERROR, REJECTED = {"AA", "CA"}, {"AE", "CE"}, {"AR", "CR"}


class DeliveryError(Exception):
    """The message was not acknowledged with AA this time (retried)."""

    def __init__(self, message: str, ack_code: str | None = None) -> None:
        super().__init__(message)
        self.ack_code = ack_code


class MllpSender:
    """A thread with its own event loop, polling the outbox for its head."""

    def __init__(self, engine: Engine, host: str, port: int, *, max_attempts: int = 10,
                 name: str | None = None, lease_seconds: float = 60.0,
                 timeout_seconds: float = 10.0, backoff_seconds: float = 1.0,
                 backoff_max_seconds: float = 300.0, poll_seconds: float = 0.5,
                 gauge_seconds: float = 1.0, window: int = 32) -> None:
        self.engine, self.host, self.port = engine, host, port
        self.max_attempts = max_attempts
        self.name = name or f"{socket.gethostname()[:24]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease = timedelta(seconds=lease_seconds)
        self.timeout = timeout_seconds
        self.backoff, self.backoff_max = backoff_seconds, backoff_max_seconds
        self.poll_seconds = poll_seconds
        self.gauge_seconds = gauge_seconds  # how often the outbox counts are refreshed
        # rows leased, read and marked per database round trip: one message at a time on the
        # wire, but not three transactions per message against the store's database
        self.window = window
        self._gauges_at = -float("inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: tuple[hl7.mllp.HL7StreamReader, hl7.mllp.HL7StreamWriter] | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run_forever()),
                                        name="hct-hl7", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    async def _run_forever(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.refresh_gauges()
                    busy = await self.step()
                except Exception:  # keep delivering; the lease returns the row to the queue
                    log.exception("hl7 sender step failed")
                    busy = False
                if not busy:
                    await asyncio.to_thread(self._stop.wait, self.poll_seconds)
        finally:
            await self._close()

    async def run_until_idle(self) -> None:
        """Send until the head is absent or backing off (tests and one-shot use)."""
        try:
            while await self.step():
                pass
        finally:
            await self._close()
            self.refresh_gauges(force=True)

    def refresh_gauges(self, *, force: bool = False) -> None:
        """Publish the outbox's pending and failed counts (at most every `gauge_seconds`)."""
        now = time.monotonic()
        if not force and now - self._gauges_at < self.gauge_seconds:
            return
        self._gauges_at = now
        with self.engine.connect() as conn:
            for status, n in hl7_outbox.counts(conn).items():
                metrics.HL7_OUTBOX_MESSAGES.labels(status).set(n)

    # --- a window of messages from the head --------------------------------------------------
    async def step(self) -> bool:
        """Send the head and the due messages behind it (up to `window`), one at a time in
        order; False when there was nothing due. A message that is not delivered ends the
        window (the rest are given back untried, their attempt not counted); the accepted ones
        are marked sent together at the end."""
        with self.engine.begin() as conn:
            rows = hl7_outbox.claim_window(conn, self.name, self.lease, self.window)
        if not rows:
            return False
        texts = self._messages(rows)
        acked: list[tuple[int, str]] = []
        started = time.monotonic()
        try:
            for k, (row, text) in enumerate(zip(rows, texts, strict=True)):
                late = k and time.monotonic() - started > self.lease.total_seconds() / 2
                if late or not await self._one(row, text, acked):
                    with self.engine.begin() as conn:
                        hl7_outbox.release(conn, [r.id for r in rows[k + (not late):]],
                                           self.name)
                    break
        finally:
            if acked:
                with self.engine.begin() as conn:
                    done = hl7_outbox.mark_sent_many(conn, acked, self.name)
                if done != len(acked):
                    log.warning("hl7: %d of %d delivered messages had lost their lease; they "
                                "may be resent with the same control ids", len(acked) - done,
                                len(acked))
        return True

    async def _one(self, row: hl7_outbox.OutboxRow, text: str | MessageUnavailable,
                   acked: list[tuple[int, str]]) -> bool:
        """One message on the wire and its outcome recorded; False ends the window."""
        if isinstance(text, MessageUnavailable):
            with self.engine.begin() as conn:
                hl7_outbox.mark_failed(conn, row.id, self.name, str(text))
            log.error("hl7 message %s failed: %s", row.control_id, text)
            return True
        try:
            code, reason = await self._deliver(text, row.control_id)
        except DeliveryError as exc:
            await self._close()  # a fresh connection for the next try
            delay = min(self.backoff * 2 ** (row.attempts - 1), self.backoff_max)
            with self.engine.begin() as conn:
                hl7_outbox.mark_retry(conn, row.id, self.name, attempts=row.attempts,
                                      max_attempts=self.max_attempts,
                                      delay=timedelta(seconds=delay), error=str(exc),
                                      ack_code=exc.ack_code)
            log.warning("hl7 message %s not delivered (attempt %d): %s", row.control_id,
                        row.attempts, exc)
            return False
        if code in REJECTED:
            with self.engine.begin() as conn:
                hl7_outbox.mark_rejected(conn, row.id, self.name, code,
                                         reason or "no reason given")
            log.error("hl7 message %s rejected by the LIS (%s): %s", row.control_id, code,
                      reason)
        else:
            acked.append((row.id, code))
        return True

    def _messages(self, rows: list[hl7_outbox.OutboxRow]) -> list[str | MessageUnavailable]:
        """Each row's stored text, or its ORU^R01 rendered from the stored prediction (read
        over one connection for the window)."""
        out: list[str | MessageUnavailable] = []
        with self.engine.connect() as conn:
            for row in rows:
                if row.message is not None:
                    out.append(row.message)
                    continue
                try:
                    out.append(render(stored_prediction(conn, row), row.created_at,
                                      row.processing_id))
                except MessageUnavailable as exc:
                    out.append(exc)
        return out

    async def _deliver(self, message: str, control_id: str) -> tuple[str, str]:
        """Send one message and read its ACK: (code, reason) for an accept or a reject;
        raises DeliveryError for anything to retry."""
        try:
            reader, writer = await self._connect()
            writer.writemessage(message)
            await asyncio.wait_for(writer.drain(), self.timeout)
            ack = await asyncio.wait_for(reader.readmessage(), self.timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, EOFError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc or 'connection closed'}") from None
        except Exception as exc:  # an unparseable answer
            raise DeliveryError(f"unreadable ACK: {type(exc).__name__}: {exc}") from None
        try:
            msa = ack.segment("MSA")
        except KeyError:
            raise DeliveryError("ACK without an MSA segment") from None
        code = str(msa[1]).strip().upper()
        acked = str(msa[2]).strip() if len(msa) > 2 else ""
        if acked != control_id:
            raise DeliveryError(f"ACK for control id {acked!r}, expected {control_id!r}", code)
        reason = ack.unescape(str(msa[3])) if len(msa) > 3 else ""
        if code in ACCEPTED or code in REJECTED:
            return code, reason
        if code in ERROR:
            raise DeliveryError(f"{code}: {reason or 'application error'}", code)
        raise DeliveryError(f"unknown acknowledgement code {code!r}", code[:2] or None)

    async def _connect(self) -> tuple[hl7.mllp.HL7StreamReader, hl7.mllp.HL7StreamWriter]:
        if self._conn is None:
            self._conn = await asyncio.wait_for(
                open_hl7_connection(self.host, self.port, encoding="utf-8"), self.timeout)
        return self._conn

    async def _close(self) -> None:
        if self._conn is not None:
            _, writer = self._conn
            self._conn = None
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
