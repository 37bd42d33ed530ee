"""What a running process holds: settings, model, pipeline, database and batcher, loaded once
at start-up by the API (lifespan) and by `hct worker` alike.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from service import metrics
from service.batcher import MicroBatcher
from service.migrate import upgrade
from service.pipeline import Scorer
from service.prediction_flow import store_batch
from service.runtime import OnnxModel, load_bundle
from service.settings import Settings
from service.store import make_engine

if TYPE_CHECKING:
    from service.jobs import JobRunner

log = logging.getLogger("hct.state")


@dataclass
class ServiceState:
    """Everything loaded once at start-up and shared by every request and job."""

    settings: Settings
    engine: Engine
    model: OnnxModel
    scorer: Scorer
    batcher: MicroBatcher
    online_model: OnnxModel  # what the batcher calls (may differ in threads from `model`)
    jobs: JobRunner | None = None


AUTO_MAX_MODEL_WORKERS = 4


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
    not stall a multi-threaded call at its parallel sections. On the shared 2-core benchmark
    machine this gave 0.77-0.87 of offline throughput at 64 clients over five runs, where one
    call on two threads gave 0.72-0.82 (bench/results/service_load.md). Auto on CUDA: one call,
    onnxruntime's own threading. Batch jobs keep `model` (default threads: they call it from
    one thread with big batches).
    """
    workers = settings.model_workers or auto_model_workers(model.device, settings.workers)
    online = model
    if model.device == "cpu" and workers > 1 and settings.intra_op_threads == 0:
        online = OnnxModel(model.bundle, "cpu", intra_op_threads=1)
    log.info("online model calls: %d at once, %s intra-op threads each", workers,
             online.intra_op_threads or "onnxruntime's default")
    return online, workers


def build_state(settings: Settings) -> ServiceState:
    """Verify and load the model bundle, migrate the database, prepare the batcher; raises
    (and the process refuses to start) on any failure.
    """
    bundle = load_bundle(settings.model_dir)
    model = OnnxModel(bundle, settings.execution_provider,
                      intra_op_threads=settings.intra_op_threads)
    online, model_workers = online_model(model, settings)
    engine = make_engine(settings.database_url_with_password)
    upgrade(engine)
    if settings.hl7_mllp_host:  # every stored prediction also queues its HL7 message
        from service import hl7_outbox

        hl7_outbox.install(engine, settings)
    scorer = Scorer.for_model(model, settings.set_size)
    batcher = MicroBatcher(online.predict, max_batch_size=settings.max_batch_size,
                           max_delay_ms=settings.max_queue_delay_ms,
                           max_queue=settings.max_queue_size,
                           finish_fn=partial(store_batch, scorer, engine),
                           model_workers=model_workers)
    metrics.MODEL_INFO.labels(bundle.name, bundle.version, bundle.sha256[:12],
                              model.provider).set(1)
    return ServiceState(settings=settings, engine=engine, model=model, scorer=scorer,
                        batcher=batcher, online_model=online)
