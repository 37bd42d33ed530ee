"""One transaction per micro-batch: a duplicate Idempotency-Key inside a batch must not fail
its neighbours, and a retry that races its original is answered with the original's result.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.service.conftest import HeldModel, prediction_body


def test_racing_retries_in_one_batch_store_once_and_neighbours_land(settings: Settings):
    settings = settings.model_copy(update={"max_batch_size": 8, "max_queue_delay_ms": 50.0,
                                           "model_workers": 1})  # one call: P-0 holds it
    app = create_app(settings)
    body = prediction_body("P-RETRY", seed=1)
    same_key = {"Idempotency-Key": "retry-1"}
    with TestClient(app) as client:
        held = HeldModel(app)
        with ThreadPoolExecutor(max_workers=5) as pool:
            blocker = pool.submit(client.post, "/v1/predictions", json=prediction_body("P-0"))
            assert held.inside.wait(10)
            # Neither retry finds the key yet (nothing is stored while the model is held), so
            # both are queued; they and two neighbours form the next batch.
            requests = [(body, same_key), (body, same_key),
                        (prediction_body("P-OTHER", seed=2), same_key),
                        (prediction_body("P-NEIGHBOUR", seed=3), {})]
            futures = []
            for k, (json_body, headers) in enumerate(requests, start=1):
                futures.append(pool.submit(client.post, "/v1/predictions", json=json_body,
                                           headers=headers))
                held.wait_until_queued(k)  # queue order = this order
            original, retry, reused, neighbour = futures
            held.release()
            answers = [f.result(30) for f in (blocker, original, retry, reused, neighbour)]

        assert held.batch_sizes == [1, 4]  # the four queued requests shared one batch
        blocker_r, first, second, reused_r, neighbour_r = answers
        assert blocker_r.status_code == 201 and neighbour_r.status_code == 201
        # The first of the same-key requests created the prediction, its retry got it back.
        assert (first.status_code, second.status_code) == (201, 200)
        assert first.json()["id"] == second.json()["id"]
        assert second.headers["Idempotent-Replayed"] == "true"
        # The same key with a different body is a conflict.
        assert reused_r.status_code == 409, reused_r.text
        assert reused_r.json()["error"]["field"] == "header.idempotency-key"

        stored = client.get("/v1/predictions").json()
        assert sorted(p["patient_id"] for p in stored["items"]) == [
            "P-0", "P-NEIGHBOUR", "P-RETRY"]
