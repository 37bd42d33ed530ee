"""The one writer of predictions: every prediction is stored through `write_predictions`,
whether it came from a request (with its idempotency key and audit entry) or a batch job.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from service.db.audit import AuditEntry, record_audits
from service.db.idempotency import IdempotencyRecord, save_idempotency
from service.db.predictions import insert_predictions
from service.prediction.prediction import Prediction


def write_predictions(conn: Connection, predictions: Sequence[Prediction], *,
                      keys: Sequence[IdempotencyRecord] = (),
                      audits: Sequence[AuditEntry] = ()) -> None:
    """Insert predictions with their idempotency keys and audit entries, in the caller's
    transaction (one commit for a whole micro-batch or job chunk).
    """
    insert_predictions(conn, predictions)
    for key in keys:
        save_idempotency(conn, key)
    record_audits(conn, audits)
