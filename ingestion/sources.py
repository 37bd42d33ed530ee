"""One entry point for every supported file: FCS, CSV/Parquet lab export, Flow-RBC HDF5, or a
zip of FCS files. Callers (CLI, batch jobs) get cell sets or per-sample errors, never a format.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

from ingestion.cells import DEFAULT_MIN_CELLS, CellSet
from ingestion.errors import IngestionError, SampleError
from ingestion.formats import SourceFormat, format_from_magic, format_from_suffix

MAX_ZIP_MEMBERS = 10_000
MAX_ZIP_MEMBER_BYTES = 512 * 1024 * 1024


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
    path: str | Path, *, fmt: SourceFormat | None = None, min_cells: int = DEFAULT_MIN_CELLS
) -> Iterator[CellSet | SampleError]:
    """Yield every sample in a file. File-level failures raise `IngestionError`; a bad sample
    inside a multi-sample file is yielded as a `SampleError` and reading goes on.
    """
    fmt = fmt or detect_format(path)
    if fmt == "fcs":
        from ingestion.fcs.reader import read_fcs

        yield read_fcs(path, min_cells=min_cells)
    elif fmt in ("csv", "parquet"):
        from ingestion.tables.long_format import iter_table

        yield from iter_table(path, fmt=fmt, min_cells=min_cells)
    elif fmt == "hdf5":
        from ingestion.flowrbc import iter_flowrbc

        yield from iter_flowrbc(path, min_cells=min_cells)
    else:
        yield from _iter_fcs_zip(Path(path), min_cells=min_cells)


def _iter_fcs_zip(path: Path, *, min_cells: int) -> Iterator[CellSet | SampleError]:
    """Each `.fcs` member is one sample; a bad member is a `SampleError`, not a failed batch."""
    from ingestion.fcs.reader import read_fcs

    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise IngestionError(f"not a readable zip archive ({exc})", kind="zip_corrupt",
                             field="file") from None
    with archive:
        members = [m for m in archive.infolist()
                   if not m.is_dir() and m.filename.lower().endswith((".fcs", ".lmd"))]
        if not members:
            raise IngestionError("zip archive holds no .fcs files", kind="zip_empty",
                                 field="file")
        if len(members) > MAX_ZIP_MEMBERS:
            raise IngestionError(f"{len(members)} FCS files: at most "
                                 f"{MAX_ZIP_MEMBERS} per archive", kind="zip_too_large",
                                 field="file")
        for member in members:
            name = member.filename
            stem = Path(name).stem
            if member.file_size > MAX_ZIP_MEMBER_BYTES:
                yield SampleError(None, stem, name, "zip_member_too_large",
                                  f"{name}: {member.file_size} bytes uncompressed: at most "
                                  f"{MAX_ZIP_MEMBER_BYTES}")
                continue
            try:
                data = archive.read(member)
                yield read_fcs(data, min_cells=min_cells, default_sample_id=stem)
            except IngestionError as exc:
                yield SampleError(None, stem, name, exc.kind, f"{name}: {exc.message}")
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                yield SampleError(None, stem, name, "zip_corrupt", f"{name}: {exc}")
