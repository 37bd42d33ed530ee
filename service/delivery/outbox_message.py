"""The text the sender puts on the wire for an outbox row: the ORU^R01 rendered from the stored
prediction when it is sent (storage holds a reference, not HL7), or the text a row queued before
revision 0006 carries.

Rendering with hl7apy costs far more CPU than storing the prediction did, so the service renders
in a child process (`ChildRenderer`) at a lower CPU priority: it never holds the server's GIL,
and when cores are scarce serving predictions comes first and delivery catches up after.

The message time (MSH-7) is the time the row was queued, not the time of this attempt, so every
resend of a prediction renders the same text under the same control id.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

from hl7apy.exceptions import HL7apyException
from sqlalchemy import Engine

from service.db.hl7_outbox import OutboxRow
from service.db.predictions import get_prediction
from service.prediction import hl7
from service.prediction.prediction import Prediction


class MessageUnavailable(Exception):
    """The row's message cannot be built (its prediction is gone, or hl7apy refuses it):
    retrying will not help until someone fixes the cause and requeues it."""


def stored_prediction(engine: Engine, row: OutboxRow) -> Prediction:
    """The prediction a reference row points at (raises MessageUnavailable if it is gone)."""
    with engine.connect() as conn:
        record = get_prediction(conn, row.prediction_id, tenant=None)
    if record is None:
        raise MessageUnavailable(f"prediction {row.prediction_id} is not stored")
    return record


def render(record: Prediction, queued_at: datetime, processing_id: str) -> str:
    """The validated ER7 of `record`'s ORU^R01 (raises MessageUnavailable)."""
    try:
        return hl7.message_for(record, now=queued_at, processing_id=processing_id)
    except (HL7apyException, ValueError) as exc:
        raise MessageUnavailable(f"ORU^R01 for prediction {record.id} could not be built: "
                                 f"{type(exc).__name__}: {exc}") from None


def _lower_priority(nice: int) -> None:
    os.nice(nice)


class ChildRenderer:
    """`render` in one child process (started on first use, restarted if it dies)."""

    def __init__(self, nice: int = 10) -> None:
        self.nice = nice
        self._pool: ProcessPoolExecutor | None = None

    async def render(self, record: Prediction, queued_at: datetime, processing_id: str) -> str:
        if self._pool is None:
            # spawn: the server process holds threads (batcher, onnxruntime), unsafe to fork
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_lower_priority,
                                             initargs=(self.nice,))
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, render, record, queued_at, processing_id)
        except MessageUnavailable:
            raise
        except Exception:  # the child died (BrokenProcessPool) or could not start
            self.close()
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
