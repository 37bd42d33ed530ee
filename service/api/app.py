"""`create_app()`: the FastAPI application, wired at start-up (lifespan).

Start-up order (`components.build_components`): verify and load the model bundle (refuse to
start on a checksum mismatch) → canned inference → migrate the database → start the
micro-batcher → start the job worker. `/readyz` reports the canned inference and a live
database check.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.api.bulk_budget import BulkBudget
from service.api.control_characters import ControlCharacterMiddleware
from service.api.docs_guard import DocsGuardMiddleware
from service.api.errors import install_error_handlers
from service.api.middleware import (
    BodyLimitMiddleware,
    MetricsMiddleware,
    SecurityHeadersMiddleware,
)
from service.api.openapi_document import install_document_fixes
from service.api.routes import (
    batches,
    bulk,
    cells,
    docs,
    health,
    hl7_outbox,
    model_card,
    monitoring,
    predictions,
    web,
)
from service.components import build_components
from service.delivery.mllp_sender import MllpSender
from service.jobs.runner import JobRunner
from service.prediction.notice import NOTICE
from service.settings import Settings, get_settings

log = logging.getLogger("hct.app")

DESCRIPTION = f"""Hematocrit estimated from per-cell red-blood-cell measurements (volume fL,
hemoglobin pg) by a Deep Sets++ model, stored beside clinical baselines.

**{NOTICE}**"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        parts = build_components(settings)
        app.state.hct = parts
        await parts.online.start()
        jobs = None
        if settings.run_jobs:
            jobs = JobRunner(settings, parts.engine, parts.predictor, parts.writer,
                             monitor=parts.monitor)
            jobs.start()
        sender = None
        if settings.hl7_mllp_host:
            sender = MllpSender(parts.engine, settings.hl7_mllp_host, settings.hl7_mllp_port,
                                max_attempts=settings.hl7_mllp_max_attempts)
            sender.start()
        log.info("hct ready: model %s on %s, database %s", parts.model.bundle.version,
                 parts.model.provider, parts.engine.dialect.name)
        try:
            yield
        finally:
            if sender is not None:
                await sender.stop()
            if jobs is not None:
                await jobs.stop()
            await parts.online.stop()
            parts.engine.dispose()

    # docs_url/redoc_url None: FastAPI's pages load from a CDN; routes/docs.py serves them here.
    app = FastAPI(title="hct", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    install_error_handlers(app)
    for router in (health.router, bulk.router, predictions.router, batches.router,
                   model_card.router, cells.router, docs.router, monitoring.router,
                   hl7_outbox.router):
        app.include_router(router)
    web.mount(app)
    app.state.bulk_budget = BulkBudget(settings.max_bulk_inflight_bytes)
    install_document_fixes(app)
    # The last added is outermost: metrics see every answer (413s and the control-character
    # 422s included).
    app.add_middleware(ControlCharacterMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_body=settings.max_body_bytes,
                       max_upload=settings.max_upload_bytes)
    app.add_middleware(DocsGuardMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)  # on every response, 413s and 401s too
    app.add_middleware(MetricsMiddleware)
    return app
