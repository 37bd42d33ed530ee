"""`/v1/predictions`: score one sample (JSON or FCS upload), read it back, list a patient's
history, and export it as a FHIR Observation.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from ingestion.cells import LAB_BOUNDS, LabValues
from ingestion.errors import IngestionError
from service.api.dependencies import (
    PREDICTION_REQUEST_OPENAPI,
    ConnectionDep,
    PredictionBody,
    PrincipalDep,
    StateDep,
)
from service.api.errors import ApiError
from service.api.fcs_upload import read_fcs_upload
from service.api.idempotency import IdempotencyKey, request_digest
from service.api.sample_input import cellset_from_request
from service.api.schemas import ErrorResponse, PredictionPage, PredictionResponse
from service.db.audit import record_audit
from service.db.predictions import get_prediction as load_prediction
from service.db.predictions import list_predictions as load_page
from service.jobs.store import get_job
from service.prediction import fhir, hl7
from service.prediction.mapper import rest_body
from service.prediction.notice import NOTICE
from service.prediction.prediction import Prediction

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 413, 422, 503)}
_HCT, _RBC, _AGE = (LAB_BOUNDS[k] for k in ("measured_hematocrit_pct", "rbc_count_e12_per_l",
                                            "age_years"))


def _respond(response: Response, record: Prediction, created: bool) -> PredictionResponse:
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/v1/predictions/{record.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return PredictionResponse.model_validate(rest_body(record))


@router.post("", response_model=PredictionResponse, status_code=201, responses=_ERRORS,
             summary="Predict hematocrit from one sample's cells",
             description=f"Scores one sample with the bundled Deep Sets++ model and stores the "
                         f"result beside its clinical baselines. {NOTICE}",
             openapi_extra=PREDICTION_REQUEST_OPENAPI)
async def create_prediction(body: PredictionBody, response: Response, state: StateDep,
                            principal: PrincipalDep,
                            idempotency_key: IdempotencyKey = None) -> PredictionResponse:
    cellset = cellset_from_request(body, max_cells=state.settings.max_cells,
                                   min_cells=state.settings.min_cells)
    # The digest only matters for a retry: no key, no re-serialisation of 1,000s of cells.
    digest = "" if idempotency_key is None else request_digest(body.model_dump_json().encode())
    record, created = await state.online.predict(cellset, principal=principal, source="api",
                                                 key=idempotency_key, digest=digest)
    return _respond(response, record, created)


@router.post("/fcs", response_model=PredictionResponse, status_code=201, responses=_ERRORS,
             summary="Predict hematocrit from one FCS file",
             description=f"Multipart upload of one FCS 2.0/3.0/3.1 file (field `file`). {NOTICE}")
async def create_prediction_from_fcs(
    response: Response, state: StateDep, principal: PrincipalDep,
    file: Annotated[UploadFile, File(description="One FCS file for one sample")],
    patient_id: Annotated[str | None, Form(max_length=128)] = None,
    sample_id: Annotated[str | None, Form(max_length=128)] = None,
    measured_hematocrit_pct: Annotated[float | None, Form(gt=_HCT.low, le=_HCT.high)] = None,
    rbc_count_e12_per_l: Annotated[float | None, Form(gt=_RBC.low, le=_RBC.high)] = None,
    sex: Annotated[str | None, Form(pattern="^[FM]$")] = None,
    age_years: Annotated[float | None, Form(ge=_AGE.low, le=_AGE.high)] = None,
    idempotency_key: IdempotencyKey = None,
) -> PredictionResponse:
    data = await file.read()
    if not data:
        raise ApiError(422, "empty", "the uploaded file is empty", "body.file")
    lab = LabValues(measured_hematocrit_pct=measured_hematocrit_pct,
                    rbc_count_e12_per_l=rbc_count_e12_per_l, sex=sex,  # type: ignore[arg-type]
                    age_years=age_years)
    stem = (file.filename or "").rsplit("/", 1)[-1].rsplit(".", 1)[0] or None
    try:
        cellset = await run_in_threadpool(
            read_fcs_upload, data, patient_id, sample_id, lab, state.settings.min_cells, stem,
            state.settings.max_cells)
    except IngestionError as exc:
        exc.field = "file"  # the form field; the message names the FCS keyword or segment
        raise
    form = f"{patient_id}|{sample_id}|{measured_hematocrit_pct}|{rbc_count_e12_per_l}|{sex}|" \
           f"{age_years}"
    digest = "" if idempotency_key is None else request_digest(data, form.encode())
    record, created = await state.online.predict(cellset, principal=principal, source="fcs",
                                                 key=idempotency_key, digest=digest)
    return _respond(response, record, created)


@router.get("/{prediction_id}", response_model=PredictionResponse, responses=_ERRORS,
            summary="Read one stored prediction")
def get_prediction(prediction_id: str, conn: ConnectionDep,
                   principal: PrincipalDep) -> PredictionResponse:
    record = _load(conn, prediction_id)
    record_audit(conn, principal=principal, action="read", resource="prediction",
                 resource_id=prediction_id)
    return PredictionResponse.model_validate(rest_body(record))


@router.get("", response_model=PredictionPage, responses=_ERRORS,
            summary="List predictions, newest first (filter by patient)")
def list_predictions(conn: ConnectionDep, principal: PrincipalDep,
                     patient_id: Annotated[str | None, Query(max_length=128)] = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     offset: Annotated[int, Query(ge=0)] = 0) -> PredictionPage:
    records, total = load_page(conn, patient_id=patient_id, limit=limit, offset=offset)
    record_audit(conn, principal=principal, action="list", resource="prediction",
                 resource_id=None, detail=f"{len(records)} of {total}")
    return PredictionPage.model_validate({"items": [rest_body(r) for r in records],
                                          "total": total, "limit": limit, "offset": offset})


@router.get("/{prediction_id}/fhir", responses=_ERRORS,
            summary="A stored prediction as a FHIR R4 Observation (LOINC 20570-8)")
def get_prediction_fhir(prediction_id: str, request: Request, conn: ConnectionDep,
                        principal: PrincipalDep) -> Response:
    record = _load(conn, prediction_id)
    record_audit(conn, principal=principal, action="fhir", resource="prediction",
                 resource_id=prediction_id)
    body = fhir.observation(record, str(request.base_url).rstrip("/"))
    return Response(json.dumps(body), media_type="application/fhir+json")


@router.get("/{prediction_id}/hl7", responses=_ERRORS,
            summary="A stored prediction as an HL7 v2.5.1 ORU^R01 message (ER7)",
            response_class=Response)
def get_prediction_hl7(prediction_id: str, conn: ConnectionDep, principal: PrincipalDep,
                       state: StateDep) -> Response:
    record = _load(conn, prediction_id)
    record_audit(conn, principal=principal, action="hl7", resource="prediction",
                 resource_id=prediction_id)
    text = hl7.message_for(record, processing_id=hl7.processing_id(state.settings))
    return Response(text, media_type=hl7.MEDIA_TYPE)


def _load(conn: Any, prediction_id: str) -> Prediction:
    record = load_prediction(conn, prediction_id)
    if record is None:
        message = f"prediction {prediction_id!r} does not exist"
        if get_job(conn, prediction_id) is not None:  # only on the 404 path: one more lookup
            message += (f"; {prediction_id!r} is a batch id: see /v1/batches/{prediction_id}, "
                        "whose results give each sample's prediction_id")
        raise ApiError(404, "not_found", message, "path.prediction_id")
    return record
