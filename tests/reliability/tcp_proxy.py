"""An in-test TCP proxy between the service and its database that can misbehave on demand.

Modes for new connections: `pass` (forward), `refuse` (accept, then close at once: the
database went away) and `hang` (accept and read, never answer: a hung database). `silent` is
`hang` for new connections and, on the connections already open, drops every byte both ways
without closing anything: a database that stops answering while its host still acknowledges
packets, so neither keepalives nor a RST tell the client. `cut()` closes every live connection,
as a database restart or a network cut does mid-query. `on_query(needle, ...)` arms a one-shot
fault on the first client message holding `needle` (b"COMMIT"): go silent or cut, before or
after that message reached the server, for commits whose outcome the client cannot know.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from typing import Literal

Mode = Literal["pass", "refuse", "hang", "silent"]


@dataclass(frozen=True)
class Trigger:
    needle: bytes
    action: Literal["silence", "cut"]
    delivered: bool  # whether the message holding the needle reaches the server first
    after: bytes = b""  # only on a connection that sent this first (b"INSERT INTO predictions")


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._live: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._trigger: Trigger | None = None
        self.fired = threading.Event()  # the armed trigger went off
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def cut(self) -> int:
        """Close every live connection (both sides); returns how many sockets were closed."""
        with self._lock:
            live, self._live = self._live, set()
        for s in live:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        return len(live)

    def on_query(self, needle: bytes, action: Literal["silence", "cut"], *,
                 delivered: bool, after: bytes = b"") -> None:
        """Arm a one-shot fault on the next client message holding `needle` (on a connection
        that sent `after` before): the proxy goes silent (or, 0.3 s later so the server has
        acted on the message, cuts every connection)."""
        self.fired.clear()
        self._trigger = Trigger(needle, action, delivered, after)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _track(self, s: socket.socket) -> None:
        with self._lock:
            self._live.add(s)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            mode = self.mode
            if mode == "silent":
                mode = "hang"
            if mode == "refuse":
                client.close()
                continue
            self._track(client)
            if mode == "hang":
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self._track(upstream)
            for a, b, to_server in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(a, b, to_server), daemon=True).start()

    @staticmethod
    def _swallow(s: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while s.recv(65536):
                pass

    def _fire(self, trigger: Trigger, data: bytes, dst: socket.socket) -> None:
        self._trigger = None
        if trigger.delivered:
            dst.sendall(data)
        self.mode = "silent"
        if trigger.action == "cut":
            time.sleep(0.3)  # the server has read and acted on the message by now
            self.cut()
        self.fired.set()

    def _pump(self, src: socket.socket, dst: socket.socket, to_server: bool) -> None:
        primed = False  # this connection sent the trigger's `after`
        try:
            while data := src.recv(65536):
                trigger = self._trigger
                if to_server and trigger is not None:
                    if trigger.needle in data and (primed or not trigger.after):
                        self._fire(trigger, data, dst)
                        continue
                    primed = primed or (bool(trigger.after) and trigger.after in data)
                if self.mode == "silent":
                    continue  # swallowed: the peer never hears of it
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
