"""Dynamic micro-batching: items submitted one at a time are gathered into one batch call.

The batcher knows nothing of what the items are (cells, padding and storage belong to the
caller): it takes a batch function `list[item] -> output` and, optionally, a second stage
`then(items, output) -> one result per item` (an Exception instance fails that item only).

Gathering waits for `max_batch_size` items or `max_delay_ms` after the first, whichever comes
first; the call runs in a worker thread (onnxruntime releases the GIL) so the event loop keeps
accepting requests. The queue is bounded: a full queue is an immediate refusal (503 with
Retry-After upstream), never unbounded memory or latency.

`then` runs per batch on its own thread after the batch function (the service stores a whole
batch in one transaction there), so the next batch can start while the previous one is being
finished. A batch holds its worker until it has a finishing slot, so a slow second stage pushes
back on gathering and on the queue limit instead of piling up finished batches in memory.

`cost(item)` with `max_batch_cost` caps a batch by the sum of its items' costs too (the service
counts cells, so a batch of short samples holds more of them than one of long samples); an item
that would overflow a batch waits at the head of the next one. `submit_many` queues a group of
items at once (a bulk request): they are admitted together and share batch calls.

`workers` > 1 runs that many batch calls at once (each on its own thread; an onnxruntime session
may be run concurrently). A batch is gathered only once a worker is free, so batches grow by
themselves while every worker is busy; a batch gathered while other workers are idle too is
shared out among them, so a burst runs on all of them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service import metrics

BatchFn = Callable[[list[Any]], Any]  # items -> output (one value per item without `then`)
ThenFn = Callable[[list[Any], Any], Sequence[Any]]  # items, output -> one result per item
CostFn = Callable[[Any], int]  # item -> its share of `max_batch_cost`
FINISHING_BATCHES = 2  # batches finished at once behind the batch call (bounds memory, latency)


class QueueFullError(RuntimeError):
    """The batcher's queue is at capacity; the caller should retry later."""


