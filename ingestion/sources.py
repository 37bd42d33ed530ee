"""One entry point for every supported file: FCS, CSV/Parquet lab export, Flow-RBC HDF5, or a
zip of FCS files. Callers (CLI, batch jobs) get cell sets or per-sample errors, never a format.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from ingestion.archive import MAX_ZIP_MEMBERS
from ingestion.bounds import DEFAULT_MAX_CELLS, MAX_MEMBER_BYTES
from ingestion.cells import DEFAULT_MIN_CELLS, CellSet
from ingestion.errors import IngestionError, SampleError

SourceFormat = Literal["fcs", "csv", "parquet", "hdf5", "zip"]

_MAGIC: tuple[tuple[bytes, SourceFormat], ...] = (
    (b"FCS", "fcs"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"PAR1", "parquet"),
    (b"PK\x03\x04", "zip"),
)
_SUFFIX: dict[str, SourceFormat] = {
    ".fcs": "fcs", ".lmd": "fcs", ".csv": "csv", ".txt": "csv", ".parquet": "parquet",
    ".pq": "parquet", ".h5": "hdf5", ".hdf5": "hdf5", ".zip": "zip",
}
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
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    fmt = _SUFFIX.get(path.suffix.lower())
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
        from ingestion.fcs import read_fcs

        yield read_fcs(path, min_cells=min_cells, max_cells=max_cells)
    elif fmt in ("csv", "parquet"):
        from ingestion.tabular import iter_table

        yield from iter_table(path, fmt=fmt, min_cells=min_cells, max_cells=max_cells)
    elif fmt == "hdf5":
        from ingestion.flowrbc import iter_flowrbc

        yield from iter_flowrbc(path, min_cells=min_cells, max_cells=max_cells)
    else:
        from ingestion.archive import iter_fcs_zip

        yield from iter_fcs_zip(path, min_cells=min_cells, max_cells=max_cells)
