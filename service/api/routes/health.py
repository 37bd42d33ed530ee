"""Liveness, readiness and Prometheus metrics: open to operations without an API key.

`/healthz` and `/metrics` run on the event loop and never touch the database, so they answer
while every worker thread waits on a hung database (a liveness probe must not restart a
replica for its database's outage). `/readyz` pings the database on its own two threads with
its own short timeout.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.dependencies import StateDep
from service.db.engine import ping

router = APIRouter(tags=["operations"])
_PING_THREADS = ThreadPoolExecutor(2, thread_name_prefix="readyz")


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _database_answers(state: StateDep) -> bool:
    """A ping within `readyz_timeout_s`; a ping still stuck then counts as unreachable."""
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(
            loop.run_in_executor(_PING_THREADS, ping, state.engine),
            state.settings.readyz_timeout_s)
    except TimeoutError:
        return False


@router.get("/readyz", responses={503: {"description": "Not ready: the start-up inference "
                                             "failed or the database does not answer",
                                             "content": {"application/json": {
                                                 "schema": {"type": "object"}}}}},
            summary="Start-up inference passed and the database answers (503 "
                               "otherwise)")
async def readyz(state: StateDep) -> JSONResponse:
    database = await _database_answers(state)
    check = state.model_check
    model = state.model.bundle
    ready = database and check.ok
    body = {
        "status": "ready" if ready else "not ready",
        "model": {"loaded": check.ok, "check": {"ok": check.ok, "value": check.value,
                                                "seconds": round(check.seconds, 4),
                                                "error": check.error},
                  "name": model.name, "version": model.version, "sha256": model.sha256,
                  "provider": state.model.provider, "model_workers": state.model_workers,
                  "intra_op_threads": state.online_model.intra_op_threads or "default",
                  "io_binding": state.online_model.io_binding,
                  "precision": state.online_model.precision,
                  "graph_sha256": state.online_model.graph.sha256,
                  "int8_host_check": state.online_model.host_check},
        "database": {"reachable": database, "dialect": state.engine.dialect.name},
        "queue_depth": state.online.batcher.depth,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, responses={
    200: {"description": "Prometheus text exposition format",
          "content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics_endpoint() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
