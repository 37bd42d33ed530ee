"""ASGI middleware: request-size limits (413 before a body is buffered) and per-route metrics.

Both are plain ASGI (no BaseHTTPMiddleware) so streaming uploads stay streaming. Logs carry the
route template and status only: never cell data or patient ids.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from service import metrics
from service.api.content_policy import CSP_HEADER, PAGE_POLICY

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("hct.access")


class _TooLarge(Exception):
    pass


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps({"error": {"code": "payload_too_large", "field": "body",
                                 "message": f"request body exceeds {limit} bytes"}}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuse bodies over the limit: uploads (`/v1/batches`) get the larger upload limit."""

    def __init__(self, app: ASGIApp, *, max_body: int, max_upload: int,
                 upload_prefix: str = "/v1/batches") -> None:
        self.app, self.max_body, self.max_upload = app, max_body, max_upload
        self.upload_prefix = upload_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = (self.max_upload if scope["path"].startswith(self.upload_prefix)
                 else self.max_body)
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_413(send, limit)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _send_413(send, limit)


class MetricsMiddleware:
    """Count and time requests by route template (not raw path: ids would explode labels)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - start
            method = scope.get("method", "?")
            metrics.HTTP_REQUESTS.labels(template, method, str(status)).inc()
            metrics.HTTP_LATENCY.labels(template, method).observe(elapsed)
            log.info("%s %s %d %.1fms", method, template, status, elapsed * 1000)


class SecurityHeadersMiddleware:
    """On every response: `nosniff`, `Referrer-Policy: no-referrer` (URLs carry patient and
    job ids), and the strict Content-Security-Policy unless the route set its own (the docs
    pages); `no-store` on the API's (they carry patient data), so no browser or shared cache
    keeps a copy."""

    def __init__(self, app: ASGIApp, *, no_store_prefix: str = "/v1/") -> None:
        self.app, self.no_store_prefix = app, no_store_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = scope["path"].startswith(self.no_store_prefix)

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                replaced = {b"x-content-type-options", b"referrer-policy", b"x-frame-options"}
                if no_store:
                    replaced.add(b"cache-control")
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in replaced]
                if not any(k.lower() == CSP_HEADER.encode() for k, _ in headers):
                    headers.append((CSP_HEADER.encode(), PAGE_POLICY.encode()))
                headers += [(b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]
                if no_store:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, add_headers)
