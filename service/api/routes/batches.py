"""`/v1/batches`: upload a lab export, get a job id at once, poll it, stream its results."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import IntegrityError

from ingestion.errors import IngestionError
from ingestion.sources import detect_format
from ingestion.tables.long_format import check_header
from service.api.dependencies import ConnectionDep, PredictScope, ReadScope, StateDep
from service.api.errors import ApiError
from service.api.idempotency import IdempotencyKey, request_digest
from service.api.negotiation import negotiate
from service.api.not_found import audited_not_found
from service.api.responses import BATCH_RESULTS, errors, replayed
from service.api.schemas import BatchCreated, BatchStatus, ErrorResponse
from service.db.audit import record_audit
from service.db.engine import new_id
from service.db.errors import CommitOutcomeUnknown
from service.db.idempotency import IdempotencyRecord, replayed_id, save_idempotency
from service.db.transaction import transaction
from service.jobs import store as job_store
from service.jobs.redact import without_paths
from service.prediction.mapper import csv_lines, error_row, result_row
from service.tenancy import Principal

router = APIRouter(prefix="/v1/batches", tags=["batches"])
_CREATED = {**replayed(BatchCreated, "An idempotent retry: the job the first upload created"),
            **errors(400, 401, 403, 409, 413, 422, 503, 507)}
_READ = errors(401, 403, 404, 422, 503)
_FAILED = {409: {"model": ErrorResponse,
                 "description": "The batch failed as a whole (`job_failed`); the message says "
                                "why"}}


def _links(job_id: str) -> dict[str, str]:
    return {"self": f"/v1/batches/{job_id}", "results": f"/v1/batches/{job_id}/results"}


def _safe_name(name: str | None) -> str:
    base = Path(name or "upload").name
    return re.sub(r"[^A-Za-z0-9._-]", "_", base)[:120] or "upload"


def _save_upload(source: BinaryIO, target: Path) -> str:
    """Copy the spooled upload to its job folder; returns its sha256 (for idempotency)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


@router.post("", response_model=BatchCreated, status_code=202, responses=_CREATED,
             summary="Score a lab export (CSV, Parquet, Flow-RBC HDF5, or a zip of FCS files)",
             description="Multipart field `file`. Default CSV header: `patient_id,sample_id,"
                         "volume_fl,hemoglobin_pg`, one row per cell. Returns a job id at once; "
                         "unreadable samples are reported per row and do not fail the batch.")
async def create_batch(response: Response, state: StateDep, principal: PredictScope,
                       file: Annotated[UploadFile, File(description="The lab export")],
                       idempotency_key: IdempotencyKey = None) -> BatchCreated:
    job_id = new_id()
    folder = Path(state.settings.upload_dir) / job_id
    path = folder / _safe_name(file.filename)
    try:
        sha = await run_in_threadpool(_save_upload, file.file, path)
        if path.stat().st_size == 0:
            raise ApiError(422, "empty", "the uploaded file is empty", "body.file")
        try:
            fmt = detect_format(path)
            if fmt in ("csv", "parquet"):  # a missing column is known from the header: say so now
                await run_in_threadpool(check_header, path, fmt=fmt)
        except IngestionError as exc:
            message = exc.message.replace(str(path), _safe_name(file.filename))
            raise ApiError(422, exc.kind, message, "body.file") from None
        digest = request_digest(sha.encode())
        existing = _replay(state, principal, idempotency_key, digest)
        if existing is not None:
            shutil.rmtree(folder, ignore_errors=True)
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
            return BatchCreated(id=existing.id, status=existing.status,
                                links=_links(existing.id))
        with transaction(state.engine) as conn:
            job_store.create_job(conn, job_id=job_id, filename=_safe_name(file.filename),
                                 fmt=fmt, upload_path=str(path),
                                 principal=principal.fingerprint, tenant=principal.tenant)
            if idempotency_key is not None:
                save_idempotency(conn, IdempotencyRecord(
                    principal.tenant, principal.fingerprint, idempotency_key, digest, "batch",
                    job_id))
            record_audit(conn, principal=principal.fingerprint, tenant=principal.tenant,
                         action="create", resource="batch", resource_id=job_id)
    except IntegrityError:
        shutil.rmtree(folder, ignore_errors=True)
        existing = _replay(state, principal, idempotency_key, request_digest(sha.encode()))
        if existing is None:
            raise
        response.status_code = 200
        return BatchCreated(id=existing.id, status=existing.status, links=_links(existing.id))
    except CommitOutcomeUnknown:
        raise  # the job may exist and need its upload: the orphan sweep removes it if not
    except BaseException:  # nothing half-stored: no job row, no upload (a full disk included)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    response.headers["Location"] = f"/v1/batches/{job_id}"
    return BatchCreated(id=job_id, status="queued", links=_links(job_id))


