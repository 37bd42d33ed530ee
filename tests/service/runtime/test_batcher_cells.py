"""The batcher's cell budget and group submission: a batch holds as many samples as its cells
allow, an overflowing sample heads the next batch, and a group is admitted whole."""

import asyncio

import numpy as np
import pytest

from ingestion.batching import pad_sets
from service.runtime.batcher import MicroBatcher, QueueFullError


def _mean_volume(items: list[np.ndarray]) -> np.ndarray:
    cells, lengths = pad_sets(items)
    mask = np.arange(cells.shape[1])[None, :] < lengths[:, None]
    return (cells[..., 0] * mask).sum(axis=1) / lengths


def test_batches_are_capped_by_total_cells_and_every_item_is_answered():
    batches: list[list[int]] = []

    def predict(items):
        batches.append([len(i) for i in items])
        return _mean_volume(items)

    async def main():
        batcher = MicroBatcher(predict, max_batch_size=64, max_delay_ms=50, max_queue=100,
                               cost=len, max_batch_cost=1000)
        await batcher.start()
        try:
            sizes = [400, 300, 200, 500, 600, 100, 900, 50]
            items = [np.full((n, 2), float(i), np.float32) for i, n in enumerate(sizes)]
            got = await batcher.submit_many(items)
        finally:
            await batcher.stop()
        return sizes, got

    sizes, got = asyncio.run(main())
    assert [float(v) for v in got] == [float(i) for i in range(len(sizes))]
    assert sorted(n for b in batches for n in b) == sorted(sizes)
    assert all(sum(b) <= 1000 for b in batches)
    assert batches[0] == [400, 300, 200]  # the 500 overflowed: it heads the next batch
    assert batches[1][0] == 500


def test_a_group_is_refused_whole_when_the_queue_is_full_and_fails_per_item():
    def predict(items):
        if any(len(i) == 13 for i in items):
            raise ValueError("bad batch")
        return _mean_volume(items)

    async def main():
        batcher = MicroBatcher(predict, max_batch_size=4, max_delay_ms=1, max_queue=1)
        await batcher.start()
        try:
            ok = await batcher.submit_many([np.ones((5, 2), np.float32)] * 3)
            batcher._queue.put_nowait(None)
            with pytest.raises(QueueFullError):
                await batcher.submit_many([np.ones((5, 2), np.float32)])
            batcher._queue.get_nowait()
            failed = await batcher.submit_many([np.ones((13, 2), np.float32)])
        finally:
            await batcher.stop()
        return ok, failed

    ok, failed = asyncio.run(main())
    assert [float(v) for v in ok] == [1.0, 1.0, 1.0]
    assert isinstance(failed[0], ValueError)
