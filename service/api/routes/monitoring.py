"""`/v1/monitoring`: the served model's rolling-window drift, agreement and quality figures."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api.dependencies import ReadScope, StateDep
from service.api.responses import errors
from service.prediction.notice import NOTICE

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/monitoring", responses=errors(401, 403),
            summary="Input drift, agreement with measured hematocrit and quality shares over "
                    "rolling windows, per model version (aggregates only: no patient data)")
def monitoring(state: StateDep, _principal: ReadScope) -> dict[str, Any]:
    return {"notice": NOTICE, **state.monitor.snapshot()}
