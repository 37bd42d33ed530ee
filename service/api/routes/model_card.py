"""`/v1/model`: the model card of the bundle being served, including its intended use."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api.dependencies import ReadScope, StateDep
from service.api.responses import errors
from service.prediction.notice import NOTICE

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", responses=errors(401, 403),
            summary="The served model's card (synthetic-data, research-only notice)")
def model_card(state: StateDep, _principal: ReadScope) -> dict[str, Any]:
    card = dict(state.model.bundle.card)
    return {"notice": NOTICE, "provider": state.model.provider,
            "onnx_sha256_verified": state.model.bundle.sha256, "card": card}
