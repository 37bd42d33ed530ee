"""HTTP-edge abuse against a real `hct serve` process (shared by the tests and
`bench/reliability.py`): an oversized request head, slowloris heads trickled byte by byte, and
many connections pushing 10 MiB heads at once.
"""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.reliability.server import REPO, Server, free_port

HEAD = b"GET /healthz HTTP/1.1\r\nHost: hct\r\n"


@contextmanager
def hct_serve(env: dict[str, str], log: Path, *, start_timeout: float = 60.0
              ) -> Iterator[Server]:
    """`hct serve` (the CLI, so its uvicorn options are the ones tested) on a free port."""
    port = free_port()
    full_env = {**os.environ, "HCT_ENVIRONMENT": "test", "HCT_EXECUTION_PROVIDER": "cpu",
                "HCT_MODEL_DIR": str(REPO / "models" / "default"), "HCT_LOG_LEVEL": "warning",
                "HCT_HOST": "127.0.0.1", "HCT_PORT": str(port), "HCT_WORKERS": "1",
                "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                **env}
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve"], cwd=REPO,
                            env=full_env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"hct serve exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"hct serve did not answer: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield Server(url, proc.pid, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def oversized_header(url: str, size: int) -> tuple[bytes, bool]:
    """Send a head with one `size`-byte header; the status line answered and whether the
    server closed the connection afterwards.
    """
    with _connect(url) as sock:
        try:
            sock.sendall(HEAD + b"X-Big: " + b"a" * size + b"\r\n\r\n")
        except OSError:
            pass  # closed while we were still sending: read what it answered
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
            closed = True
        except TimeoutError:
            closed = False
        except OSError:
            closed = True
    return answer.split(b"\r\n", 1)[0], closed


def slowloris(url: str, connections: int, give_up_s: float, *, line_every_s: float = 0.5
              ) -> list[float | None]:
    """Open `connections` sockets that each send an unfinished head and one more header line
    every `line_every_s`; seconds until the server closed each (None: still open at
    `give_up_s`).
    """
    start = time.monotonic()
    socks = [_connect(url) for _ in range(connections)]
    closed: dict[int, float] = {}
    selector = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        s.sendall(HEAD)
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ, i)
    next_line = start + line_every_s
    try:
        while len(closed) < connections and time.monotonic() - start < give_up_s:
            for key, _ in selector.select(timeout=0.05):
                i = key.data
                try:
                    data = key.fileobj.recv(4096)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                if not data:
                    closed[i] = time.monotonic() - start
                    selector.unregister(key.fileobj)
            if time.monotonic() >= next_line:
                next_line += line_every_s
                for i, s in enumerate(socks):
                    if i not in closed:
                        try:
                            s.send(b"X-Slow: 1\r\n")
                        except OSError:
                            closed[i] = time.monotonic() - start
                            selector.unregister(s)
    finally:
        selector.close()
        for s in socks:
            s.close()
    return [closed.get(i) for i in range(connections)]


def header_flood(url: str, connections: int, size: int, *, piece: int = 1 << 16) -> int:
    """`connections` clients at once each pushing an unfinished head of up to `size` bytes;
    how many the server cut off before `size` was sent.
    """
    def push(_: int) -> bool:
        with _connect(url) as sock:
            sock.sendall(HEAD + b"X-Big: ")
            sent = 0
            block = b"a" * piece
            try:
                while sent < size:
                    sock.sendall(block)
                    sent += piece
            except OSError:
                return True
            return False

    with ThreadPoolExecutor(connections) as pool:
        return sum(pool.map(push, range(connections)))
