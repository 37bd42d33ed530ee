"""Crafted bulk bodies against a real uvicorn process: Arrow offsets far past the body or
negative are a 400 and the process lives on (an unchecked read of them segfaults or aborts
it), and a JSON body of a hundred thousand empty samples is refused while `/healthz` keeps
answering (its parsing runs off the event loop, and stops counting at the limit).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from service.api.arrow_codec import ARROW_STREAM
from tests.reliability.bulk_bodies import MARK, patched_id_offset, patched_list_offset
from tests.reliability.server import Server, uvicorn_server

# Far above a healthy answer on a loaded two-core machine, far below the seconds an
# on-loop parse of the body stalls it.
HEALTHZ_CEILING_S = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("bulk_server")
    env = {"HCT_DATABASE_URL": f"sqlite:///{folder / 'hct.db'}",
           "HCT_UPLOAD_DIR": str(folder / "uploads"), "HCT_RUN_JOBS": "false"}
    with uvicorn_server(env, folder / "server.log") as running:
        yield running


@pytest.mark.parametrize("data", [
    patched_id_offset(2 ** 31 - 1), patched_id_offset(-8), patched_id_offset(len(MARK) + 4096),
    patched_list_offset(2 ** 31 - 1), patched_list_offset(-1),
], ids=["id_offset_2gb", "id_offset_negative", "id_offset_4kib", "list_offset_2g",
        "list_offset_negative"])
def test_arrow_offsets_outside_the_body_are_400_and_the_server_lives(server, data):
    r = httpx.post(f"{server.url}/v1/predictions/bulk", content=data,
                   headers={"Content-Type": ARROW_STREAM}, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_arrow"
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_healthz_answers_while_a_hundred_thousand_empty_samples_are_refused(server):
    body = json.dumps({"samples": [{}] * 100_000}).encode()
    latencies: list[float] = []
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while not done.is_set():
                started = time.monotonic()
                assert http.get("/healthz").status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        time.sleep(0.2)
        r = httpx.post(f"{server.url}/v1/predictions/bulk", content=body,
                       headers={"Content-Type": "application/json"}, timeout=60)
        time.sleep(0.2)
    finally:
        done.set()
        poller.join(30)
    assert r.status_code == 413, r.text[:500]
    assert r.json()["error"]["field"] == "body.samples"
    assert latencies and max(latencies) < HEALTHZ_CEILING_S, max(latencies)
