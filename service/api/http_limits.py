"""Limits at the HTTP edge that uvicorn applies only in part.

uvicorn bounds the size of a request head only with its h11 parser, and only while the head is
incomplete (`h11_max_incomplete_event_size`; a whole head arriving in one read passes, and the
default httptools parser buffers any header); it has no header-read timeout at all: a client
trickling an unfinished header holds its connection and memory for ever (slowloris).
`hct serve` therefore runs this h11 protocol, which answers 431 and closes as soon as a request
head passes `HCT_MAX_HEADER_BYTES`, and closes a connection whose head is not complete within
`HCT_HEADER_TIMEOUT_S` of its first byte (or of the connection opening). Reading the body
slowly is bounded by the reverse proxy (`client_body_timeout` in deploy/nginx.conf).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from service.settings import Settings, get_settings

PROTOCOL = "service.api.http_limits:HeaderTimeoutH11Protocol"


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a size limit and a deadline for each request head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.header_timeout = settings.header_timeout_s
        self.max_head = settings.max_header_bytes
        self._header_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # bytes of the current request head seen so far
        self._head_tail = b""  # its last 3 bytes: the blank line may straddle two reads

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:  # still reading a request head
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
        if self.conn.their_state is not h11.IDLE:  # the head is complete (or refused)
            self._disarm()
            self._head_bytes, self._head_tail = 0, b""

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
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.warning("request head not received within %.0f s; connection closed",
                                self.header_timeout)
            self.transport.close()


def uvicorn_limits(settings: Settings) -> dict[str, Any]:
    """The keyword arguments `hct serve` passes to `uvicorn.run`."""
    return {"http": PROTOCOL, "h11_max_incomplete_event_size": settings.max_header_bytes,
            "timeout_keep_alive": settings.keep_alive_timeout_s}
