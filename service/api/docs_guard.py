"""The API's documentation (`/docs`, `/redoc`) and its schema (`/openapi.json`) behind the key
when keys are configured: they map every route an attacker could try.

A guard in front of the routes, whoever serves them (FastAPI's defaults or self-hosted pages),
so it holds whatever the docs routes become. A browser is asked for HTTP Basic credentials
(any user name, the API key as password), which it then sends with the schema request too.
These paths are the only ones that take Basic: `/v1` wants the key header (`security.py`).
"""

from __future__ import annotations

from starlette.requests import Request

from service.api.dependencies import audit_rejection
from service.api.errors import error_response
from service.api.middleware import ASGIApp, Receive, Scope, Send
from service.api.security import Rejected, authenticate

DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


def guarded_paths(app: object) -> set[str]:
    """The fixed documentation paths and wherever this app serves its docs and schema."""
    paths = set(DOCS_PATHS)
    for attribute in ("docs_url", "redoc_url", "openapi_url", "swagger_ui_oauth2_redirect_url"):
        url = getattr(app, attribute, None)
        if url:
            paths.add(url)
    return paths


class DocsGuardMiddleware:
    """401/403 on the docs and schema paths without a valid key (any scope); open when no
    keys are configured (development)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope.get("app")
        state = getattr(getattr(app, "state", None), "hct", None)
        if (scope["type"] != "http" or state is None or not state.settings.api_keys
                or scope["path"].rstrip("/") not in guarded_paths(app)):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            authenticate(request.headers, state.settings.key_entries, allow_basic=True)
        except Rejected as exc:
            await audit_rejection(state, request, exc)
            # Basic alone: Chromium answers no login prompt to `Basic realm="hct", Bearer`
            headers = {"WWW-Authenticate": 'Basic realm="hct", charset="UTF-8"'} \
                if exc.status == 401 else exc.headers
            response = error_response(exc.status, exc.code, exc.message, exc.field, headers)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
