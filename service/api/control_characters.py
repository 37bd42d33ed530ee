"""Refuse control characters in the URL path and query string with 422, for every route.

One check before routing, so no path id or query parameter carrying NUL or an escape sequence
reaches a repository (PostgreSQL refuses NUL in text with an error), an audit row or a log
line. Bodies and forms are checked by the `Identifier` type in `schemas.py`. The answer names
the place (`path`, `query.<name>`) but never echoes the value: it may be a patient id.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from service.api.middleware import ASGIApp, Receive, Scope, Send
from service.api.schemas import CONTROL_CHARACTERS

_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def offending_field(path: str, query_string: bytes) -> str | None:
    """`path`, `query.<name>` (or `query`) when a control character is present, else None."""
    if _CONTROL.search(path):
        return "path"
    if not query_string:
        return None
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True,
                                 encoding="utf-8", errors="replace"):
        if _CONTROL.search(name) or _CONTROL.search(value):
            return f"query.{name}" if _NAME.fullmatch(name) else "query"
    return None


class ControlCharacterMiddleware:
    """422 `control_character` for a path or query string holding a control character."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            field = offending_field(scope.get("path", ""), scope.get("query_string", b""))
            if field is not None:
                await _send_422(send, field)
                return
        await self.app(scope, receive, send)


async def _send_422(send: Send, field: str) -> None:
    place = "the URL path" if field == "path" else f"query parameter {field[6:] or '?'}"
    body = json.dumps({"error": {
        "code": "control_character", "field": field,
        "message": f"{place} contains a control character (U+0000-U+001F, U+007F-U+009F); "
                   "ids and parameters must be printable text"}}).encode()
    await send({"type": "http.response.start", "status": 422,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