def _replay(state: StateDep, principal: Principal, key: str | None,
            digest: str) -> job_store.JobRow | None:
    with state.engine.begin() as conn:
        job_id = replayed_id(conn, principal.tenant, key, digest, "batch")
        return None if job_id is None else job_store.get_job(conn, job_id,
                                                             tenant=principal.tenant)


def _load(conn: ConnectionDep, job_id: str, principal: Principal, state: StateDep,
          request: Request) -> job_store.JobRow:
    """The job if the caller's tenant may read it; another tenant's is a plain 404 (audited,
    as every 404 here is)."""
    job = job_store.get_job(conn, job_id, tenant=principal.read_tenant)
    if job is None:
        raise audited_not_found(state, request, principal, resource="batch", resource_id=job_id,
                                message=f"batch {job_id!r} does not exist",
                                field="path.batch_id")
    return job


@router.get("/{batch_id}", response_model=BatchStatus, responses=_READ,
            summary="Job status and progress")
def get_batch(batch_id: str, request: Request, state: StateDep, conn: ConnectionDep,
              principal: ReadScope) -> BatchStatus:
    job = _load(conn, batch_id, principal, state, request)
    record_audit(conn, principal=principal.fingerprint, tenant=principal.tenant, action="read",
                 resource="batch", resource_id=batch_id)
    return BatchStatus(id=job.id, status=job.status, filename=job.filename,  # type: ignore[arg-type]
                       created_at=job.created_at, updated_at=job.updated_at,
                       total=job.total_items, done=job.done_items, errors=job.error_items,
                       error=None if job.error is None else without_paths(job.error),
                       links=_links(job.id))


@router.get("/{batch_id}/results", response_class=Response,
            responses={**BATCH_RESULTS, **_READ, **errors(406), **_FAILED},
            summary="Per-sample results in upload order (CSV or JSON), streamed",
            description="CSV by default; JSON with `?format=json` or `Accept: application/json`"
                        " (`?format=` wins over `Accept`; an `Accept` naming neither is a 406)."
                        " A job that failed as a whole answers 409 with its reason.")
def get_batch_results(batch_id: str, request: Request, state: StateDep, conn: ConnectionDep,
                      principal: ReadScope,
                      format: Annotated[Literal["csv", "json"] | None, Query(
                          description="csv or json; overrides the Accept header")] = None,
                      ) -> StreamingResponse:
    job = _load(conn, batch_id, principal, state, request)
    chosen = format or negotiate(request.headers.get("accept"))
    record_audit(conn, principal=principal.fingerprint, tenant=principal.tenant,
                 action="results", resource="batch", resource_id=batch_id)
    if job.status == "failed":
        raise ApiError(409, "job_failed", f"batch {batch_id!r} failed: {job.error}",
                       "path.batch_id")
    rows = _rows(state, batch_id)
    headers = {"X-Job-Status": job.status, "Vary": "Accept"}
    if chosen == "json":
        return StreamingResponse(_json_stream(rows), media_type="application/json",
                                 headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="{batch_id}.csv"'
    return StreamingResponse(csv_lines(rows), media_type="text/csv", headers=headers)


def _rows(state: StateDep, job_id: str) -> Iterator[dict[str, Any]]:
    """Each processed sample as a result row (the same mapper as `hct score`)."""
    with state.engine.connect() as conn:
        for r in job_store.iter_results(conn, job_id):
            if r.prediction is None:
                yield error_row(r.seq, r.patient_id, r.sample_id, r.error_kind or "error",
                                r.error_message or "")
            else:
                yield result_row(r.seq, r.prediction)


def _json_stream(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    yield "["
    for i, row in enumerate(rows):
        yield ("," if i else "") + json.dumps(row)
    yield "]"
