"""`/v1/predictions`: score one sample (JSON or FCS upload), read it back, list a patient's
history, and export it as a FHIR Observation or an HL7 v2 ORU^R01 message.
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
    PredictScope,
    ReadScope,
    StateDep,
)
from service.api.errors import ApiError
from service.api.fcs_upload import read_fcs_upload
from service.api.idempotency import IdempotencyKey, request_digest
from service.api.not_found import audited_not_found
from service.api.responses import (
    FHIR_OBSERVATION,
    HL7_MESSAGE,
    FhirJSONResponse,
    errors,
    replayed,
)
from service.api.sample_input import cellset_from_request
from service.api.schemas import MAX_OFFSET, PRINTABLE, PredictionPage, PredictionResponse
from service.collection_time import parse
from service.components import Components
from service.db.audit import record_audit
from service.db.predictions import get_prediction as load_prediction
from service.db.predictions import list_predictions as load_page
from service.jobs.store import get_job
from service.prediction import fhir, hl7
from service.prediction.mapper import rest_body
from service.prediction.notice import NOTICE
from service.prediction.prediction import Prediction
from service.tenancy import Principal

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])
_CREATED = {**replayed(PredictionResponse, "An idempotent retry: the prediction the first "
                                           "request created, byte-identical"),
            **errors(401, 403, 409, 413, 422, 503, 507)}
_READ = errors(401, 403, 404, 422, 503)
_HCT, _RBC, _AGE = (LAB_BOUNDS[k] for k in ("measured_hematocrit_pct", "rbc_count_e12_per_l",
                                            "age_years"))


def _respond(response: Response, record: Prediction, created: bool) -> PredictionResponse:
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/v1/predictions/{record.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return PredictionResponse.model_validate(rest_body(record))


@router.post("", response_model=PredictionResponse, status_code=201, responses=_CREATED,
             summary="Predict hematocrit from one sample's cells",
             description=f"Scores one sample with the bundled Deep Sets++ model and stores the "
                         f"result beside its clinical baselines. {NOTICE}",
             openapi_extra=PREDICTION_REQUEST_OPENAPI)
async def create_prediction(principal: PredictScope, body: PredictionBody, response: Response,
                            state: StateDep,
                            idempotency_key: IdempotencyKey = None) -> PredictionResponse:
    # the key and its scope are checked before the body is parsed (parameter order)
    cellset = cellset_from_request(body, max_cells=state.settings.max_cells,
                                   min_cells=state.settings.min_cells,
                                   zone=state.settings.local_zone)
    # The digest only matters for a retry: no key, no re-serialisation of 1,000s of cells.
    digest = "" if idempotency_key is None else request_digest(body.model_dump_json().encode())
    record, created = await state.online.predict(cellset, principal=principal, source="api",
                                                 key=idempotency_key, digest=digest)
    return _respond(response, record, created)


@router.post("/fcs", response_model=PredictionResponse, status_code=201,
             responses={**_CREATED, **errors(400)},
             summary="Predict hematocrit from one FCS file",
             description=f"Multipart upload of one FCS 2.0/3.0/3.1 file (field `file`). {NOTICE}")
async def create_prediction_from_fcs(
    response: Response, state: StateDep, principal: PredictScope,
    file: Annotated[UploadFile, File(description="One FCS file for one sample")],
    patient_id: Annotated[str | None, Form(max_length=128, pattern=PRINTABLE)] = None,
    sample_id: Annotated[str | None, Form(max_length=128, pattern=PRINTABLE)] = None,
    measured_hematocrit_pct: Annotated[float | None, Form(gt=_HCT.low, le=_HCT.high)] = None,
    rbc_count_e12_per_l: Annotated[float | None, Form(gt=_RBC.low, le=_RBC.high)] = None,
    sex: Annotated[str | None, Form(pattern="^[FM]$")] = None,
    age_years: Annotated[float | None, Form(ge=_AGE.low, le=_AGE.high)] = None,
    collected_at: Annotated[str | None, Form(
        max_length=64, description="ISO 8601 collection time; without an offset it is read "
                                   "in HCT_LOCAL_TIMEZONE")] = None,
    idempotency_key: IdempotencyKey = None,
) -> PredictionResponse:
    data = await file.read()
    if not data:
        raise ApiError(422, "empty", "the uploaded file is empty", "body.file")
    collected = parse(collected_at, state.settings.local_zone) if collected_at else None
    lab = LabValues(measured_hematocrit_pct=measured_hematocrit_pct,
                    rbc_count_e12_per_l=rbc_count_e12_per_l, sex=sex,  # type: ignore[arg-type]
                    age_years=age_years, collected_at=collected)
    stem = (file.filename or "").rsplit("/", 1)[-1].rsplit(".", 1)[0] or None
    try:
        cellset = await run_in_threadpool(
            read_fcs_upload, data, patient_id, sample_id, lab, state.settings.min_cells, stem,
            state.settings.max_cells)
    except IngestionError as exc:
        exc.field = "file"  # the form field; the message names the FCS keyword or segment
        raise
    form = f"{patient_id}|{sample_id}|{measured_hematocrit_pct}|{rbc_count_e12_per_l}|{sex}|" \
           f"{age_years}" + ("" if collected_at is None else f"|{collected_at}")
    digest = "" if idempotency_key is None else request_digest(data, form.encode())
    record, created = await state.online.predict(cellset, principal=principal, source="fcs",
                                                 key=idempotency_key, digest=digest)
    return _respond(response, record, created)


@router.get("/{prediction_id}", response_model=PredictionResponse, responses=_READ,
            summary="Read one stored prediction")
def get_prediction(prediction_id: str, request: Request, state: StateDep, conn: ConnectionDep,
                   principal: ReadScope) -> PredictionResponse:
    record = _load(conn, prediction_id, principal, state, request)
    record_audit(conn, principal=principal.fingerprint, tenant=principal.tenant, action="read",
                 resource="prediction", resource_id=prediction_id)
    return PredictionResponse.model_validate(rest_body(record))


@router.get("", response_model=PredictionPage, responses=errors(401, 403, 422, 503),
            summary="List predictions, newest first (filter by patient)")
def list_predictions(conn: ConnectionDep, principal: ReadScope,
                     patient_id: Annotated[str | None, Query(max_length=128,
                                                              pattern=PRINTABLE)] = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
                     ) -> PredictionPage:
    records, total = load_page(conn, tenant=principal.read_tenant, patient_id=patient_id,
                               limit=limit, offset=offset)
    # Which patient was searched goes to the audit table (internal, access-controlled),
    # never to the logs.
    detail = json.dumps({"patient_id": patient_id, "limit": limit, "offset": offset,
                         "returned": len(records), "total": total})
    record_audit(conn, principal=principal.fingerprint, tenant=principal.tenant,
                 action="search" if patient_id is not None else "list", resource="prediction",
                 resource_id=None, detail=detail)
    return PredictionPage.model_validate({"items": [rest_body(r) for r in records],
                                          "total": total, "limit": limit, "offset": offset})


# response_class=Response: no implied application/json; what is sent is listed explicitly
@router.get("/{prediction_id}/fhir", response_class=Response,
            responses={**FHIR_OBSERVATION, **_READ},
            summary="A stored prediction as a FHIR R4 Observation (LOINC 20570-8)")
def get_prediction_fhir(prediction_id: str, request: Request, state: StateDep,
                        conn: ConnectionDep, principal: ReadScope) -> Response:
    record = _load(conn, prediction_id, principal, state, request)
    record_audit(conn, principal=principal.fingerprint, tenant=principal.tenant, action="fhir",
                 resource="prediction", resource_id=prediction_id)
    body = fhir.observation(record, str(request.base_url).rstrip("/"))
    return FhirJSONResponse(json.dumps(body))


# response_class=Response: no implied application/json; what is sent is listed explicitly
@router.get("/{prediction_id}/hl7", response_class=Response,
            responses={**HL7_MESSAGE, **_READ},
            summary="A stored prediction as an HL7 v2.5.1 ORU^R01 message (ER7)")
def get_prediction_hl7(prediction_id: str, request: Request, conn: ConnectionDep,
                       principal: ReadScope, state: StateDep) -> Response:
    record = _load(conn, prediction_id, principal, state, request)
    record_audit(conn, principal=principal.fingerprint, tenant=principal.tenant, action="hl7",
                 resource="prediction", resource_id=prediction_id)
    text = hl7.message_for(record, processing_id=hl7.processing_id(state.settings))
    return Response(text, media_type=hl7.MEDIA_TYPE)


def _load(conn: Any, prediction_id: str, principal: Principal, state: Components,
          request: Request) -> Prediction:
    """The prediction if the caller's tenant may read it; another tenant's is a plain 404
    (audited, as every 404 here is)."""
    record = load_prediction(conn, prediction_id, tenant=principal.read_tenant)
    if record is None:
        message = f"prediction {prediction_id!r} does not exist"
        # only on the 404 path: one more lookup, tenant-filtered like the prediction's
        if get_job(conn, prediction_id, tenant=principal.read_tenant) is not None:
            message += (f"; {prediction_id!r} is a batch id: see /v1/batches/{prediction_id}, "
                        "whose results give each sample's prediction_id")
        raise audited_not_found(state, request, principal, resource="prediction",
                                resource_id=prediction_id, message=message,
                                field="path.prediction_id")
    return record
