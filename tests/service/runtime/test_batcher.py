import asyncio
import threading
import time

import numpy as np
import pytest

from ingestion.batching import pad_sets
from service.runtime.batcher import MicroBatcher, QueueFullError


def _mean_volume(cells: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A real per-set function of padded input: mean volume over valid cells."""
    mask = np.arange(cells.shape[1])[None, :] < lengths[:, None]
    return (cells[..., 0] * mask).sum(axis=1) / lengths


def _sample(value: float, n: int) -> np.ndarray:
    return np.full((n, 2), value, dtype=np.float32)


def _padded(fn):
    """A batch function over items of cells `[n, 2]`: pads them, as the Predictor does."""
    return lambda items: fn(*pad_sets(items))


def _payload_then(finish):
    """A `then` over `(cells, payload)` items: the old (payloads, values) finishing function."""
    return lambda items, values: finish([payload for _, payload in items], values)


def _with_payloads(fn):
    """A batch function over `(cells, payload)` items."""
    return lambda items: fn(*pad_sets([cells for cells, _ in items]))


def test_concurrent_requests_are_batched_and_answered_individually():
    sizes: list[int] = []

    def predict(cells, lengths):
        sizes.append(len(lengths))
        return _mean_volume(cells, lengths)

    async def main():
        batcher = MicroBatcher(_padded(predict), max_batch_size=8, max_delay_ms=50, max_queue=100)
        await batcher.start()
        try:
            values = [float(v) for v in range(60, 80)]
            got = await asyncio.gather(
                *(batcher.submit(_sample(v, 100 + i * 7)) for i, v in enumerate(values)))
        finally:
            await batcher.stop()
        return values, got

    values, got = asyncio.run(main())
    assert got == pytest.approx(values)  # padding to different lengths changed nothing
    assert max(sizes) == 8 and sum(sizes) == 20 and len(sizes) < 20


def test_full_queue_refuses_instead_of_growing():
    release = asyncio.Event()

    async def main():
        loop = asyncio.get_running_loop()

        def slow(cells, lengths):
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result()
            return _mean_volume(cells, lengths)

        batcher = MicroBatcher(_padded(slow), max_batch_size=1, max_delay_ms=0, max_queue=2)
        await batcher.start()
        try:
            first = asyncio.create_task(batcher.submit(_sample(1, 10)))
            await asyncio.sleep(0.05)  # first is now inside the model call
            queued = [asyncio.create_task(batcher.submit(_sample(2, 10))) for _ in range(2)]
            await asyncio.sleep(0.01)
            with pytest.raises(QueueFullError, match="queue is full"):
                await batcher.submit(_sample(3, 10))
            release.set()
            return await asyncio.gather(first, *queued)
        finally:
            await batcher.stop()

    assert asyncio.run(main()) == [1.0, 2.0, 2.0]


def test_model_failure_reaches_every_waiter_and_batcher_survives():
    calls = {"n": 0}

    def flaky(cells, lengths):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("session failed")
        return _mean_volume(cells, lengths)

    async def main():
        batcher = MicroBatcher(_padded(flaky), max_batch_size=4, max_delay_ms=20, max_queue=10)
        await batcher.start()
        try:
            results = await asyncio.gather(*(batcher.submit(_sample(5, 10)) for _ in range(3)),
                                           return_exceptions=True)
            after = await batcher.submit(_sample(7, 10))
        finally:
            await batcher.stop()
        return results, after

    results, after = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in results)
    assert after == 7.0


def test_finish_stage_answers_each_payload_and_fails_only_its_own():
    """The store stage gets the batch's payloads and predictions; an Exception result fails
    that one request only."""
    def finish(payloads, values):
        return [ValueError(f"bad {p}") if p == "bad" else (p, float(v))
                for p, v in zip(payloads, values, strict=True)]

    async def main():
        batcher = MicroBatcher(_with_payloads(_mean_volume), max_batch_size=8, max_delay_ms=50,
                               max_queue=100,
                               then=_payload_then(finish))
        await batcher.start()
        try:
            return await asyncio.gather(
                batcher.submit((_sample(60, 20), "a")), batcher.submit((_sample(70, 30), "bad")),
                batcher.submit((_sample(80, 40), "c")), return_exceptions=True)
        finally:
            await batcher.stop()

    a, bad, c = asyncio.run(main())
    assert a == ("a", 60.0) and c == ("c", 80.0)
    assert isinstance(bad, ValueError) and str(bad) == "bad bad"


def test_model_workers_run_batches_concurrently():
    """With workers=2 a second batch enters the model while the first is still in it."""
    inside = {"now": 0, "most": 0}
    lock = threading.Lock()
    both_in = threading.Barrier(2, timeout=10)

    def predict(cells, lengths):
        with lock:
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])
        both_in.wait()  # deadlocks (times out) unless two calls run at the same time
        with lock:
            inside["now"] -= 1
        return _mean_volume(cells, lengths)

    async def main():
        batcher = MicroBatcher(_padded(predict), max_batch_size=1, max_delay_ms=0, max_queue=10,
                               workers=2)
        await batcher.start()
        try:
            return await asyncio.gather(batcher.submit(_sample(1, 10)),
                                        batcher.submit(_sample(2, 10)))
        finally:
            await batcher.stop()

    assert asyncio.run(main()) == [1.0, 2.0]
    assert inside["most"] == 2


def test_stop_lets_batches_past_the_model_finish():
    """Shutdown must not drop a batch that is being stored (its clients get their answer)."""
    stored: list[str] = []

    def slow_finish(payloads, values):
        time.sleep(0.2)
        stored.extend(payloads)
        return list(payloads)

    async def main():
        batcher = MicroBatcher(_with_payloads(_mean_volume), max_batch_size=4, max_delay_ms=5,
                               max_queue=10,
                               then=_payload_then(slow_finish))
        await batcher.start()
        pending = [asyncio.create_task(batcher.submit((_sample(5, 10), f"p{i}"))) for i in range(3)]
        await asyncio.sleep(0.1)  # the batch is now in the store stage
        await batcher.stop()
        return await asyncio.gather(*pending)

    assert asyncio.run(main()) == ["p0", "p1", "p2"]
    assert stored == ["p0", "p1", "p2"]


def test_a_burst_is_shared_between_free_model_workers():
    """Eight requests waiting while two workers are free: two batches of four, side by side
    (not one batch of eight on one worker while the other idles)."""
    sizes: list[int] = []
    both_in = threading.Barrier(2, timeout=10)

    def predict(cells, lengths):
        sizes.append(len(lengths))
        both_in.wait()  # times out unless the two batches run at the same time
        return _mean_volume(cells, lengths)

    async def main():
        batcher = MicroBatcher(_padded(predict), max_batch_size=32, max_delay_ms=20, max_queue=100,
                               workers=2)
        await batcher.start()
        try:
            # All eight are queued before the batcher task first runs (no await in between).
            return await asyncio.gather(*(batcher.submit(_sample(float(v), 10))
                                          for v in range(8)))
        finally:
            await batcher.stop()

    assert asyncio.run(main()) == [float(v) for v in range(8)]
    assert sorted(sizes) == [4, 4]


def test_stop_answers_requests_caught_mid_gather():
    """Requests taken off the queue by a gather that is still waiting for more must get an
    answer at shutdown (503 upstream), not hang."""
    async def main():
        batcher = MicroBatcher(_padded(_mean_volume), max_batch_size=8, max_delay_ms=10_000,
                               max_queue=10)
        await batcher.start()
        pending = [asyncio.create_task(batcher.submit(_sample(5, 10))) for _ in range(2)]
        await asyncio.sleep(0.05)  # both are in the gathering batch, which waits for 6 more
        assert batcher.depth == 0
        await batcher.stop()
        return await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 5)

    results = asyncio.run(main())
    assert all(isinstance(r, QueueFullError) and "shutting down" in str(r) for r in results)
