"""FastAPI dependencies: the components loaded at start-up, the caller's principal and a
database connection per request, as `Annotated` aliases routes declare.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import Connection

from service.api.schemas import PredictionRequest
from service.api.security import authenticate
from service.components import Components


# async: FastAPI runs plain `def` dependencies on its thread pool, a thread hop per request.
async def get_state(request: Request) -> Components:
    return request.app.state.hct


async def get_principal(request: Request,
                        state: Annotated[Components, Depends(get_state)]) -> str:
    return authenticate(request, state.settings.api_keys)


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
PrincipalDep = Annotated[str, Depends(get_principal)]
PredictionBody = Annotated[PredictionRequest, Depends(prediction_request)]
# scope="function": commit before the response is sent, so a failed commit is a 503, never a
# 2xx for a transaction that was lost (FastAPI's default ends yield dependencies afterwards).
ConnectionDep = Annotated[Connection, Depends(get_connection, scope="function")]
