"""Store-and-answer for prediction requests: idempotency, scoring, persistence, audit.

Shared by the JSON and the FCS endpoints, so both behave the same on retries and errors. The
request handler validates and queues; `store_batch` runs on the micro-batcher's store thread
for a whole batch: baselines and indices vectorised over the batch, then one transaction for
every prediction, idempotency key and audit entry in it (one commit instead of one per request).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ingestion.cells import CellSet
from service import metrics, store
from service.idempotency import replayed_id
from service.pipeline import Scorer
from service.store import AuditEntry, PredictionRecord

if TYPE_CHECKING:  # state.py builds the batcher around store_batch
    from service.state import ServiceState

Stored = tuple[PredictionRecord, bool]  # the record, and whether this request created it


@dataclass(frozen=True)
class OnlineRequest:
    """One accepted request waiting in the micro-batcher."""

    cellset: CellSet
    cells: np.ndarray  # [n, 2] the cells the model sees
    principal: str
    source: str  # api | fcs
    key: str | None  # Idempotency-Key
    digest: str  # sha256 of the request, compared on a retry with the same key


def replay(engine: Engine, principal: str, key: str | None,
           digest: str) -> PredictionRecord | None:
    """The stored prediction for a retried `Idempotency-Key`, or None for a new request."""
    if key is None:
        return None  # no key, nothing to replay: no database round trip
    with engine.begin() as conn:
        prediction_id = replayed_id(conn, principal, key, digest, "prediction")
        if prediction_id is None:
            return None
        store.record_audit(conn, principal=principal, action="replay", resource="prediction",
                           resource_id=prediction_id)
        return store.get_prediction(conn, prediction_id)


async def predict_and_store(state: ServiceState, cellset: CellSet, *, principal: str,
                            source: str, key: str | None, digest: str) -> Stored:
    """Score and persist; returns the record and whether it was created now (False: replay)."""
    stored = replay(state.engine, principal, key, digest)
    if stored is not None:
        return stored, False
    request = OnlineRequest(cellset, state.scorer.select_cells(cellset), principal, source,
                            key, digest)
    return await state.batcher.submit(request.cells, request)


def store_batch(scorer: Scorer, engine: Engine, requests: Sequence[OnlineRequest],
                values: np.ndarray) -> list[Stored | Exception]:
    """Finish and persist one micro-batch (`values [B]` from the model), in one transaction.

    If the batch transaction fails on a unique key (a concurrent retry with the same
    Idempotency-Key won the race), every request is stored on its own instead, so one
    duplicate cannot fail its neighbours.
    """
    scored = scorer.finish([r.cellset for r in requests], [r.cells for r in requests], values)
    created_at = store.utcnow()
    records = [scorer.record(s, prediction_id=store.new_id(), created_at=created_at,
                             source=r.source) for s, r in zip(scored, requests, strict=True)]
    try:
        with engine.begin() as conn:
            _write(conn, requests, records)
        results: list[Stored | Exception] = [(record, True) for record in records]
    except IntegrityError:
        results = [_store_one(engine, r, record) for r, record in zip(requests, records,
                                                                      strict=True)]
    for result in results:
        if not isinstance(result, Exception) and result[1]:
            metrics.PREDICTIONS_STORED.labels(result[0].source).inc()
    return results


def _write(conn: Connection, requests: Sequence[OnlineRequest],
           records: Sequence[PredictionRecord]) -> None:
    store.insert_predictions(conn, records)
    for r, record in zip(requests, records, strict=True):
        if r.key is not None:
            store.save_idempotency(conn, r.principal, r.key, r.digest, "prediction", record.id)
    store.record_audits(conn, [AuditEntry(r.principal, "create", "prediction", record.id)
                               for r, record in zip(requests, records, strict=True)])


def _store_one(engine: Engine, request: OnlineRequest,
               record: PredictionRecord) -> Stored | Exception:
    try:
        with engine.begin() as conn:
            _write(conn, [request], [record])
        return record, True
    except IntegrityError as exc:
        try:
            stored = replay(engine, request.principal, request.key, request.digest)
        except Exception as replay_error:  # e.g. the key was reused for another request: 409
            return replay_error
        return exc if stored is None else (stored, False)
