"""`/v1/monitoring`: the served model's rolling-window drift, agreement and quality figures.

A tenant's key sees its own tenant's figures only; an `admin` key sees all traffic with a
per-tenant breakdown, or one tenant's with `?tenant=`. Figures over too few samples are null
with the reason (`HCT_MONITORING_MIN_SAMPLES`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from service.api.dependencies import ReadScope, StateDep, audit_rejection
from service.api.responses import errors
from service.api.security import Rejected, presented_key
from service.prediction.notice import NOTICE
from service.tenancy import TENANT_PATTERN

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/monitoring", responses=errors(401, 403, 422),
            summary="Input drift, agreement with measured hematocrit and quality shares over "
                    "rolling windows, per model version: the caller's tenant's (admin: all "
                    "traffic and each tenant's); aggregates only, figures over fewer than "
                    "HCT_MONITORING_MIN_SAMPLES samples are null")
async def monitoring(request: Request, state: StateDep, principal: ReadScope,
                     tenant: Annotated[str | None, Query(
                         pattern=TENANT_PATTERN, max_length=64,
                         description="Admin keys: this tenant's figures only (a tenant's key "
                                     "may name only its own tenant)")] = None,
                     ) -> dict[str, Any]:
    monitor = state.monitor
    own = principal.read_tenant  # None for admin
    if own is not None:
        if tenant is not None and tenant != own:
            exc = Rejected(403, "insufficient_scope", "another tenant's monitoring needs the "
                           "'admin' scope", presented=presented_key(request.headers),
                           tenant=own, headers={"WWW-Authenticate": 'Bearer error="insufficient'
                                                                    '_scope", scope="admin"'})
            exc.field = "query.tenant"
            await audit_rejection(state, request, exc)
            raise exc
        return {"notice": NOTICE, "tenant": own, **monitor.snapshot(own)}
    if tenant is not None:
        return {"notice": NOTICE, "tenant": tenant, **monitor.snapshot(tenant)}
    return {"notice": NOTICE, "tenant": None, **monitor.snapshot(),
            "tenants": {t: monitor.snapshot(t) for t in monitor.tenants()}}
