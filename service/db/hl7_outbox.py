"""The HL7 outbox: ORU^R01 messages written in the same transaction as their prediction, and
handed to the LIS one at a time, in order, by `delivery.mllp_sender`.

Rows move pending → sent (AA), rejected (AR: the LIS refuses it; recorded, not retried) or
failed (still no AA after the configured attempts). Only the head of the queue (the oldest
pending row) can be claimed, and only while nobody else holds its lease, so with any number of
senders messages leave in insertion order and never two at once. A row is marked sent only after
the LIS acknowledged it, under the lease that sent it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update

from service.db.engine import utcnow
from service.db.tables import hl7_outbox
from service.prediction import hl7
from service.prediction.prediction import Prediction


@dataclass(frozen=True)
class OutboxRow:
    id: int
    prediction_id: str
    control_id: str
    message: str
    attempts: int


def enqueue(conn: Connection, records: Sequence[Prediction], *,
            processing_id: str = "P") -> None:
    """One outbox row per record, in the caller's transaction (the message text is built now
    and stored, so every resend is byte-identical)."""
    now = utcnow()
    rows = [{"prediction_id": r.id, "control_id": hl7.control_id(r),
             "message": hl7.message_for(r, now=now, processing_id=processing_id),
             "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
            for r in records]
    if rows:
        conn.execute(insert(hl7_outbox), rows)


def claim_head(conn: Connection, owner: str, lease: timedelta,
               now: datetime | None = None) -> OutboxRow | None:
    """Lease the oldest pending message if it is due and nobody holds it; None otherwise."""
    now = now or utcnow()
    head = conn.execute(
        select(hl7_outbox.c.id, hl7_outbox.c.prediction_id, hl7_outbox.c.control_id,
               hl7_outbox.c.message, hl7_outbox.c.attempts, hl7_outbox.c.next_attempt_at)
        .where(hl7_outbox.c.status == "pending").order_by(hl7_outbox.c.id).limit(1)).first()
    if head is None or head.next_attempt_at > now:  # UtcDateTime: aware on both databases
        return None  # empty, or the head is backing off: later messages wait behind it
    claimed = conn.execute(
        update(hl7_outbox)
        .where(hl7_outbox.c.id == head.id, hl7_outbox.c.status == "pending",
               or_(hl7_outbox.c.lease_owner.is_(None), hl7_outbox.c.lease_owner == owner,
                   hl7_outbox.c.lease_expires_at < now))
        .values(lease_owner=owner, lease_expires_at=now + lease,
                attempts=hl7_outbox.c.attempts + 1))
    if claimed.rowcount != 1:
        return None
    return OutboxRow(head.id, head.prediction_id, head.control_id, head.message,
                     head.attempts + 1)


def _held(row_id: int, owner: str) -> Any:
    return and_(hl7_outbox.c.id == row_id, hl7_outbox.c.lease_owner == owner,
                hl7_outbox.c.status == "pending")


def mark_sent(conn: Connection, row_id: int, owner: str, ack_code: str) -> bool:
    """The LIS accepted the message; False if the lease was lost (someone else resends)."""
    done = conn.execute(update(hl7_outbox).where(_held(row_id, owner)).values(
        status="sent", ack_code=ack_code, sent_at=utcnow(), lease_owner=None,
        lease_expires_at=None, last_error=None))
    return done.rowcount == 1


def mark_rejected(conn: Connection, row_id: int, owner: str, ack_code: str, error: str) -> bool:
    """The LIS refused the message (AR): recorded with its reason, not retried."""
    done = conn.execute(update(hl7_outbox).where(_held(row_id, owner)).values(
        status="rejected", ack_code=ack_code, last_error=error[:2000], lease_owner=None,
        lease_expires_at=None))
    return done.rowcount == 1


def mark_retry(conn: Connection, row_id: int, owner: str, *, attempts: int, max_attempts: int,
               delay: timedelta, error: str, ack_code: str | None = None) -> bool:
    """Not delivered this time: back off (the head stays the head), or give up as failed."""
    status = "failed" if attempts >= max_attempts else "pending"
    done = conn.execute(update(hl7_outbox).where(_held(row_id, owner)).values(
        status=status, ack_code=ack_code, last_error=error[:2000], lease_owner=None,
        lease_expires_at=None, next_attempt_at=utcnow() + delay))
    return done.rowcount == 1


def rows(conn: Connection) -> list[dict[str, Any]]:
    """Every outbox row in delivery order (tests and operators)."""
    return [r._asdict() for r in conn.execute(select(hl7_outbox).order_by(hl7_outbox.c.id))]

