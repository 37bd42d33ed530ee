"""A Parquet export read in independent pieces (ranges of row groups), so parallel readers can
share one file without a shuffle: each piece yields whole samples.

A sample whose rows cross a piece boundary belongs to the piece it starts in: that piece reads
on past its last row group until the sample's key changes, and the next piece skips the rows
that continue a sample begun before it. Rows of a sample must be contiguous (as for
`iter_table`); a key that reappears in another piece is not noticed across pieces.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.bounds import DEFAULT_MAX_CELLS
from ingestion.cells import DEFAULT_MIN_CELLS, CellSet
from ingestion.errors import IngestionError, SampleError
from ingestion.tables.readers import ParquetReader
from ingestion.tables.rows import Coded, Grouper, Key, Rows

PIECE_CHUNK_ROWS = 65536


def row_group_pieces(path: str | Path, rows_per_piece: int) -> list[tuple[int, int]]:
    """Consecutive row-group ranges `(first, stop)` of about `rows_per_piece` rows each."""
    try:
        meta = pq.ParquetFile(path).metadata
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise IngestionError(f"{path}: not a readable Parquet file ({exc})",
                             kind="table_unreadable", field=str(path)) from None
    pieces, first, rows = [], 0, 0
    for group in range(meta.num_row_groups):
        rows += meta.row_group(group).num_rows
        if rows >= rows_per_piece:
            pieces.append((first, group + 1))
            first, rows = group + 1, 0
    if first < meta.num_row_groups:
        pieces.append((first, meta.num_row_groups))
    return pieces


def iter_row_groups(
    path: str | Path,
    first: int,
    stop: int,
    *,
    min_cells: int = DEFAULT_MIN_CELLS,
    max_cells: int = DEFAULT_MAX_CELLS,
    chunk_rows: int = PIECE_CHUNK_ROWS,
) -> Iterator[CellSet | SampleError]:
    """Every sample that starts in row groups `first:stop`, whole, in file order."""
    name = str(path)
    try:
        stream = Path(path).open("rb")
    except OSError as exc:
        raise IngestionError(f"{name}: cannot be opened ({exc.strerror or exc})",
                             kind="table_unreadable", field=name) from None
    with stream:
        skip = _last_key(stream, name, first - 1, chunk_rows) if first > 0 else None
        reader = ParquetReader(stream, name, None, chunk_rows, first_group=first)
        own = sum(reader.group_rows[first:stop])
        grouper = Grouper(reader.layout, min_cells, max_cells)
        taken, tail = 0, None
        for rows in reader:
            n = len(rows)
            if taken < own:
                own_here = min(n, own - taken)
                lo = 0
                if skip is not None:  # rows continuing the previous piece's last sample
                    lo = _key_end(rows, skip, 0, own_here)
                    if lo < own_here:
                        skip = None
                taken += own_here
                if taken < own:
                    yield from grouper.feed(rows.slice(lo, n))
                    continue
                if skip is not None:  # every own row belonged to a sample begun earlier
                    break
                tail = _key(rows, own_here - 1)
                hi = _key_end(rows, tail, own_here, n)
                yield from grouper.feed(rows.slice(lo, hi))
                if hi < n:
                    break
            else:  # past the last own row group: only the rest of the last sample
                assert tail is not None
                hi = _key_end(rows, tail, 0, n)
                yield from grouper.feed(rows.slice(0, hi))
                if hi < n:
                    break
        yield from grouper.finish()


def _last_key(stream, name: str, group: int, chunk_rows: int) -> Key:
    """The (patient_id, sample_id) of the last row of row group `group`, read as `iter_table`
    reads ids (stripped text, blank as missing)."""
    reader = ParquetReader(stream, name, None, chunk_rows, first_group=group)
    left = reader.group_rows[group]
    for rows in reader:
        if len(rows) >= left:
            return _key(rows, left - 1)
        left -= len(rows)
    raise IngestionError(f"{name}: row group {group} is shorter than its metadata says",
                         kind="table_unreadable", field=name)


def _key(rows: Rows, i: int) -> Key:
    return rows.patient_id.value(i), rows.sample_id.value(i)


def _matches(column: Coded, value: object, start: int, stop: int) -> np.ndarray:
    codes = column.codes[start:stop]
    if value is None:
        return codes < 0
    return np.isin(codes, [c for c, v in enumerate(column.values) if v == value])


def _key_end(rows: Rows, key: Key, start: int, stop: int) -> int:
    """The index of the first row in `start:stop` whose key is not `key` (`stop` if none)."""
    same = (_matches(rows.patient_id, key[0], start, stop)
            & _matches(rows.sample_id, key[1], start, stop))
    differ = np.flatnonzero(~same)
    return start + int(differ[0]) if differ.size else stop
