"""The text the sender puts on the wire for an outbox row: the ORU^R01 rendered from the stored
prediction when it is sent (storage holds a reference, not HL7), or the text a row queued before
revision 0006 carries.

The message time (MSH-7) is the time the row was queued, not the time of this attempt, so every
resend of a prediction renders the same text under the same control id.
"""

from __future__ import annotations

from hl7apy.exceptions import HL7apyException
from sqlalchemy import Engine

from service.db.hl7_outbox import OutboxRow
from service.db.predictions import get_prediction
from service.prediction import hl7


class MessageUnavailable(Exception):
    """The row's message cannot be built (its prediction is gone, or hl7apy refuses it):
    retrying will not help until someone fixes the cause and requeues it."""


def message_text(engine: Engine, row: OutboxRow) -> str:
    """The ER7 to send for `row` (raises MessageUnavailable)."""
    if row.message is not None:
        return row.message
    with engine.connect() as conn:
        record = get_prediction(conn, row.prediction_id, tenant=None)
    if record is None:
        raise MessageUnavailable(f"prediction {row.prediction_id} is not stored")
    try:
        return hl7.message_for(record, now=row.created_at, processing_id=row.processing_id)
    except (HL7apyException, ValueError) as exc:
        raise MessageUnavailable(f"ORU^R01 for prediction {row.prediction_id} could not be "
                                 f"built: {type(exc).__name__}: {exc}") from None
