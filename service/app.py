"""`create_app()`: the FastAPI application, wired at start-up (lifespan).

Start-up order: verify and load the model bundle (refuse to start on a checksum mismatch) →
migrate the database → start the micro-batcher → start the batch-job worker. Readiness is
reported by `/readyz` only once all of that succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import metrics
from service.batcher import MicroBatcher
from service.deps import ServiceState
from service.errors import install_error_handlers
from service.middleware import BodyLimitMiddleware, MetricsMiddleware
from service.migrate import upgrade
from service.pipeline import Scorer
from service.routes import batches, health, model_card, predictions
from service.runtime import OnnxModel, load_bundle
from service.schemas import NOTICE
from service.settings import Settings, get_settings
from service.store import make_engine

log = logging.getLogger("hct.app")

DESCRIPTION = f"""Hematocrit estimated from per-cell red-blood-cell measurements (volume fL,
hemoglobin pg) by a Deep Sets++ model, stored beside clinical baselines.

**{NOTICE}**"""


def build_state(settings: Settings) -> ServiceState:
    """Load everything a request needs; raises (and the service refuses to start) on failure."""
    bundle = load_bundle(settings.model_dir)
    model = OnnxModel(bundle, settings.execution_provider)
    set_size = min(settings.set_size, int(bundle.card.get("cells_per_set", settings.set_size)))
    engine = make_engine(settings.database_url_with_password)
    upgrade(engine)
    batcher = MicroBatcher(model.predict, max_batch_size=settings.max_batch_size,
                           max_delay_ms=settings.max_queue_delay_ms,
                           max_queue=settings.max_queue_size)
    metrics.MODEL_INFO.labels(bundle.name, bundle.version, bundle.sha256[:12],
                              model.provider).set(1)
    return ServiceState(settings=settings, engine=engine, model=model,
                        scorer=Scorer(model, set_size), batcher=batcher)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = build_state(settings)
        app.state.hct = state
        await state.batcher.start()
        if settings.run_jobs:
            from service.jobs import JobRunner

            state.jobs = JobRunner(state)
            state.jobs.start()
        log.info("hct ready: model %s on %s, database %s", state.model.bundle.version,
                 state.model.provider, state.engine.dialect.name)
        try:
            yield
        finally:
            if state.jobs is not None:
                await state.jobs.stop()
            await state.batcher.stop()
            state.engine.dispose()

    app = FastAPI(title="hct", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    install_error_handlers(app)
    for router in (health.router, predictions.router, batches.router, model_card.router):
        app.include_router(router)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_body=settings.max_body_bytes,
                       max_upload=settings.max_upload_bytes)
    return app
