"""A zip of FCS files, one sample per member, read within a byte budget.

The central directory's sizes are checked before a member is opened; a member's magic and
TEXT (hence `$TOT`) are checked on its first inflated bytes; DATA is inflated only up to
`$ENDDATA`, never past the budget, because an archive's declared sizes can lie.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from ingestion.bounds import DEFAULT_MAX_CELLS, MAX_MEMBER_BYTES, BudgetReader, check_cells
from ingestion.cells import DEFAULT_MIN_CELLS, CellSet
from ingestion.errors import IngestionError, SampleError
from ingestion.fcs.header import HEADER_LENGTH, check_magic, text_end, validate

MAX_ZIP_MEMBERS = 10_000
_SUFFIXES = (".fcs", ".lmd")


def iter_fcs_zip(
    path: str | Path,
    *,
    min_cells: int = DEFAULT_MIN_CELLS,
    max_cells: int = DEFAULT_MAX_CELLS,
    max_member_bytes: int = MAX_MEMBER_BYTES,
) -> Iterator[CellSet | SampleError]:
    """Each `.fcs` member is one sample; a bad or oversized member is a `SampleError`."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise IngestionError(f"not a readable zip archive ({exc})", kind="zip_corrupt",
                             field="file") from None
    with archive:
        members = [m for m in archive.infolist()
                   if not m.is_dir() and m.filename.lower().endswith(_SUFFIXES)]
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
            if member.file_size > max_member_bytes:
                yield SampleError(None, stem, name, "zip_member_too_large",
                                  f"{name}: {member.file_size} bytes uncompressed: at most "
                                  f"{max_member_bytes}")
                continue
            try:
                yield _read_member(archive, member, min_cells, max_cells, max_member_bytes)
            except IngestionError as exc:
                yield SampleError(None, stem, name, exc.kind, f"{name}: {exc.message}")
            except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, zlib.error,
                    NotImplementedError) as exc:
                yield SampleError(None, stem, name, "zip_corrupt", f"{name}: {exc}")


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, min_cells: int,
                 max_cells: int, max_member_bytes: int) -> CellSet:
    from ingestion.fcs.reader import read_fcs

    declared = member.file_size
    with archive.open(member) as raw:
        stream = BudgetReader(raw, min(declared, max_member_bytes), member.filename)
        head = stream.read(HEADER_LENGTH)
        check_magic(head, declared)  # a PNG or a zip inside the zip stops here, 58 bytes in
        if len(head) < HEADER_LENGTH:
            raise IngestionError(f"{len(head)} bytes: an FCS HEADER alone needs "
                                 f"{HEADER_LENGTH}", kind="fcs_corrupt", field="HEADER")
        prefix = stream.read_exactly(max(0, text_end(head) + 1 - len(head)), head)
        info = validate(io.BytesIO(prefix), declared)
        check_cells(info.n_events, max_cells, "$TOT", "$TOT")
        data_end = info.data_offsets[1]
        data = stream.read_exactly(max(0, data_end + 1 - len(prefix)), prefix)
    return read_fcs(data, min_cells=min_cells, max_cells=max_cells,
                    default_sample_id=Path(member.filename).stem)
