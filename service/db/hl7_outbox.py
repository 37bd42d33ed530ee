"""The HL7 outbox: one row per prediction the LIS is to receive, written in the same transaction
as the prediction, and handed to the LIS one at a time, in order, by `delivery.mllp_sender`.

A row references its prediction; the ORU^R01 text is rendered by the sender when it sends
(`delivery.outbox_message`), so storing a prediction costs one small insert. Rows queued before
revision 0006 carry their text in `message` and are sent as stored.

Rows move pending → sent (AA), rejected (AR: the LIS refuses it; recorded, not retried) or
failed (still no AA after the configured attempts, or a message that cannot be built); a failed
row goes back to pending only through `requeue`. Only the head of the queue can be claimed, and
only while nobody else holds its lease, so with any number of senders messages leave in
insertion order and never two at once. The head is the oldest pending row, except that a row
backing off after the LIS answered it with an error (AE/CE: the LIS is up and refuses this one
message) steps aside until its back-off ends, so one poison message never holds back the
results behind it; a row backing off after the LIS could not be reached stays the head (the
others could not be delivered either, and order is kept). A row is marked sent only after the
LIS acknowledged it, under the lease that sent it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from service.db.engine import utcnow
from service.db.tables import hl7_outbox
from service.prediction.hl7 import control_id
from service.prediction.prediction import Prediction

STATUSES = ("pending", "sent", "rejected", "failed")
NAK_CODES = ("AE", "CE")  # the LIS answered and refused this message for now


@dataclass(frozen=True)
class OutboxRow:
    id: int
    prediction_id: str
    control_id: str
    message: str | None  # None: render from the prediction (`delivery.outbox_message`)
    attempts: int
    processing_id: str
    created_at: datetime


def enqueue(conn: Connection, records: Sequence[Prediction], *,
            processing_id: str = "P") -> None:
    """One reference row per record, in the caller's transaction: a committed prediction always
    has its outbox row, and no HL7 is built here."""
    now = utcnow()
    rows = [{"prediction_id": r.id, "control_id": control_id(r), "message": None,
             "processing_id": processing_id, "status": "pending", "attempts": 0,
             "next_attempt_at": now, "created_at": now} for r in records]
    if rows:
        conn.execute(insert(hl7_outbox), rows)


def _in_line(now: datetime) -> Any:
    """Not a NAKed row still backing off (that one lets the rows behind it go first)."""
    c = hl7_outbox.c
    return or_(c.ack_code.is_(None), c.ack_code.not_in(NAK_CODES), c.next_attempt_at <= now)


def claim_window(conn: Connection, owner: str, lease: timedelta, limit: int,
                 now: datetime | None = None) -> list[OutboxRow]:
    """Lease up to `limit` rows from the head, in order: the head and the due rows right
    behind it (one statement each way, however many rows), stopping at the first that is not
    due; [] when the head is absent, backing off or held by someone else."""
    now = now or utcnow()
    c = hl7_outbox.c
    rows = conn.execute(
        select(c.id, c.prediction_id, c.control_id, c.message, c.attempts, c.next_attempt_at,
               c.processing_id, c.created_at, c.lease_owner, c.lease_expires_at)
        .where(c.status == "pending", _in_line(now))
        .order_by(c.id).limit(limit)).all()
    window = []
    for row in rows:
        free = row.lease_owner in (None, owner) or row.lease_expires_at < now
        if row.next_attempt_at > now or not free:
            break  # the rest wait behind it, as they wait behind a head backing off
        window.append(row)
    if not window:
        return []
    claimed = conn.execute(
        update(hl7_outbox)
        .where(c.id.in_([r.id for r in window]), c.status == "pending",
               or_(c.lease_owner.is_(None), c.lease_owner == owner, c.lease_expires_at < now))
        .values(lease_owner=owner, lease_expires_at=now + lease, attempts=c.attempts + 1))
    if claimed.rowcount != len(window):  # another sender took some meanwhile: let it go on
        release(conn, [r.id for r in window], owner)
        return []
    return [OutboxRow(r.id, r.prediction_id, r.control_id, r.message, r.attempts + 1,
                      r.processing_id or "P", r.created_at) for r in window]


def release(conn: Connection, row_ids: Sequence[int], owner: str) -> None:
    """Give back leased rows that were not tried (their attempt is not counted)."""
    if not row_ids:
        return
    c = hl7_outbox.c
    conn.execute(update(hl7_outbox)
                 .where(c.id.in_(list(row_ids)), c.lease_owner == owner, c.status == "pending")
                 .values(lease_owner=None, lease_expires_at=None, attempts=c.attempts - 1))


def mark_sent_many(conn: Connection, acked: Sequence[tuple[int, str]], owner: str) -> int:
    """The LIS accepted these messages (`(row id, ACK code)`); how many were still ours."""
    c = hl7_outbox.c
    done = 0
    for code in sorted({code for _, code in acked}):
        ids = [row_id for row_id, k in acked if k == code]
        done += conn.execute(update(hl7_outbox)
                             .where(c.id.in_(ids), c.lease_owner == owner,
                                    c.status == "pending")
                             .values(status="sent", ack_code=code, sent_at=utcnow(),
                                     lease_owner=None, lease_expires_at=None,
                                     last_error=None)).rowcount
    return done


def _held(row_id: int, owner: str) -> Any:
    return and_(hl7_outbox.c.id == row_id, hl7_outbox.c.lease_owner == owner,
                hl7_outbox.c.status == "pending")


def mark_rejected(conn: Connection, row_id: int, owner: str, ack_code: str, error: str) -> bool:
    """The LIS refused the message (AR): recorded with its reason, not retried."""
    done = conn.execute(update(hl7_outbox).where(_held(row_id, owner)).values(
        status="rejected", ack_code=ack_code, last_error=error[:2000], lease_owner=None,
        lease_expires_at=None))
    return done.rowcount == 1


def mark_failed(conn: Connection, row_id: int, owner: str, error: str) -> bool:
    """Give up on the message now (it cannot be built): failed until someone requeues it."""
    done = conn.execute(update(hl7_outbox).where(_held(row_id, owner)).values(
        status="failed", last_error=error[:2000], lease_owner=None, lease_expires_at=None))
    return done.rowcount == 1


def mark_retry(conn: Connection, row_id: int, owner: str, *, attempts: int, max_attempts: int,
               delay: timedelta, error: str, ack_code: str | None = None) -> bool:
    """Not delivered this time: back off (an AE/CE steps aside, anything else stays the head),
    or give up as failed."""
    status = "failed" if attempts >= max_attempts else "pending"
    done = conn.execute(update(hl7_outbox).where(_held(row_id, owner)).values(
        status=status, ack_code=ack_code, last_error=error[:2000], lease_owner=None,
        lease_expires_at=None, next_attempt_at=utcnow() + delay))
    return done.rowcount == 1


def requeue(conn: Connection, *, ids: Sequence[int] | None = None,
            since: datetime | None = None) -> list[int]:
    """Failed rows back to pending with a fresh attempt budget, due now (all failed rows, or
    those among `ids`, or queued at or after `since`); returns their ids. They keep their place
    in the order: an older requeued row is sent before the rows queued after it."""
    c = hl7_outbox.c
    where = [c.status == "failed"]
    if ids is not None:
        where.append(c.id.in_(list(ids)))
    if since is not None:
        where.append(c.created_at >= since)
    found = [r.id for r in conn.execute(select(c.id).where(*where).order_by(c.id))]
    if found:
        conn.execute(update(hl7_outbox).where(c.id.in_(found), c.status == "failed").values(
            status="pending", attempts=0, ack_code=None, next_attempt_at=utcnow(),
            lease_owner=None, lease_expires_at=None))
    return found


def counts(conn: Connection) -> dict[str, int]:
    """Rows per status (every status present, zero when none)."""
    found = dict(conn.execute(select(hl7_outbox.c.status, func.count())
                              .group_by(hl7_outbox.c.status)).all())
    return {s: int(found.get(s, 0)) for s in STATUSES}


def rows(conn: Connection) -> list[dict[str, Any]]:
    """Every outbox row in delivery order (tests and operators)."""
    return [r._asdict() for r in conn.execute(select(hl7_outbox).order_by(hl7_outbox.c.id))]
