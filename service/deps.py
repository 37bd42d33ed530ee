"""FastAPI dependencies: the service state loaded at start-up, the caller's principal and a
database connection per request, as `Annotated` aliases routes declare.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection

from service.security import authenticate
from service.state import ServiceState


def get_state(request: Request) -> ServiceState:
    return request.app.state.hct


def get_principal(request: Request, state: Annotated[ServiceState, Depends(get_state)]) -> str:
    return authenticate(request, state.settings.api_keys)


def get_connection(state: Annotated[ServiceState, Depends(get_state)]) -> Iterator[Connection]:
    """A connection with an open transaction, committed when the route returns cleanly."""
    with state.engine.begin() as conn:
        yield conn


StateDep = Annotated[ServiceState, Depends(get_state)]
PrincipalDep = Annotated[str, Depends(get_principal)]
ConnectionDep = Annotated[Connection, Depends(get_connection)]
