"""`/v1/cells`: the cells of one uploaded FCS file for the web page's plots (downsampled,
histograms, indices) and the training reference cloud. Read-only: nothing is stored, so the
`read` scope is enough; a plotted upload is audited (it may carry a patient's cells)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from ingestion.cells import LabValues
from ingestion.errors import IngestionError
from service.api import cell_view
from service.api.dependencies import ReadScope, StateDep
from service.api.errors import ApiError
from service.api.fcs_upload import read_fcs_upload
from service.api.responses import errors
from service.db.audit import record_audit
from service.prediction.notice import NOTICE
from service.tenancy import Principal

router = APIRouter(prefix="/v1/cells", tags=["cells"])


@router.post("/fcs", responses=errors(400, 401, 403, 413, 422, 503),
             summary="Cells of one FCS file for plotting (downsampled; not stored)")
async def cells_from_fcs(state: StateDep, principal: ReadScope,
                         file: Annotated[UploadFile, File(description="One FCS file")],
                         patient_id: Annotated[str | None, Form(max_length=128)] = None,
                         sample_id: Annotated[str | None, Form(max_length=128)] = None,
                         ) -> dict[str, Any]:
    # ids as for /v1/predictions/fcs: given here they win over the file's $SRC / $SMNO
    data = await file.read()
    if not data:
        raise ApiError(422, "empty", "the uploaded file is empty", "body.file")
    stem = (file.filename or "").rsplit("/", 1)[-1].rsplit(".", 1)[0] or None
    try:
        cellset = await run_in_threadpool(read_fcs_upload, data, patient_id, sample_id, LabValues(),
                                          state.settings.min_cells, stem,
                                          state.settings.max_cells)
    except IngestionError as exc:
        exc.field = "file"
        raise
    await run_in_threadpool(_audit_plot, state.engine, principal, cellset.sample_id)
    return {**await run_in_threadpool(cell_view.sample_view, cellset), "notice": NOTICE}


def _audit_plot(engine: Engine, principal: Principal, sample_id: str) -> None:
    """Who looked at which sample's cells (the patient id stays in the file, not the audit)."""
    with engine.begin() as conn:
        record_audit(conn, principal=principal.fingerprint, tenant=principal.tenant,
                     action="plot", resource="cells", resource_id=sample_id[:128])


@router.get("/reference", responses=errors(401, 403),
            summary="Reference cells from the synthetic training cohort generator")
async def reference_cells(_principal: ReadScope) -> dict[str, Any]:
    # synthetic cells, no patient's: not audited
    return {**await run_in_threadpool(cell_view.training_reference), "notice": NOTICE}
