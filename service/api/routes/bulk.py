"""`POST /v1/predictions/bulk`: many samples in one request (JSON or an Arrow IPC stream), scored
together through the micro-batcher so they share model calls.

Each sample is stored, audited and idempotent as a single prediction would be, and answers
what the single route would (its body, or its error with the same code, field and message), in
request order. One `Idempotency-Key` covers the whole request: sample i is recorded under a key
derived from it and i, so a retry replays every sample stored before and scores the rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from ingestion.cells import CellSet
from ingestion.errors import IngestionError
from service import metrics
from service.api.arrow_codec import ARROW_STREAM, cellsets_from_table, read_table, results_stream
from service.api.dependencies import PredictScope, StateDep
from service.api.errors import ApiError, _location, storage_answer
from service.api.idempotency import IdempotencyKey, request_digest
from service.api.sample_input import cellset_from_request
from service.api.schemas import ErrorResponse, PredictionRequest, PredictionResponse
from service.db.errors import IdempotencyConflict
from service.prediction.mapper import error_row, rest_body, result_row
from service.prediction.notice import NOTICE
from service.prediction.prediction import Prediction

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
    data = await request.body()
    media = request.headers.get("content-type", _JSON).split(";")[0].strip().lower()
    if media == ARROW_STREAM:
        table = read_table(data, settings.max_bulk_samples)
        items: list[Item] = cellsets_from_table(table, max_cells=settings.max_cells,
                                                min_cells=settings.min_cells)
        ids = list(zip(table["patient_id"].to_pylist(), table["sample_id"].to_pylist(),
                       strict=True))
    elif media in (_JSON, ""):
        items, ids = _json_items(data, settings.max_bulk_samples, settings.max_cells,
                                 settings.min_cells)
    else:
        raise ApiError(415, "unsupported_media_type", f"Content-Type {media!r}: send "
                       f"{_JSON} or {ARROW_STREAM}", "header.content-type")
    keys: list[str | None] = [None] * len(items)
    digest = ""
    if idempotency_key is not None:
        digest = request_digest(media.encode(), data)
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
    replayed = all(isinstance(r, tuple) and not r[1] for r in results)
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    if ARROW_STREAM in request.headers.get("accept", ""):
        rows = [_arrow_row(i, r, ids[i]) for i, r in enumerate(results)]
        body = await run_in_threadpool(results_stream, rows)
        return Response(body, media_type=ARROW_STREAM, headers=headers)
    return Response(BulkResponse(items=[_json_item(r) for r in results]).model_dump_json(),
                    media_type=_JSON, headers=headers)


def _json_items(data: bytes, limit: int, max_cells: int,
                min_cells: int) -> tuple[list[Item], list[tuple[str | None, str | None]]]:
    """Samples of a JSON body: validated in one pass when all are valid; otherwise each sample
    on its own, so one bad sample gets the error the single route gives and the rest still run.
    """
    try:
        bodies: list[PredictionRequest | Exception] = list(
            BulkRequest.model_validate_json(data).samples)
    except ValidationError as exc:
        bodies = _per_sample(data, exc)
    if len(bodies) > limit:
        raise ApiError(413, "too_many_samples", f"samples has {len(bodies)} samples: at most "
                       f"{limit} per request (HCT_MAX_BULK_SAMPLES)", "body.samples")
    out: list[Item] = []
    ids: list[tuple[str | None, str | None]] = []
    for body in bodies:
        if isinstance(body, Exception):
            out.append(body)
            ids.append((None, None))
            continue
        ids.append((body.patient_id, body.sample_id))
        try:
            out.append(cellset_from_request(body, max_cells=max_cells, min_cells=min_cells))
        except (IngestionError, ApiError) as exc:
            out.append(exc)
    return out, ids


def _per_sample(data: bytes, exc: ValidationError) -> list[PredictionRequest | Exception]:
    """Split a failed bulk validation into per-sample outcomes; a fault outside `samples[i]`
    (not JSON, no `samples` list, an empty one) fails the whole request as the single route
    would fail its body."""
    outside = [e for e in exc.errors(include_url=False, include_input=False)
               if len(e["loc"]) < 2 or e["loc"][0] != "samples" or not isinstance(e["loc"][1],
                                                                                  int)]
    if outside:
        _raise_validation(outside)
    raw = json.loads(data)["samples"]
    out: list[PredictionRequest | Exception] = []
    for sample in raw:
        try:
            out.append(PredictionRequest.model_validate_json(json.dumps(sample)))
        except ValidationError as sample_exc:
            out.append(sample_exc)
    return out


def _raise_validation(errors: list[Any]) -> None:
    first = errors[0]
    field = _location(("body", *first["loc"]))
    message = f"{field}: {first['msg']}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problems)"
    raise ApiError(422, "invalid_request", message, field)


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
        return {**error_row(seq, ids[0], ids[1], code, message), "error_field": field}
    return {**result_row(seq, result[0]), "error_field": None}
