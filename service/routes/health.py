"""Liveness, readiness and Prometheus metrics: open to operations without an API key."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service import store
from service.deps import StateDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Model loaded and database reachable (503 otherwise)")
def readyz(state: StateDep) -> JSONResponse:
    database = store.ping(state.engine)
    model = state.model is not None
    body = {
        "status": "ready" if database and model else "not ready",
        "model": {"loaded": model, "name": state.model.bundle.name,
                  "version": state.model.bundle.version, "sha256": state.model.bundle.sha256,
                  "provider": state.model.provider,
                  "model_workers": state.batcher.model_workers,
                  "intra_op_threads": state.online_model.intra_op_threads or "default"},
        "database": {"reachable": database, "dialect": state.engine.dialect.name},
        "queue_depth": state.batcher.depth,
    }
    return JSONResponse(body, status_code=200 if database and model else 503)


@router.get("/metrics", summary="Prometheus metrics")
def metrics_endpoint() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
