"""What a running process holds: settings, model, pipeline, database and batcher, loaded once
at start-up by the API (lifespan) and by `hct worker` alike.
"""

from __future__ import annotations

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


@dataclass
class ServiceState:
    """Everything loaded once at start-up and shared by every request and job."""

    settings: Settings
    engine: Engine
    model: OnnxModel
    scorer: Scorer
    batcher: MicroBatcher
    jobs: JobRunner | None = None


def build_state(settings: Settings) -> ServiceState:
    """Verify and load the model bundle, migrate the database, prepare the batcher; raises
    (and the process refuses to start) on any failure.
    """
    bundle = load_bundle(settings.model_dir)
    model = OnnxModel(bundle, settings.execution_provider,
                      intra_op_threads=settings.intra_op_threads)
    engine = make_engine(settings.database_url_with_password)
    upgrade(engine)
    scorer = Scorer.for_model(model, settings.set_size)
    batcher = MicroBatcher(model.predict, max_batch_size=settings.max_batch_size,
                           max_delay_ms=settings.max_queue_delay_ms,
                           max_queue=settings.max_queue_size,
                           finish_fn=partial(store_batch, scorer, engine),
                           model_workers=settings.model_workers)
    metrics.MODEL_INFO.labels(bundle.name, bundle.version, bundle.sha256[:12],
                              model.provider).set(1)
    return ServiceState(settings=settings, engine=engine, model=model, scorer=scorer,
                        batcher=batcher)
