"""`/v1/batches`: upload a lab export, get a job id at once, poll it, stream its results."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

from fastapi import APIRouter, File, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import IntegrityError

from ingestion.errors import IngestionError
from ingestion.sources import detect_format
from service import job_store, store
from service.deps import ConnectionDep, PrincipalDep, StateDep
from service.errors import ApiError
from service.idempotency import replayed_id, request_digest
from service.routes.predictions import IdempotencyKey
from service.schemas import BatchCreated, BatchStatus, ErrorResponse

router = APIRouter(prefix="/v1/batches", tags=["batches"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 413, 422)}
CSV_COLUMNS = ("seq", "patient_id", "sample_id", "status", "prediction_id", "hematocrit_pct",
               "flag", "population_mean", "cbc_indices", "moments", "analyzer_formula",
               "measured_hematocrit_pct", "mcv_fl", "rdw_cv_pct", "error_kind", "error_message")


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


@router.post("", response_model=BatchCreated, status_code=202, responses=_ERRORS,
             summary="Score a lab export (CSV, Parquet, Flow-RBC HDF5, or a zip of FCS files)",
             description="Multipart field `file`. Default CSV header: `patient_id,sample_id,"
                         "volume_fl,hemoglobin_pg`, one row per cell. Returns a job id at once; "
                         "unreadable samples are reported per row and do not fail the batch.")
async def create_batch(response: Response, state: StateDep, principal: PrincipalDep,
                       file: Annotated[UploadFile, File(description="The lab export")],
                       idempotency_key: IdempotencyKey = None) -> BatchCreated:
    job_id = store.new_id()
    folder = Path(state.settings.upload_dir) / job_id
    path = folder / _safe_name(file.filename)
    try:
        sha = await run_in_threadpool(_save_upload, file.file, path)
        if path.stat().st_size == 0:
            raise ApiError(422, "empty", "the uploaded file is empty", "body.file")
        try:
            fmt = detect_format(path)
        except IngestionError as exc:
            raise ApiError(422, exc.kind, exc.message, "body.file") from None
        digest = request_digest(sha.encode())
        existing = _replay(state, principal, idempotency_key, digest)
        if existing is not None:
            shutil.rmtree(folder, ignore_errors=True)
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
            return BatchCreated(id=existing.id, status=existing.status,
                                links=_links(existing.id))
        with state.engine.begin() as conn:
            job_store.create_job(conn, job_id=job_id, filename=_safe_name(file.filename),
                                 fmt=fmt, upload_path=str(path), principal=principal)
            if idempotency_key is not None:
                store.save_idempotency(conn, principal, idempotency_key, digest, "batch", job_id)
            store.record_audit(conn, principal=principal, action="create", resource="batch",
                               resource_id=job_id)
    except IntegrityError:
        shutil.rmtree(folder, ignore_errors=True)
        existing = _replay(state, principal, idempotency_key, request_digest(sha.encode()))
        if existing is None:
            raise
        response.status_code = 200
        return BatchCreated(id=existing.id, status=existing.status, links=_links(existing.id))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    response.headers["Location"] = f"/v1/batches/{job_id}"
    return BatchCreated(id=job_id, status="queued", links=_links(job_id))


def _replay(state: StateDep, principal: str, key: str | None,
            digest: str) -> job_store.JobRow | None:
    with state.engine.begin() as conn:
        job_id = replayed_id(conn, principal, key, digest, "batch")
        return None if job_id is None else job_store.get_job(conn, job_id)


def _load(conn: ConnectionDep, job_id: str) -> job_store.JobRow:
    job = job_store.get_job(conn, job_id)
    if job is None:
        raise ApiError(404, "not_found", f"batch {job_id!r} does not exist", "path.batch_id")
    return job


@router.get("/{batch_id}", response_model=BatchStatus, responses=_ERRORS,
            summary="Job status and progress")
def get_batch(batch_id: str, conn: ConnectionDep, principal: PrincipalDep) -> BatchStatus:
    job = _load(conn, batch_id)
    store.record_audit(conn, principal=principal, action="read", resource="batch",
                       resource_id=batch_id)
    return BatchStatus(id=job.id, status=job.status, filename=job.filename,  # type: ignore[arg-type]
                       created_at=job.created_at, updated_at=job.updated_at,
                       total=job.total_items, done=job.done_items, errors=job.error_items,
                       error=job.error, links=_links(job.id))


@router.get("/{batch_id}/results", responses=_ERRORS,
            summary="Per-sample results in upload order (CSV or JSON), streamed")
def get_batch_results(batch_id: str, state: StateDep, conn: ConnectionDep,
                      principal: PrincipalDep,
                      format: Annotated[Literal["csv", "json"], Query()] = "csv",
                      ) -> StreamingResponse:
    job = _load(conn, batch_id)
    store.record_audit(conn, principal=principal, action="results", resource="batch",
                       resource_id=batch_id)
    rows = _rows(state, batch_id)
    headers = {"X-Job-Status": job.status}
    if format == "json":
        return StreamingResponse(_json_stream(rows), media_type="application/json",
                                 headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="{batch_id}.csv"'
    return StreamingResponse(_csv_stream(rows), media_type="text/csv", headers=headers)


def _rows(state: StateDep, job_id: str) -> Iterator[dict[str, Any]]:
    with state.engine.connect() as conn:
        for r in job_store.iter_results(conn, job_id):
            baselines = r.pop("baselines") or {}
            indices = r.pop("indices") or {}
            lab = r.pop("lab") or {}
            yield {**r, **{k: baselines.get(k) for k in
                           ("population_mean", "cbc_indices", "moments", "analyzer_formula")},
                   "measured_hematocrit_pct": lab.get("measured_hematocrit_pct"),
                   "mcv_fl": indices.get("mcv_fl"), "rdw_cv_pct": indices.get("rdw_cv_pct")}


def _csv_stream(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for i, row in enumerate(rows):
        writer.writerow(row)
        if i % 200 == 199:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _json_stream(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    yield "["
    for i, row in enumerate(rows):
        yield ("," if i else "") + json.dumps({k: row.get(k) for k in CSV_COLUMNS})
    yield "]"
