"""Store-and-answer for one prediction request: idempotency, scoring, persistence, audit.

Shared by the JSON and the FCS endpoints, so both behave the same on retries and errors.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from ingestion.cells import CellSet
from service import metrics, store
from service.idempotency import replayed_id
from service.state import ServiceState
from service.store import PredictionRecord


def replay(state: ServiceState, principal: str, key: str | None,
           digest: str) -> PredictionRecord | None:
    """The stored prediction for a retried `Idempotency-Key`, or None for a new request."""
    with state.engine.begin() as conn:
        prediction_id = replayed_id(conn, principal, key, digest, "prediction")
        if prediction_id is None:
            return None
        store.record_audit(conn, principal=principal, action="replay", resource="prediction",
                           resource_id=prediction_id)
        return store.get_prediction(conn, prediction_id)


async def predict_and_store(state: ServiceState, cellset: CellSet, *, principal: str,
                            source: str, key: str | None, digest: str) -> tuple[
                                PredictionRecord, bool]:
    """Score and persist; returns the record and whether it was created now (False: replay)."""
    stored = replay(state, principal, key, digest)
    if stored is not None:
        return stored, False
    scored = await state.scorer.score_one(cellset, state.batcher)
    record = state.scorer.record(scored, prediction_id=store.new_id(),
                                 created_at=store.utcnow(), source=source)
    try:
        with state.engine.begin() as conn:
            store.insert_predictions(conn, [record])
            if key is not None:
                store.save_idempotency(conn, principal, key, digest, "prediction", record.id)
            store.record_audit(conn, principal=principal, action="create",
                               resource="prediction", resource_id=record.id)
    except IntegrityError:
        # A concurrent retry with the same key won the race: answer with its result.
        stored = replay(state, principal, key, digest)
        if stored is None:
            raise
        return stored, False
    metrics.PREDICTIONS_STORED.labels(source).inc()
    return record, True