@dataclass
class _Pending:
    item: Any
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Collects single items into batches for one `batch_fn` (and an optional `then`)."""

    def __init__(self, batch_fn: BatchFn, *, max_batch_size: int, max_delay_ms: float,
                 max_queue: int, then: ThenFn | None = None, workers: int = 1,
                 cost: CostFn | None = None, max_batch_cost: int = 0) -> None:
        self.batch_fn = batch_fn
        self.cost = cost
        self.max_batch_cost = max_batch_cost if cost is not None else 0  # 0: no cost cap
        self._carry: _Pending | None = None  # the item that overflowed the last batch
        self.then = then
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_ms / 1000.0
        self.max_queue = max_queue
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self.workers = workers
        self._running: set[asyncio.Task[None]] = set()  # batches in the call or finishing
        self._gathering: list[_Pending] = []
        self._model_slots: asyncio.Semaphore | None = None
        self._finish_slots: asyncio.Semaphore | None = None
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hct-infer")
        self._finish_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hct-store")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._model_slots = asyncio.Semaphore(self.workers)
        self._finish_slots = asyncio.Semaphore(FINISHING_BATCHES)
        self._task = asyncio.create_task(self._loop(), name="hct-batcher")

    async def stop(self) -> None:
        """Stop gathering; batches already past the batch call are finished, not dropped."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        _fail(self._gathering, QueueFullError("service is shutting down"))
        if self._carry is not None:
            _fail([self._carry], QueueFullError("service is shutting down"))
        if self._queue is not None:
            while not self._queue.empty():
                _fail([self._queue.get_nowait()], QueueFullError("service is shutting down"))
        self._executor.shutdown(wait=True)
        self._finish_executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    async def submit(self, item: Any) -> Any:
        """Queue one item; returns its result (`then`'s, or the batch output's element)."""
        if self._queue is None:
            raise RuntimeError("batcher not started")
        if self._queue.qsize() >= self.max_queue:
            metrics.QUEUE_REJECTED.inc()
            raise QueueFullError(f"prediction queue is full ({self.max_queue} waiting)")
        pending = _Pending(item, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(pending)
        metrics.QUEUE_DEPTH.set(self._queue.qsize())
        return await pending.future

    async def submit_many(self, items: Sequence[Any]) -> list[Any]:
        """Queue a group of items together; one result (or Exception instance) per item, in
        order. The group is admitted as one request: refused only when the queue is already
        full, so a bulk request is never half queued.
        """
        if self._queue is None:
            raise RuntimeError("batcher not started")
        if self._queue.qsize() >= self.max_queue:
            metrics.QUEUE_REJECTED.inc()
            raise QueueFullError(f"prediction queue is full ({self.max_queue} waiting)")
        loop = asyncio.get_running_loop()
        futures = []
        for item in items:
            pending = _Pending(item, loop.create_future())
            self._queue.put_nowait(pending)
            futures.append(pending.future)
        metrics.QUEUE_DEPTH.set(self._queue.qsize())
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def _gather(self) -> list[_Pending]:
        assert self._queue is not None
        # Held on the instance while gathering: if the batcher is stopped mid-gather, `stop`
        # answers these instead of leaving their requests waiting forever.
        first, self._carry = self._carry, None
        self._gathering = batch = [first if first is not None else await self._queue.get()]
        budget = self.max_batch_cost
        spent = self.cost(batch[0].item) if budget else 0
        deadline = time.perf_counter() + self.max_delay_s
        while len(batch) < self.max_batch_size and (not budget or spent < budget):
            remaining = deadline - time.perf_counter()
            try:
                if remaining <= 0:
                    pending = self._queue.get_nowait()
                else:
                    pending = await asyncio.wait_for(self._queue.get(), remaining)
            except (TimeoutError, asyncio.QueueEmpty):
                break
            if budget:
                cost = self.cost(pending.item)
                if spent + cost > budget:
                    self._carry = pending  # heads the next batch
                    break
                spent += cost
            batch.append(pending)
        metrics.QUEUE_DEPTH.set(self._queue.qsize())
        return [p for p in batch if not p.future.done()]  # a cancelled client needs no answer

    async def _loop(self) -> None:
        assert self._model_slots is not None
        while True:
            await self._model_slots.acquire()  # gather only when a worker is free
            batch = await self._gather()
            self._gathering = []
            if not batch:
                self._model_slots.release()
                continue
            # Other workers idle too: share the batch out so a burst runs on all of them at
            # once instead of as one batch on one worker (under load they are busy: no split).
            parts = 1
            while parts < min(len(batch), self.workers) and not self._model_slots.locked():
                await self._model_slots.acquire()  # free now: returns at once
                parts += 1
            for share in np.array_split(np.arange(len(batch)), parts):
                task = asyncio.create_task(self._run([batch[i] for i in share]))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[_Pending]) -> None:
        """Batch call, then (with `then`) the finishing stage; holds one worker slot until the
        batch has a finishing slot, so a slow second stage pushes back on gathering (and the
        queue limit), never piles up finished batches in memory.
        """
        assert self._model_slots is not None and self._finish_slots is not None
        loop = asyncio.get_running_loop()
        try:
            metrics.BATCH_SIZE.observe(len(batch))
            items = [p.item for p in batch]
            try:
                out = await loop.run_in_executor(self._executor, self.batch_fn, items)
            except Exception as exc:  # the batch call failed: every waiter learns why
                _fail(batch, exc)
                return
            if self.then is None:
                _resolve(batch, list(out))
                return
            await self._finish_slots.acquire()
        finally:
            self._model_slots.release()
        try:
            results = await loop.run_in_executor(self._finish_executor, self.then, items, out)
        except Exception as exc:
            _fail(batch, exc)
        else:
            _resolve(batch, results)
        finally:
            self._finish_slots.release()


def _fail(batch: Sequence[_Pending], exc: BaseException) -> None:
    for p in batch:
        if not p.future.done():
            p.future.set_exception(exc)


def _resolve(batch: Sequence[_Pending], results: Sequence[Any]) -> None:
    now = time.perf_counter()
    for p, result in zip(batch, results, strict=True):
        if p.future.done():
            continue
        if isinstance(result, BaseException):
            p.future.set_exception(result)
        else:
            p.future.set_result(result)
            metrics.PREDICTION_LATENCY.observe(now - p.enqueued)
