"""`POST /v1/predictions/bulk`: many samples in one request (JSON or an Arrow IPC stream), scored
together through the micro-batcher so they share model calls.

Each sample is stored, audited and idempotent as a single prediction would be, and answers
what the single route would (its body, or its error with the same code, field and message), in
request order. One `Idempotency-Key` covers the whole request: sample i is recorded under a key
derived from it and i, so a retry replays every sample stored before and scores the rest.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from ingestion.cells import CellSet
from ingestion.errors import IngestionError
from service import metrics
from service.api.arrow_codec import (
    ARROW_STREAM,
    cellsets_from_table,
    echoed_id,
    read_table,
    results_stream,
)
from service.api.bulk_budget import BulkBudget
from service.api.bulk_json import Ids, json_items
from service.api.dependencies import PredictScope, StateDep
from service.api.errors import ApiError, _location, storage_answer
from service.api.idempotency import IdempotencyKey, request_digest
from service.api.schemas import ErrorResponse, PredictionRequest, PredictionResponse
from service.db.errors import IdempotencyConflict
from service.prediction.mapper import error_row, rest_body, result_row
from service.prediction.notice import NOTICE
from service.prediction.prediction import Prediction
from service.settings import Settings

log = logging.getLogger("hct.api")
router = APIRouter(prefix="/v1/predictions", tags=["predictions"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 409, 413, 415, 422, 503)}
_JSON = "application/json"


class BulkRequest(BaseModel):
    """Many samples, each exactly the body of `POST /v1/predictions`."""

    samples: list[PredictionRequest] = Field(min_length=1)


class BulkResponse(BaseModel):
    items: list[PredictionResponse | ErrorResponse] = Field(
        description="One per sample, in request order: the single route's body or its error")
    notice: str = NOTICE


Item = CellSet | Exception


@router.post("/bulk", response_model=BulkResponse, responses=_ERRORS,
             summary="Predict hematocrit for many samples (JSON or Arrow IPC stream)",
             description="Up to HCT_MAX_BULK_SAMPLES samples per request, as JSON "
                         "`{\"samples\": [<single-prediction body>, …]}` or as an Arrow IPC "
                         f"stream (`Content-Type: {ARROW_STREAM}`, one row per sample). Results "
                         f"in request order; `Accept: {ARROW_STREAM}` answers an Arrow stream "
                         f"of result rows. {NOTICE}",
             openapi_extra={"requestBody": {"required": True, "content": {
                 _JSON: {"schema": BulkRequest.model_json_schema()},
                 ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}}}}})
async def create_predictions_bulk(principal: PredictScope, request: Request, state: StateDep,
                                  idempotency_key: IdempotencyKey = None) -> Response:
    settings = state.settings
    media = request.headers.get("content-type", _JSON).split(";")[0].strip().lower()
    if media not in (ARROW_STREAM, _JSON, ""):
        raise ApiError(415, "unsupported_media_type", f"Content-Type {media!r}: send "
                       f"{_JSON} or {ARROW_STREAM}", "header.content-type")
    declared = _declared_length(request, settings.max_body_bytes)
    budget: BulkBudget = request.app.state.bulk_budget
    with budget.hold(settings.max_body_bytes if declared is None else declared):
        data = await _read_body(request, declared)
        # Decoding and validating a large body takes CPU seconds: off the event loop, so
        # health checks and other requests are answered meanwhile.
        items, ids, digest = await run_in_threadpool(
            _decode, media, data, settings, idempotency_key is not None)
        del data  # the cells are copied into the CellSets; the body is no longer needed
        keys: list[str | None] = [None] * len(items)
        if idempotency_key is not None:
            stem = hashlib.sha256(idempotency_key.encode()).hexdigest()
            keys = [f"bulk:{stem}:{i}" for i in range(len(items))]
        good = [i for i, item in enumerate(items) if isinstance(item, CellSet)]
        results: list[Any] = list(items)
        if good:
            stored = await state.online.predict_many(
                [items[i] for i in good], principal=principal, source="api",  # type: ignore[misc]
                keys=[keys[i] for i in good], digest=digest)
            for i, result in zip(good, stored, strict=True):
                results[i] = result
        del items
        replayed = all(isinstance(r, tuple) and not r[1] for r in results)
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        if ARROW_STREAM in request.headers.get("accept", ""):
            body = await run_in_threadpool(_arrow_body, results, ids)
            return Response(body, media_type=ARROW_STREAM, headers=headers)
        body = await run_in_threadpool(_json_body, results)
        return Response(body, media_type=_JSON, headers=headers)


def _declared_length(request: Request, cap: int) -> int | None:
    """The body's declared size (the body-size middleware already refused one over `cap`)."""
    declared = request.headers.get("content-length", "")
    return min(int(declared), cap) if declared.isdigit() else None


