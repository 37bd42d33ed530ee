"""`/v1/cells`: the cells of one uploaded FCS file for the web page's plots (downsampled,
histograms, indices) and the training reference cloud. Read-only: nothing is stored."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from fastapi.concurrency import run_in_threadpool

from ingestion.cells import LabValues
from ingestion.errors import IngestionError
from service.api import cell_view
from service.api.dependencies import PrincipalDep, StateDep
from service.api.errors import ApiError
from service.api.fcs_upload import read_fcs_upload
from service.api.schemas import ErrorResponse
from service.prediction.notice import NOTICE

router = APIRouter(prefix="/v1/cells", tags=["cells"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 413, 422)}


@router.post("/fcs", responses=_ERRORS,
             summary="Cells of one FCS file for plotting (downsampled; not stored)")
async def cells_from_fcs(state: StateDep, _principal: PrincipalDep,
                         file: Annotated[UploadFile, File(description="One FCS file")],
                         ) -> dict[str, Any]:
    data = await file.read()
    if not data:
        raise ApiError(422, "empty", "the uploaded file is empty", "body.file")
    stem = (file.filename or "").rsplit("/", 1)[-1].rsplit(".", 1)[0] or None
    try:
        cellset = await run_in_threadpool(read_fcs_upload, data, None, None, LabValues(),
                                          state.settings.min_cells, stem,
                                          state.settings.max_cells)
    except IngestionError as exc:
        exc.field = "file"
        raise
    return {**await run_in_threadpool(cell_view.sample_view, cellset), "notice": NOTICE}


@router.get("/reference", responses=_ERRORS,
            summary="Reference cells from the synthetic training cohort generator")
async def reference_cells(_principal: PrincipalDep) -> dict[str, Any]:
    return {**await run_in_threadpool(cell_view.training_reference), "notice": NOTICE}
