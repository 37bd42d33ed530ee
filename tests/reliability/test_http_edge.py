"""The HTTP edge of `hct serve`, through a real process: an oversized request head is refused
and its connection closed, an unfinished head (slowloris) is closed within the header timeout,
and 50 connections pushing 10 MiB heads leave the server's memory where it was.
"""

from __future__ import annotations

import httpx
import pytest

from tests.reliability.edge import hct_serve, header_flood, oversized_header, slowloris
from tests.reliability.server import proc_status_kib

HEADER_TIMEOUT_S = 2.0
MAX_HEADER_BYTES = 16 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edge")
    env = {"HCT_DATABASE_URL": f"sqlite:///{folder / 'hct.db'}",
           "HCT_UPLOAD_DIR": str(folder / "uploads"), "HCT_RUN_JOBS": "false",
           "HCT_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
           "HCT_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES)}
    with hct_serve(env, folder / "server.log") as running:
        yield running


def test_oversized_header_is_refused_and_the_connection_closed(server):
    status, closed = oversized_header(server.url, 2 * MAX_HEADER_BYTES)
    assert status.split(b" ")[1] in (b"400", b"431"), status
    assert closed
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_header_within_the_limit_is_served(server):
    r = httpx.get(f"{server.url}/healthz", headers={"X-Fine": "a" * (MAX_HEADER_BYTES // 2)})
    assert r.status_code == 200


def test_unfinished_headers_are_closed_within_the_header_timeout(server):
    closed_after = slowloris(server.url, 50, give_up_s=HEADER_TIMEOUT_S + 8)
    assert None not in closed_after, f"{closed_after.count(None)} of 50 still open"
    assert max(closed_after) < HEADER_TIMEOUT_S + 2, max(closed_after)
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_fifty_ten_mib_heads_leave_memory_bounded(server):
    before = proc_status_kib(server.pid, "VmRSS")
    peak_before = proc_status_kib(server.pid, "VmHWM")
    cut_off = header_flood(server.url, 50, 10 << 20)
    assert cut_off == 50
    rss_growth = (proc_status_kib(server.pid, "VmRSS") - before) / 1024
    peak_growth = (proc_status_kib(server.pid, "VmHWM") - peak_before) / 1024
    assert rss_growth < 32 and peak_growth < 64, (rss_growth, peak_growth)
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_kept_alive_connection_serves_requests_with_large_bodies(server):
    from tests.reliability.faults import prediction_body

    with httpx.Client(base_url=server.url, timeout=30) as http:
        for i in range(3):  # one connection; each body is far larger than the head limit
            r = http.post("/v1/predictions", json=prediction_body(i))
            assert r.status_code == 201, r.text
        assert http.get("/healthz").status_code == 200


def test_each_head_on_a_kept_alive_connection_is_measured_on_its_own(server):
    # Forty heads of 1 KiB pass the 16 KiB limit together, never one alone: every one is
    # served, including pipelined pairs sent in one write.
    from tests.reliability.edge import _connect

    head = (b"GET /healthz HTTP/1.1\r\nHost: hct\r\nX-Pad: " + b"a" * 1024 + b"\r\n\r\n")
    with _connect(server.url) as sock:
        answered = 0
        for _ in range(20):
            sock.sendall(head + head)  # two requests in one write
            answer = b""
            while answer.count(b"HTTP/1.1 200") < 2:
                chunk = sock.recv(65536)
                assert chunk, "connection closed"
                answer += chunk
            answered += 2
    assert answered == 40