async def _read_body(request: Request, declared: int | None) -> bytes | bytearray:
    """The body, read into one buffer of the declared size (no list of chunks joined into a
    second copy)."""
    if declared is None:
        return await request.body()
    buffer = bytearray(declared)
    n = 0
    async for chunk in request.stream():
        buffer[n:n + len(chunk)] = chunk  # grows the buffer if the client sends more
        n += len(chunk)
    del buffer[n:]
    return buffer


def _decode(media: str, data: bytes | bytearray, settings: Settings,
            keyed: bool) -> tuple[list[Item], list[Ids], str]:
    """Samples (or their errors), their ids, and the request digest, from the body."""
    digest = request_digest(media.encode(), data) if keyed else ""
    if media != ARROW_STREAM:
        items, ids = json_items(data, settings.max_bulk_samples, settings.max_cells,
                                settings.min_cells, settings.local_zone)
        return items, ids, digest
    table = read_table(data, settings.max_bulk_samples, settings.max_body_bytes)
    cellsets: list[Item] = list(cellsets_from_table(table, max_cells=settings.max_cells,
                                                    min_cells=settings.min_cells,
                                                    zone=settings.local_zone))
    arrow_ids = list(zip(table["patient_id"].to_pylist(), table["sample_id"].to_pylist(),
                         strict=True))
    return cellsets, arrow_ids, digest


def _json_body(results: list[Any]) -> str:
    return BulkResponse(items=[_json_item(r) for r in results]).model_dump_json()


def _arrow_body(results: list[Any], ids: list[Ids]) -> bytes:
    return results_stream([_arrow_row(i, r, ids[i]) for i, r in enumerate(results)])


def _error(exc: Exception) -> tuple[str, str, str | None]:
    """(code, message, field) as the single route's error handlers would answer `exc`."""
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_input=False)
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = _location(("body", *first.get("loc", ())))
        message = f"{field}: {first.get('msg')}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problems)"
        metrics.INGESTION_ERRORS.labels("request_schema").inc()
        return "invalid_request", message, field
    if isinstance(exc, IngestionError):
        metrics.INGESTION_ERRORS.labels(exc.kind).inc()
        return exc.kind, exc.message, None if exc.field is None else f"body.{exc.field}"
    if isinstance(exc, ApiError):
        return exc.code, exc.message, exc.field
    if isinstance(exc, IdempotencyConflict):
        return "idempotency_key_reused", str(exc), "header.idempotency-key"
    if (stored := storage_answer(exc)) is not None:
        return stored.code, stored.message, None
    log.error("bulk sample failed: %s", type(exc).__name__, exc_info=exc)
    return "internal_error", "internal error; see the service log", None


def _json_item(result: Any) -> PredictionResponse | ErrorResponse:
    if isinstance(result, Exception):
        code, message, field = _error(result)
        return ErrorResponse.model_validate({"error": {"code": code, "message": message,
                                                       "field": field}})
    prediction: Prediction = result[0]
    return PredictionResponse.model_validate(rest_body(prediction))


def _arrow_row(seq: int, result: Any, ids: tuple[Any, Any]) -> dict[str, Any]:
    if isinstance(result, Exception):
        code, message, field = _error(result)
        return {**error_row(seq, echoed_id(ids[0]), echoed_id(ids[1]), code, message),
                "error_field": field}
    return {**result_row(seq, result[0]), "error_field": None}
