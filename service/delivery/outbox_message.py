"""The text the sender puts on the wire for an outbox row: the ORU^R01 rendered from the stored
prediction when it is sent (storage holds a reference, not HL7), or the text a row queued before
revision 0006 carries.

Rendering is plain ER7 text (`service.prediction.hl7`), cheap enough for the sender's own
thread; storing a prediction never waits on it.

The message time (MSH-7) is the time the row was queued, not the time of this attempt, so every
resend of a prediction renders the same text under the same control id.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from service.db.hl7_outbox import OutboxRow
from service.db.predictions import get_prediction
from service.prediction import hl7
from service.prediction.prediction import Prediction


class MessageUnavailable(Exception):
    """The row's message cannot be built (its prediction is gone, or a value cannot be
    rendered):
    retrying will not help until someone fixes the cause and requeues it."""


def stored_prediction(conn: Connection, row: OutboxRow) -> Prediction:
    """The prediction a reference row points at (raises MessageUnavailable if it is gone)."""
    record = get_prediction(conn, row.prediction_id, tenant=None)
    if record is None:
        raise MessageUnavailable(f"prediction {row.prediction_id} is not stored")
    return record


def render(record: Prediction, queued_at: datetime, processing_id: str) -> str:
    """The ER7 of `record`'s ORU^R01 (raises MessageUnavailable)."""
    try:
        return hl7.message_for(record, now=queued_at, processing_id=processing_id)
    except (ValueError, TypeError, KeyError) as exc:
        raise MessageUnavailable(f"ORU^R01 for prediction {record.id} could not be built: "
                                 f"{type(exc).__name__}: {exc}") from None
