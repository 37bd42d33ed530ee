"""Limits at the HTTP edge that uvicorn does not apply.

uvicorn's default parser (httptools) buffers a request head of any size, and no parser has a
header-read timeout: a client trickling an unfinished head holds its connection and memory for
ever (slowloris). `hct serve` therefore runs this httptools protocol, which answers 431 and
closes as soon as a request head passes `HCT_MAX_HEADER_BYTES` (counted before the parser sees
the bytes, so memory stays bounded whatever the head claims), and closes a connection whose
head is not complete within `HCT_HEADER_TIMEOUT_S` of its first byte (or of the connection
opening). Reading the body slowly is bounded by the reverse proxy (`client_body_timeout` in
deploy/nginx.conf).

httptools rather than uvicorn's h11 parser: h11 is pure Python and, measured with the load
bench's `healthz` mode, about doubles the server's own CPU per request.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.settings import Settings, get_settings

PROTOCOL = "service.api.http_limits:HeadLimitedHttpToolsProtocol"


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a size limit and a deadline for each request head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.header_timeout = settings.header_timeout_s
        self.max_head = settings.max_header_bytes
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_head = True  # reading a request head (the parser has not completed it yet)
        self._head_bytes = 0  # bytes of the current request head seen so far
        self._head_tail = b""  # its last 3 bytes: the blank line may straddle two reads

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            if self._header_timer is None:
                self._arm()  # the first byte of the next request on a kept-alive connection
            end = (self._head_tail + data).find(b"\r\n\r\n")
            more = len(data) if end < 0 else end + 4 - len(self._head_tail)
            if self._head_bytes + more > self.max_head:
                self._refuse_head()
                return
            self._head_bytes += len(data)
            self._head_tail = (self._head_tail + data)[-3:]
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        self._head_bytes, self._head_tail = 0, b""
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True  # whatever comes next on this connection starts a new head
        super().on_message_complete()

    def _refuse_head(self) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        body = f"request head exceeds {self.max_head} bytes".encode()
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                             b"content-type: text/plain; charset=utf-8\r\n"
                             b"connection: close\r\n"
                             b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self._in_head and not self.transport.is_closing():
            self.logger.warning("request head not received within %.0f s; connection closed",
                                self.header_timeout)
            self.transport.close()


def uvicorn_limits(settings: Settings) -> dict[str, Any]:
    """The keyword arguments `hct serve` passes to `uvicorn.run`."""
    return {"http": PROTOCOL, "timeout_keep_alive": settings.keep_alive_timeout_s}
