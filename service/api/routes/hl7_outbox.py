"""`/v1/hl7/outbox`: the HL7 delivery queue for operators (admin scope): its counts, and putting
failed messages back in line once the LIS (or the cause of a dead letter) is fixed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from service.api.dependencies import AdminScope, ConnectionDep
from service.api.responses import errors
from service.db import hl7_outbox
from service.db.audit import record_audit

router = APIRouter(prefix="/v1/hl7", tags=["delivery"])
MAX_IDS = 10_000
OutboxId = Annotated[int, Field(ge=1, le=2**63 - 1)]  # a BIGINT primary key


class OutboxCounts(BaseModel):
    pending: int
    sent: int
    rejected: int
    failed: int


class RequeueRequest(BaseModel):
    """Which failed messages to requeue: all of them (an empty body), those among `ids`, or
    those queued at or after `since`; both given: failed messages matching both."""

    model_config = ConfigDict(extra="forbid")
    ids: list[OutboxId] | None = Field(None, max_length=MAX_IDS,
                                       description="Outbox message ids")
    since: AwareDatetime | None = Field(None, description="Queued at or after (with offset)")


class Requeued(BaseModel):
    requeued: int
    ids: list[int]


@router.get("/outbox", responses=errors(401, 403, 503),
            summary="HL7 outbox messages per status (pending, sent, rejected, failed)")
def outbox_counts(conn: ConnectionDep, _principal: AdminScope) -> OutboxCounts:
    return OutboxCounts(**hl7_outbox.counts(conn))


@router.post("/outbox/requeue", responses=errors(400, 401, 403, 422, 503),
             summary="Put failed HL7 messages back in the delivery queue (fresh attempts, in "
                     "their original order)")
def requeue(conn: ConnectionDep, principal: AdminScope,
            body: RequeueRequest | None = None) -> Requeued:
    body = body or RequeueRequest()
    ids = hl7_outbox.requeue(conn, ids=body.ids, since=body.since)
    record_audit(conn, principal=principal.fingerprint, tenant=principal.tenant,
                 action="requeue", resource="hl7_outbox", resource_id=None,
                 detail=f"{len(ids)} failed messages requeued")
    return Requeued(requeued=len(ids), ids=ids)
