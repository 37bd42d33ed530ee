"""The one writer of predictions: every prediction is stored through a `PredictionWriter`,
whether it came from a request (with its idempotency key and audit entry) or a batch job, and
with its HL7 outbox row (a reference the sender renders from) queued in the same transaction
when delivery to a LIS is configured.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from service.db import hl7_outbox
from service.db.audit import AuditEntry, record_audits
from service.db.idempotency import IdempotencyRecord, save_idempotency
from service.db.predictions import insert_predictions
from service.prediction.prediction import Prediction


class PredictionWriter:
    """Writes predictions in the caller's transaction (one commit per micro-batch or chunk)."""

    def __init__(self, *, hl7_processing_id: str | None = None,
                 hl7_tenants: frozenset[str] | None = None) -> None:
        # None: no LIS delivery configured, nothing queued
        self.hl7_processing_id = hl7_processing_id
        # whose predictions the LIS receives; None: every tenant's (settings refuse that when
        # keys name several tenants)
        self.hl7_tenants = hl7_tenants

    def write(self, conn: Connection, predictions: Sequence[Prediction], *,
              keys: Sequence[IdempotencyRecord] = (),
              audits: Sequence[AuditEntry] = ()) -> None:
        """Insert predictions with their idempotency keys, audit entries and (when delivery
        is on) their HL7 outbox rows, all or nothing."""
        insert_predictions(conn, predictions)
        for key in keys:
            save_idempotency(conn, key)
        record_audits(conn, audits)
        if self.hl7_processing_id is not None:
            delivered = [p for p in predictions
                         if self.hl7_tenants is None or p.tenant in self.hl7_tenants]
            hl7_outbox.enqueue(conn, delivered, processing_id=self.hl7_processing_id)
