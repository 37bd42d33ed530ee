"""Every error leaves the API as JSON `{"error": {"code", "message", "field"}}`.

Invalid input is always a 4xx naming the field; a 5xx means a bug or an outage, never bad data.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingestion.errors import IngestionError
from service import metrics
from service.db.errors import IdempotencyConflict
from service.runtime.batcher import QueueFullError

log = logging.getLogger("hct.api")

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
                 415: "unsupported_media_type", 422: "invalid_request", 503: "unavailable"}


class ApiError(Exception):
    """An error with an HTTP status, a stable code and the field it concerns."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers


def error_response(status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "field": field}},
                        status_code=status, headers=headers)


def _location(loc: tuple[object, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = _location(tuple(first.get("loc", ())))
    message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problems)"
    metrics.INGESTION_ERRORS.labels("request_schema").inc()
    return error_response(422, "invalid_request", message, field or None)


async def _ingestion(_: Request, exc: IngestionError) -> JSONResponse:
    metrics.INGESTION_ERRORS.labels(exc.kind).inc()
    field = None if exc.field is None else f"body.{exc.field}"
    return error_response(422, exc.kind, exc.message, field)


async def _api(_: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)


async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _STATUS_CODES.get(exc.status_code, "error")
    field = "body" if exc.status_code == 400 else None  # a form body that cannot be parsed
    return error_response(exc.status_code, code, str(exc.detail), field,
                          headers=getattr(exc, "headers", None))


async def _queue_full(_: Request, exc: QueueFullError) -> JSONResponse:
    return error_response(503, "overloaded", str(exc), headers={"Retry-After": "1"})


async def _database_down(_: Request, exc: OperationalError | PoolTimeoutError) -> JSONResponse:
    # An outage, not a bug: say so, and that a retry may work (nothing was stored). A pool
    # timeout means every connection is stuck on a database that does not answer.
    log.error("database unavailable: %s", type(getattr(exc, "orig", None) or exc).__name__)
    return error_response(503, "database_unavailable",
                          "the database is unavailable; nothing was stored, retry later",
                          headers={"Retry-After": "5"})


async def _idempotency_conflict(_: Request, exc: IdempotencyConflict) -> JSONResponse:
    return error_response(409, "idempotency_key_reused", str(exc), "header.idempotency-key")


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error: %s", type(exc).__name__)
    return error_response(500, "internal_error", "internal error; see the service log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(IngestionError, _ingestion)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, _api)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(QueueFullError, _queue_full)  # type: ignore[arg-type]
    app.add_exception_handler(IdempotencyConflict, _idempotency_conflict)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _database_down)  # type: ignore[arg-type]
    app.add_exception_handler(PoolTimeoutError, _database_down)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
