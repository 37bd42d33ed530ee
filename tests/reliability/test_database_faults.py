"""A database that refuses, hangs or is cut mid-query answers 503 `database_unavailable` with
Retry-After within seconds, never 500; liveness and metrics keep answering while 60 requests
wait on a hung database; rows stored equal the 201s answered. PostgreSQL only (through an
in-test TCP proxy); skipped unless HCT_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.reliability.faults import prediction_body, service_behind_proxy

BASE = os.environ.get("HCT_TEST_DATABASE_URL", "")
pytestmark = pytest.mark.skipif(not BASE.startswith("postgresql"),
                                reason="needs PostgreSQL (HCT_TEST_DATABASE_URL)")


@pytest.fixture
def faulty(tmp_path):
    with service_behind_proxy(BASE, tmp_path) as running:
        yield running


def _get(http: httpx.Client, path: str) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    r = http.get(path)
    return r, time.monotonic() - start


def test_refused_database_answers_503_with_retry_after_then_recovers(faulty):
    server, proxy, _, _ = faulty
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/v1/predictions?limit=1").status_code == 200
        proxy.mode = "refuse"
        proxy.cut()
        r, seconds = _get(http, "/v1/predictions?limit=1")
        assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable"
        assert r.headers["Retry-After"] and seconds < 5
        proxy.mode = "pass"
        assert http.get("/v1/predictions?limit=1").status_code == 200


def test_hung_database_gives_503_within_seconds_and_healthz_still_answers(faulty):
    server, proxy, _, _ = faulty
    with httpx.Client(base_url=server.url, timeout=60) as http:
        assert http.get("/v1/predictions?limit=1").status_code == 200
        proxy.mode = "hang"
        proxy.cut()
        with ThreadPoolExecutor(60) as pool:
            hung = [pool.submit(_get, http, "/v1/predictions?limit=1") for _ in range(60)]
            time.sleep(0.5)  # every worker thread is now waiting on the database
            for path in ("/healthz", "/metrics"):
                r, seconds = _get(http, path)
                assert r.status_code == 200 and seconds < 1.0, (path, seconds)
            r, seconds = _get(http, "/readyz")
            assert r.status_code == 503 and seconds < 4, seconds
            results = [f.result() for f in hung]
        statuses = {r.status_code for r, _ in results}
        assert statuses == {503}, statuses
        assert all(r.json()["error"]["code"] == "database_unavailable" for r, _ in results)
        assert all("Retry-After" in r.headers for r, _ in results)
        assert max(s for _, s in results) < 20
        proxy.mode = "pass"
        deadline = time.monotonic() + 10
        while http.get("/v1/predictions?limit=1").status_code != 200:
            assert time.monotonic() < deadline, "did not recover"
            time.sleep(0.2)


def test_cuts_mid_write_lose_no_acknowledged_row(faulty):
    server, proxy, direct, _ = faulty
    stop = threading.Event()

    def cutter() -> None:
        while not stop.is_set():
            time.sleep(0.05)
            proxy.cut()

    answered: dict[str, int] = {}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        thread = threading.Thread(target=cutter)
        thread.start()
        try:
            def post(i: int) -> None:
                r = http.post("/v1/predictions", json=prediction_body(i))
                answered[f"P-{i}"] = r.status_code

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(post, range(80)))
        finally:
            stop.set()
            thread.join()
    assert set(answered.values()) <= {201, 503}, answered
    engine = create_engine(direct)
    with engine.connect() as conn:
        stored = [r[0] for r in conn.execute(text("SELECT patient_id FROM predictions"))]
    engine.dispose()
    acknowledged = {p for p, s in answered.items() if s == 201}
    assert len(stored) == len(set(stored)), "a row was stored twice"
    assert acknowledged <= set(stored), f"lost: {acknowledged - set(stored)}"
