import asyncio

import numpy as np
import pytest

from service.batcher import MicroBatcher, QueueFullError


def _mean_volume(cells: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A real per-set function of padded input: mean volume over valid cells."""
    mask = np.arange(cells.shape[1])[None, :] < lengths[:, None]
    return (cells[..., 0] * mask).sum(axis=1) / lengths


def _sample(value: float, n: int) -> np.ndarray:
    return np.full((n, 2), value, dtype=np.float32)


def test_concurrent_requests_are_batched_and_answered_individually():
    sizes: list[int] = []

    def predict(cells, lengths):
        sizes.append(len(lengths))
        return _mean_volume(cells, lengths)

    async def main():
        batcher = MicroBatcher(predict, max_batch_size=8, max_delay_ms=50, max_queue=100)
        await batcher.start()
        try:
            values = [float(v) for v in range(60, 80)]
            got = await asyncio.gather(
                *(batcher.predict(_sample(v, 100 + i * 7)) for i, v in enumerate(values)))
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

        batcher = MicroBatcher(slow, max_batch_size=1, max_delay_ms=0, max_queue=2)
        await batcher.start()
        try:
            first = asyncio.create_task(batcher.predict(_sample(1, 10)))
            await asyncio.sleep(0.05)  # first is now inside the model call
            queued = [asyncio.create_task(batcher.predict(_sample(2, 10))) for _ in range(2)]
            await asyncio.sleep(0.01)
            with pytest.raises(QueueFullError, match="queue is full"):
                await batcher.predict(_sample(3, 10))
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
        batcher = MicroBatcher(flaky, max_batch_size=4, max_delay_ms=20, max_queue=10)
        await batcher.start()
        try:
            results = await asyncio.gather(*(batcher.predict(_sample(5, 10)) for _ in range(3)),
                                           return_exceptions=True)
            after = await batcher.predict(_sample(7, 10))
        finally:
            await batcher.stop()
        return results, after

    results, after = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in results)
    assert after == 7.0
