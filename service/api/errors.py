"""Every error leaves the API as JSON `{"error": {"code", "message", "field"}}`.

Invalid input is always a 4xx naming the field; a 5xx means a bug or an outage, never bad data.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingestion.errors import IngestionError
from service import metrics
from service.db.errors import CommitOutcomeUnknown, DatabaseDeadlineSpent, IdempotencyConflict
from service.db.failures import failure_kind
from service.runtime.batcher import QueueFullError

log = logging.getLogger("hct.api")

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
                 415: "unsupported_media_type", 422: "invalid_request", 503: "unavailable",
                 507: "insufficient_storage"}


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


@dataclass(frozen=True)
class StorageAnswer:
    """How the API answers a database or storage failure."""

    status: int
    code: str
    message: str
    retry_after_s: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


_NOTHING_STORED = StorageAnswer(503, "database_unavailable",
                                "the database is unavailable; nothing was stored, retry later", 5)
_OUTCOME_UNKNOWN = StorageAnswer(
    503, "commit_outcome_unknown",
    "the database connection was lost while the result was being committed: it may or may "
    "not have been stored. Retry with the same Idempotency-Key: it returns the stored result "
    "if there is one and stores it once if there is not (a retry without a key may store it "
    "twice)", 5)
_DATABASE_FULL = StorageAnswer(507, "insufficient_storage",
                               "the database's storage is full; nothing was stored, retry later",
                               60)
_UPLOADS_FULL = StorageAnswer(507, "insufficient_storage",
                              "the upload storage is full; nothing was stored, retry later", 60)


def storage_answer(exc: BaseException) -> StorageAnswer | None:
    """The answer for a database or storage failure, None for any other error; one mapping
    for the error handlers and for the per-sample errors of the bulk route.

    An outage, not a bug: say so, and whether a retry may work. "Nothing was stored" only
    when that is certain; a lost COMMIT says the outcome is unknown. A pool timeout means
    every connection is stuck on a database that does not answer.
    """
    if isinstance(exc, CommitOutcomeUnknown):
        return _OUTCOME_UNKNOWN
    if isinstance(exc, DatabaseDeadlineSpent | PoolTimeoutError):
        return _NOTHING_STORED
    if isinstance(exc, OperationalError):
        kind = failure_kind(exc)
        return _DATABASE_FULL if kind == "disk_full" else _NOTHING_STORED
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return _UPLOADS_FULL
    return None


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    answer = storage_answer(exc)
    if answer is None:  # an OSError that is not a full disk: a bug or the host's fault
        return await _unexpected(request, exc)
    cause = exc.__cause__ if isinstance(exc, CommitOutcomeUnknown) else exc
    log.error("%s: %s", answer.code, type(getattr(cause, "orig", None) or cause).__name__)
    return error_response(answer.status, answer.code, answer.message, headers=answer.headers)


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
    app.add_exception_handler(CommitOutcomeUnknown, _database_down)
    app.add_exception_handler(DatabaseDeadlineSpent, _database_down)
    app.add_exception_handler(OSError, _database_down)  # a full disk; else as unexpected
    app.add_exception_handler(Exception, _unexpected)
