"""Overload over real HTTP: a full prediction queue is a 503 with Retry-After, immediately,
and the requests already accepted are still answered and stored exactly once.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.service.conftest import HeldModel, metric_value, prediction_body


def _rejected(client: TestClient) -> float:
    """hct_queue_rejected_total (process-wide: other tests in this process count too)."""
    text = client.get("/metrics").text
    assert "\nhct_queue_rejected_total " in text, "hct_queue_rejected_total missing from /metrics"
    return metric_value(text, "hct_queue_rejected_total")


def test_full_queue_is_503_with_retry_after_and_accepted_requests_still_land(
        settings: Settings):
    settings = settings.model_copy(update={"max_batch_size": 1, "max_queue_size": 1,
                                           "model_workers": 1,  # one call: A holds the model
                                           "max_queue_delay_ms": 0.0})
    app = create_app(settings)
    with TestClient(app) as client:
        held = HeldModel(app)
        with ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(client.post, "/v1/predictions", json=prediction_body("P-A"))
            assert held.inside.wait(10)  # A occupies the model
            second = pool.submit(client.post, "/v1/predictions", json=prediction_body("P-B"))
            held.wait_until_queued(1)  # B waits in the (now full) queue

            rejected_before = _rejected(client)
            started = time.monotonic()
            refused = client.post("/v1/predictions", json=prediction_body("P-C"))
            assert time.monotonic() - started < 5  # refused at once, not after a wait
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] == "1"
            error = refused.json()["error"]
            assert error["code"] == "overloaded" and "queue is full" in error["message"]

            held.release()
            assert first.result(30).status_code == 201
            assert second.result(30).status_code == 201

        stored = client.get("/v1/predictions").json()
        assert sorted(p["patient_id"] for p in stored["items"]) == ["P-A", "P-B"]
        assert _rejected(client) == rejected_before + 1
