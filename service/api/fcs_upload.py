"""One uploaded FCS file → one `CellSet`, shared by the routes that accept an FCS upload."""

from __future__ import annotations

from ingestion.cells import CellSet, LabValues


def read_fcs_upload(data: bytes, patient_id: str | None, sample_id: str | None,
                    lab: LabValues, min_cells: int, stem: str | None,
                    max_cells: int) -> CellSet:
    """Read the upload (the file name's stem is the sample id when the file names none)."""
    from ingestion.fcs.reader import read_fcs

    return read_fcs(data, patient_id=patient_id, sample_id=sample_id, lab=lab,
                    min_cells=min_cells, default_sample_id=stem, max_cells=max_cells)
