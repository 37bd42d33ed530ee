"""Dynamic micro-batching: concurrent requests are gathered into one padded model call.

Gathering waits for `max_batch_size` samples or `max_queue_delay_ms` after the first, whichever
comes first; the call runs in a worker thread (onnxruntime releases the GIL) so the event loop
keeps accepting requests. The queue is bounded: a full queue is an immediate refusal (503 with
Retry-After upstream), never unbounded memory or latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ingestion.batching import pad_sets
from service import metrics

PredictFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # cells [B,S,2], lengths [B] -> [B]


class QueueFullError(RuntimeError):
    """The batcher's queue is at capacity; the caller should retry later."""


@dataclass
class _Pending:
    cells: np.ndarray  # [n, 2]
    future: asyncio.Future[float]
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Collects single-sample requests into batches for one `predict_fn`."""

    def __init__(self, predict_fn: PredictFn, *, max_batch_size: int, max_delay_ms: float,
                 max_queue: int) -> None:
        self.predict_fn = predict_fn
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_ms / 1000.0
        self.max_queue = max_queue
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hct-infer")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop(), name="hct-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue is not None:
            while not self._queue.empty():
                pending = self._queue.get_nowait()
                if not pending.future.done():
                    pending.future.set_exception(QueueFullError("service is shutting down"))
        self._executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    async def predict(self, cells: np.ndarray) -> float:
        """Hematocrit % for one sample's (already subsampled) cells `[n, 2]`."""
        if self._queue is None:
            raise RuntimeError("batcher not started")
        if self._queue.qsize() >= self.max_queue:
            metrics.QUEUE_REJECTED.inc()
            raise QueueFullError(f"prediction queue is full ({self.max_queue} waiting)")
        pending = _Pending(cells, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(pending)
        metrics.QUEUE_DEPTH.set(self._queue.qsize())
        return await pending.future

    async def _gather(self) -> list[_Pending]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        deadline = time.perf_counter() + self.max_delay_s
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            try:
                if remaining <= 0:
                    batch.append(self._queue.get_nowait())
                else:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except (TimeoutError, asyncio.QueueEmpty):
                break
        metrics.QUEUE_DEPTH.set(self._queue.qsize())
        return [p for p in batch if not p.future.done()]  # a cancelled client needs no answer

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            if not batch:
                continue
            cells, lengths = pad_sets([p.cells for p in batch])  # [B, S, 2], [B]
            metrics.BATCH_SIZE.observe(len(batch))
            try:
                out = await loop.run_in_executor(self._executor, self.predict_fn, cells, lengths)
            except Exception as exc:  # the model failed: every waiter learns why
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            now = time.perf_counter()
            for p, value in zip(batch, out, strict=True):
                if not p.future.done():
                    p.future.set_result(float(value))
                    metrics.PREDICTION_LATENCY.observe(now - p.enqueued)
