"""One entry point for every supported file: FCS, CSV/Parquet lab export, Flow-RBC HDF5, or a
zip of FCS files. Callers (CLI, batch jobs) get cell sets or per-sample errors, never a format.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ingestion.archive import MAX_ZIP_MEMBERS
from ingestion.bounds import DEFAULT_MAX_CELLS, MAX_MEMBER_BYTES
from ingestion.cells import DEFAULT_MIN_CELLS, CellSet
from ingestion.errors import IngestionError, SampleError
from ingestion.formats import SourceFormat, format_from_magic, format_from_suffix

__all__ = ["MAX_MEMBER_BYTES", "MAX_ZIP_MEMBERS", "SourceFormat", "detect_format",
           "iter_source"]


def detect_format(path: str | Path) -> SourceFormat:
    """Format from the file's first bytes, falling back to its suffix (CSV has no magic)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise IngestionError(f"cannot open ({exc.strerror})", kind="unreadable",
                             field="file") from None
    if not head:
        raise IngestionError("file is empty", kind="empty", field="file")
    fmt = format_from_magic(head)
    if fmt is not None:
        return fmt
    fmt = format_from_suffix(path)
    if fmt in (None, "fcs", "hdf5", "parquet", "zip"):
        raise IngestionError(
            f"not a recognised file (first bytes {head[:8]!r}); expected FCS, CSV, "
            "Parquet, Flow-RBC HDF5 or a zip of FCS files",
            kind="unknown_format", field="file",
        )
    return fmt


def iter_source(
    path: str | Path,
    *,
    fmt: SourceFormat | None = None,
    min_cells: int = DEFAULT_MIN_CELLS,
    max_cells: int = DEFAULT_MAX_CELLS,
) -> Iterator[CellSet | SampleError]:
    """Yield every sample in a file. File-level failures raise `IngestionError`; a bad sample
    inside a multi-sample file is yielded as a `SampleError` and reading goes on. A sample
    over `max_cells` is refused from its header where the format has one, else as it streams.
    """
    fmt = fmt or detect_format(path)
    if fmt == "fcs":
        from ingestion.fcs.reader import read_fcs

        yield read_fcs(path, min_cells=min_cells, max_cells=max_cells)
    elif fmt in ("csv", "parquet"):
        from ingestion.tables.long_format import iter_table

        yield from iter_table(path, fmt=fmt, min_cells=min_cells, max_cells=max_cells)
    elif fmt == "hdf5":
        from ingestion.flowrbc import iter_flowrbc

        yield from iter_flowrbc(path, min_cells=min_cells, max_cells=max_cells)
    else:
        from ingestion.archive import iter_fcs_zip

        yield from iter_fcs_zip(path, min_cells=min_cells, max_cells=max_cells)
