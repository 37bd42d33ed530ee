"""A real MLLP listener on loopback for delivery tests: a LIS stand-in that records what it
receives and answers each message as scripted (AA, AE, AR, drop the connection, or hold the
answer until released), building its ACKs with python-hl7.
"""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Iterable

import hl7

START, END = b"\x0b", b"\x1c\r"


class MllpListener:
    """Answers message n with `script[n]` (then `default`): "AA", "AE", "AR", "drop", "hold";
    a message whose control id or patient id (PID-3) is in `refuse` is answered AE every time
    (a poison message)."""

    def __init__(self, script: Iterable[str] = (), default: str = "AA",
                 refuse: Iterable[str] = ()) -> None:
        self.script = list(script)
        self.default = default
        self.refuse = set(refuse)
        self.received: list[str] = []  # ER7 of every message read, in order
        self.released = threading.Event()
        self._lock = threading.Lock()
        listener = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                buffer = b""
                while True:
                    while END not in buffer:
                        chunk = self.request.recv(65536)
                        if not chunk:
                            return
                        buffer += chunk
                    block, buffer = buffer.split(END, 1)
                    answer = listener._answer(block.split(START, 1)[1].decode())
                    if answer is None:
                        return  # drop: close without answering
                    self.request.sendall(START + answer.encode() + END)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _answer(self, er7: str) -> str | None:
        message = hl7.parse(er7)
        with self._lock:
            action = self.script[len(self.received)] if len(self.received) < len(
                self.script) else self.default
            ids = {str(message.segment("MSH")[10]), str(message.segment("PID")[3][0][0])}
            if ids & self.refuse:
                action = "AE"
            self.received.append(er7)
        if action == "drop":
            return None
        if action == "hold":
            assert self.released.wait(60)
            action = "AA"
        ack = message.create_ack(ack_code=action, application="LIS", facility="LAB")
        text = str(ack).rstrip("\r")
        if action != "AA":  # MSA-3 text message, escaped like any value
            text += "|" + hl7.util.escape(message, f"LIS says {action} | try later")
        return text + "\r"

    def control_ids(self) -> list[str]:
        return [str(hl7.parse(m).segment("MSH")[10]) for m in self.received]

    def wait_for(self, n: int, seconds: float = 15.0) -> None:
        deadline = time.monotonic() + seconds
        while len(self.received) < n:
            assert time.monotonic() < deadline, f"only {len(self.received)} of {n} received"
            time.sleep(0.02)

    def __enter__(self) -> MllpListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
