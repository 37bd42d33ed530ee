"""`create_app()`: the FastAPI application, wired at start-up (lifespan).

Start-up order (`state.build_state`): verify and load the model bundle (refuse to start on a
checksum mismatch) → migrate the database → start the micro-batcher → start the job worker.
Readiness is reported by `/readyz` only once all of that succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.errors import install_error_handlers
from service.middleware import BodyLimitMiddleware, MetricsMiddleware
from service.routes import batches, cells, health, model_card, predictions, web
from service.schemas import NOTICE
from service.settings import Settings, get_settings
from service.state import build_state

log = logging.getLogger("hct.app")

DESCRIPTION = f"""Hematocrit estimated from per-cell red-blood-cell measurements (volume fL,
hemoglobin pg) by a Deep Sets++ model, stored beside clinical baselines.

**{NOTICE}**"""


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
        sender = None
        if settings.hl7_mllp_host:
            from service.hl7_sender import Hl7Sender

            sender = Hl7Sender(state.engine, settings.hl7_mllp_host, settings.hl7_mllp_port,
                               max_attempts=settings.hl7_mllp_max_attempts)
            sender.start()
        log.info("hct ready: model %s on %s, database %s", state.model.bundle.version,
                 state.model.provider, state.engine.dialect.name)
        try:
            yield
        finally:
            if sender is not None:
                await sender.stop()
            if state.jobs is not None:
                await state.jobs.stop()
            await state.batcher.stop()
            state.engine.dispose()

    app = FastAPI(title="hct", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    install_error_handlers(app)
    for router in (health.router, predictions.router, batches.router, model_card.router,
                   cells.router):
        app.include_router(router)
    web.mount(app)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_body=settings.max_body_bytes,
                       max_upload=settings.max_upload_bytes)
    return app
