"""FastAPI dependencies: the components loaded at start-up, the caller's principal and a
database connection per request, as `Annotated` aliases routes declare.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import Connection

from service.api.schemas import PredictionRequest
from service.api.security import Rejected, authenticate, presented_key, require_scope
from service.components import Components
from service.db.audit import record_audit
from service.tenancy import Principal

log = logging.getLogger("hct.api")


# async: FastAPI runs plain `def` dependencies on its thread pool, a thread hop per request.
async def get_state(request: Request) -> Components:
    return request.app.state.hct


async def get_principal(request: Request,
                        state: Annotated[Components, Depends(get_state)]) -> Principal:
    """The authenticated caller; a refused credential is audited before the 401/403."""
    try:
        return authenticate(request.headers, state.settings.key_entries)
    except Rejected as exc:
        await audit_rejection(state, request, exc)
        raise


def scoped(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, if its key holds `scope` (403 naming the scope if not)."""

    async def dependency(request: Request, state: Annotated[Components, Depends(get_state)],
                         principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        try:
            return require_scope(principal, scope, presented_key(request.headers))
        except Rejected as exc:
            await audit_rejection(state, request, exc)
            raise

    return dependency


async def audit_rejection(state: Components, request: Request, exc: Rejected) -> None:
    """One audit row per refused credential: key fingerprint, tenant if known, client."""
    detail = json.dumps({"status": exc.status, "code": exc.code,
                         "client": request.client.host if request.client else None})

    target = f"{request.method} {request.url.path}"[:128]

    def write() -> None:
        with state.engine.begin() as conn:
            record_audit(conn, principal=exc.fingerprint, tenant=exc.tenant, action="denied",
                         resource="request", resource_id=target, detail=detail)

    try:
        await run_in_threadpool(write)
    except Exception:  # an unreachable database must not turn a 401 into a 500
        log.warning("could not audit a refused credential (database unavailable)")


async def prediction_request(request: Request) -> PredictionRequest:
    """The JSON body parsed and validated in one pass by pydantic-core.

    FastAPI would `json.loads` the body into Python objects first, which for a sample of
    1,000s of cells costs several times more than validating the bytes directly.
    Errors keep FastAPI's shape (`loc` starts with "body"), so the 422 names the field.
    """
    try:
        return PredictionRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        errors: list[Any] = [{**e, "loc": ("body", *e["loc"])}
                             for e in exc.errors(include_url=False, include_input=False)]
        raise RequestValidationError(errors) from None


PREDICTION_REQUEST_OPENAPI = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": PredictionRequest.model_json_schema()}}}}


def get_connection(state: Annotated[Components, Depends(get_state)]) -> Iterator[Connection]:
    """A connection with an open transaction, committed when the route returns cleanly."""
    with state.engine.begin() as conn:
        yield conn


StateDep = Annotated[Components, Depends(get_state)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
PredictScope = Annotated[Principal, Depends(scoped("predict"))]
ReadScope = Annotated[Principal, Depends(scoped("read"))]
AdminScope = Annotated[Principal, Depends(scoped("admin"))]
PredictionBody = Annotated[PredictionRequest, Depends(prediction_request)]
# scope="function": commit before the response is sent, so a failed commit is a 503, never a
# 2xx for a transaction that was lost (FastAPI's default ends yield dependencies afterwards).
ConnectionDep = Annotated[Connection, Depends(get_connection, scope="function")]
