"""The online path: one accepted request → micro-batched model call → one transaction per batch
→ the stored `Prediction`, shared by the JSON and the FCS endpoints so both behave the same on
retries and errors.

The request handler validates and calls `OnlinePredictions.predict`; the batcher's first stage
pads and runs the model for the whole batch, its second stage (`_store_batch`, on its own
thread) computes indices and baselines vectorised over the batch and writes every prediction,
idempotency key and audit entry in one transaction. Each batch has `HCT_DATABASE_TIMEOUT_S`
for the database from the moment its model call ends, waiting behind earlier batches included,
so a silent database cannot stack one wait per batch onto a request.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from anyio import to_thread
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ingestion.cells import CellSet
from service import metrics
from service.db.audit import AuditEntry, record_audit, record_audits
from service.db.idempotency import IdempotencyRecord, replayed_id
from service.db.idempotency_many import replayed_ids
from service.db.predictions import get_prediction
from service.db.transaction import transaction
from service.db.writer import PredictionWriter
from service.monitoring import Monitor, Observation
from service.prediction.prediction import Prediction
from service.prediction.predictor import ModelBatch, Predictor
from service.runtime.batcher import MicroBatcher
from service.runtime.onnx_model import OnnxModel
from service.settings import Settings
from service.tenancy import Principal

log = logging.getLogger("hct.online")

Stored = tuple[Prediction, bool]  # the prediction, and whether this request created it
AUTO_MAX_MODEL_WORKERS = 4


@dataclass(frozen=True)
class OnlineRequest:
    """One accepted request waiting in the micro-batcher."""

    cellset: CellSet
    cells: np.ndarray  # [n, 2] the cells the model sees
    principal: Principal
    source: str  # api | fcs
    key: str | None  # Idempotency-Key
    digest: str  # sha256 of the request, compared on a retry with the same key


def _cells_of(request: OnlineRequest) -> int:
    """A request's share of a micro-batch's cell budget: the cells the model will see."""
    return int(request.cells.shape[0])


def auto_model_workers(device: str, processes: int) -> int:
    """CPU: the cores shared out among the uvicorn processes (`HCT_WORKERS`), 1 to 4 calls
    each; CUDA: one call."""
    if device == "cuda":
        return 1
    return max(1, min((os.cpu_count() or 1) // processes, AUTO_MAX_MODEL_WORKERS))


def online_model(model: OnnxModel, settings: Settings) -> tuple[OnnxModel, int]:
    """The session the micro-batcher calls, and how many calls it runs at once.

    Auto (0) on the CPU: one call per core (at most 4; cores are shared out among `HCT_WORKERS`
    processes), each on one onnxruntime thread, so Python request work beside a model call does
    not stall a multi-threaded call at its parallel sections (bench/results/service_load.md
    compares it with one call on all threads). Auto on CUDA: one call, onnxruntime's own
    threading. Batch jobs keep `model` (default threads: one caller with big batches).
    """
    workers = settings.model_workers or auto_model_workers(model.device, settings.workers)
    online = model
    if model.device == "cpu" and workers > 1 and settings.intra_op_threads == 0:
        online = OnnxModel(model.bundle, "cpu", intra_op_threads=1,
                           precision=model.precision_setting)
    log.info("online model calls: %d at once, %s intra-op threads each", workers,
             online.intra_op_threads or "onnxruntime's default")
    return online, workers


class OnlinePredictions:
    """Single requests in, stored predictions out, through the micro-batcher."""

    def __init__(self, predictor: Predictor, engine: Engine, writer: PredictionWriter,
                 monitor: Monitor, settings: Settings, workers: int) -> None:
        self.predictor = predictor
        self.engine = engine
        self.writer = writer
        self.monitor = monitor
        self.database_timeout_s = settings.database_timeout_s
        self.batcher = MicroBatcher(self._run_model, then=self._store_batch,
                                    max_batch_size=settings.max_batch_size,
                                    max_delay_ms=settings.max_queue_delay_ms,
                                    max_queue=settings.max_queue_size, workers=workers,
                                    cost=_cells_of, max_batch_cost=settings.max_batch_cells)

    async def start(self) -> None:
        await self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()

    async def predict(self, cellset: CellSet, *, principal: Principal, source: str,
                      key: str | None, digest: str) -> Stored:
        """Score and persist; returns the prediction and whether it was created now (False:
        an idempotent replay)."""
        # A keyed look-up runs off the event loop (a silent database must not stall every
        # request) and its deadline counts from now, waiting for a thread included.
        stored = None if key is None else await to_thread.run_sync(
            partial(self.replay, principal, key, digest, end=self._deadline()))
        if stored is not None:
            return stored, False
        request = OnlineRequest(cellset, self.predictor.select_cells(cellset), principal,
                                source, key, digest)
        return await self.batcher.submit(request)

    async def predict_many(self, cellsets: Sequence[CellSet], *, principal: Principal,
                           source: str, keys: Sequence[str | None],
                           digest: str) -> list[Stored | Exception]:
        """Score and persist a group (a bulk request) through the batcher together, so its
        samples share model calls; per sample the stored prediction and whether it was created
        now, or the Exception that failed that sample only. `keys[i]` is sample i's
        Idempotency-Key (None: no key); samples stored before under their key are replayed.
        """
        # The replay lookup (a database round trip) and the cell selection of up to
        # HCT_MAX_BULK_SAMPLES samples run on a worker thread, not on the event loop.
        out, todo, requests = await to_thread.run_sync(
            self._prepare_many, cellsets, principal, source, keys, digest, self._deadline())
        if todo:
            for i, result in zip(todo, await self.batcher.submit_many(requests), strict=True):
                out[i] = result
        return [r for r in out if r is not None]

    def _prepare_many(self, cellsets: Sequence[CellSet], principal: Principal, source: str,
                      keys: Sequence[str | None], digest: str, end: float | None
                      ) -> tuple[list[Stored | Exception | None], list[int], list[OnlineRequest]]:
        replayed = self.replay_many(principal, [k for k in keys if k is not None], digest,
                                    end=end)
        out: list[Stored | Exception | None] = [None] * len(cellsets)
        todo: list[int] = []
        for i, key in enumerate(keys):
            if key is not None and key in replayed:
                out[i] = (replayed[key], False)
            else:
                todo.append(i)
        requests = [OnlineRequest(cellsets[i], self.predictor.select_cells(cellsets[i]),
                                  principal, source, keys[i], digest) for i in todo]
        return out, todo, requests

    def replay_many(self, principal: Principal, keys: Sequence[str], digest: str, *,
                    end: float | None = None) -> dict[str, Prediction]:
        """Key → stored prediction for the keys seen before (one query, one transaction)."""
        if not keys:
            return {}
        with transaction(self.engine, end=end or self._deadline()) as conn:
            ids = replayed_ids(conn, principal.tenant, keys, digest, "prediction")
            if not ids:
                return {}
            record_audits(conn, [AuditEntry(principal.fingerprint, "replay", "prediction", i,
                                            tenant=principal.tenant) for i in ids.values()])
            found = {i: p for i, p in ((i, get_prediction(conn, i, tenant=principal.tenant))
                                       for i in ids.values()) if p is not None}
        return {key: found[i] for key, i in ids.items() if i in found}

    def replay(self, principal: Principal, key: str | None, digest: str, *,
               end: float | None = None) -> Prediction | None:
        """The stored prediction for the tenant's retried `Idempotency-Key`, or None for a new
        request; `end`: the deadline (monotonic) of its database work."""
        if key is None:
            return None  # no key, nothing to replay: no database round trip
        with transaction(self.engine, end=end or self._deadline()) as conn:
            prediction_id = replayed_id(conn, principal.tenant, key, digest, "prediction")
            if prediction_id is None:
                return None
            record_audit(conn, principal=principal.fingerprint, tenant=principal.tenant,
                         action="replay", resource="prediction", resource_id=prediction_id)
            return get_prediction(conn, prediction_id, tenant=principal.tenant)

    def _deadline(self) -> float:
        return time.monotonic() + self.database_timeout_s

    def _run_model(self, requests: list[OnlineRequest]) -> tuple[float, ModelBatch]:
        batch = self.predictor.run_model([r.cells for r in requests])
        return self._deadline(), batch  # the database's time starts once the model is done

    def _store_batch(self, requests: Sequence[OnlineRequest],
                     output: tuple[float, ModelBatch]) -> list[Stored | Exception]:
        """Finish and persist one micro-batch in one transaction.

        If the batch transaction fails on a unique key (a concurrent retry with the same
        Idempotency-Key won the race), every request is stored on its own instead, so one
        duplicate cannot fail its neighbours.
        """
        end, batch = output
        predictions = self.predictor.finish([r.cellset for r in requests], batch,
                                            sources=[r.source for r in requests],
                                            tenants=[r.principal.tenant for r in requests])
        try:
            with transaction(self.engine, end=end) as conn:
                self._write(conn, requests, predictions)
            results: list[Stored | Exception] = [(p, True) for p in predictions]
        except IntegrityError:
            results = [self._store_one(r, p, end)
                       for r, p in zip(requests, predictions, strict=True)]
        created = [r[0] for r in results if not isinstance(r, Exception) and r[1]]
        for prediction in created:
            metrics.PREDICTIONS_STORED.labels(prediction.source).inc()
        self.monitor.observe_many(Observation.of_prediction(p) for p in created)
        return results

    def _write(self, conn: Connection, requests: Sequence[OnlineRequest],
               predictions: Sequence[Prediction]) -> None:
        pairs = list(zip(requests, predictions, strict=True))
        self.writer.write(
            conn, predictions,
            keys=[IdempotencyRecord(r.principal.tenant, r.principal.fingerprint, r.key,
                                    r.digest, "prediction", p.id)
                  for r, p in pairs if r.key is not None],
            audits=[AuditEntry(r.principal.fingerprint, "create", "prediction", p.id,
                               tenant=r.principal.tenant) for r, p in pairs])

    def _store_one(self, request: OnlineRequest, prediction: Prediction,
                   end: float) -> Stored | Exception:
        try:
            with transaction(self.engine, end=end) as conn:
                self._write(conn, [request], [prediction])
            return prediction, True
        except IntegrityError as exc:
            try:
                stored = self.replay(request.principal, request.key, request.digest, end=end)
            except Exception as replay_error:  # the key was reused for another request
                return replay_error
            return exc if stored is None else (stored, False)
