"""Lab exports in long format (one row per cell) as CSV or Parquet: stream in, write out.

Exports can be larger than memory, so reading streams: pyarrow reads one chunk at a time and
`tables.rows.Grouper` emits each sample as soon as its (patient_id, sample_id) key changes.
Problems with the file as a whole (unreadable, not CSV/Parquet, empty, wrong encoding, a
required column missing) raise one `IngestionError(kind="table_...")`; problems with one
sample (a bad value, a missing id, too few cells, inconsistent lab values) are yielded as a
`SampleError` so the other samples still come through.

Row numbers in messages are 1-based data rows: the header is not counted, so in a CSV without
blank lines or quoted line breaks, row N is line N + 1.

`IngestionError.kind` for the file: table_unreadable, table_format, table_empty,
table_encoding, table_column, table_unit, table_parse. `SampleError.kind` for a sample:
table_value (empty or non-numeric cell), table_parse (wrong field count), table_missing_id,
table_not_contiguous, table_lab_value, table_lab_inconsistent, validation (a `CellSet` or
`LabValues` rule; the message names the row where there is one).
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ingestion.bounds import DEFAULT_MAX_CELLS
from ingestion.cells import DEFAULT_MIN_CELLS, CellSet
from ingestion.errors import IngestionError, SampleError
from ingestion.formats import format_from_magic, format_from_suffix
from ingestion.tables.columns import ColumnMap
from ingestion.tables.readers import EXAMPLE_HEADER, SNIFF_BYTES, CsvReader, ParquetReader
from ingestion.tables.rows import Grouper

TableFormat = Literal["csv", "parquet"]
Source = str | os.PathLike[str] | BinaryIO

DEFAULT_CHUNK_ROWS = 65536
LAB_COLUMNS = (
    ("measured_hematocrit_pct", pa.float64()),
    ("rbc_count_e12_per_l", pa.float64()),
    ("collected_at", pa.string()),  # ISO 8601, so naive and zoned times can share a column
    ("sex", pa.string()),
    ("age_years", pa.float64()),
)


def iter_table(
    source: Source,
    *,
    fmt: TableFormat | None = None,
    columns: ColumnMap | None = None,
    min_cells: int = DEFAULT_MIN_CELLS,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    max_cells: int = DEFAULT_MAX_CELLS,
) -> Iterator[CellSet | SampleError]:
    """Stream one `CellSet` or `SampleError` per sample from a CSV or Parquet export.

    `fmt` defaults to Parquet when the data starts with `PAR1` or the name ends in `.parquet`/
    `.pq`, else CSV. The header is checked before this returns, so a missing column raises
    here; errors met later in the file raise while iterating, after the samples before them.
    Rows of a sample must be contiguous; a key seen again later yields a `SampleError`
    (kind `table_not_contiguous`) for the later rows, the earlier block having been yielded.
    Lab columns must hold one value per sample; blank lab cells are ignored. `chunk_rows`
    bounds the rows read at once (approximately for CSV, which is read in byte blocks).
    `encoding` and `delimiter` (sniffed from `, ; tab |` by default) apply to CSV only.
    A file with no bytes raises `table_empty`; a header without rows yields nothing.
    A sample with more than `max_cells` rows yields `too_many_cells`; its rows are dropped
    as they arrive, so memory stays at `max_cells` cells.
    """
    reader, stream, owned = _open_reader(source, fmt, columns, chunk_rows, encoding, delimiter)
    return _samples(reader, min_cells, max_cells, stream if owned else None)


def check_header(source: Source, *, fmt: TableFormat | None = None,
                 columns: ColumnMap | None = None, encoding: str = "utf-8",
                 delimiter: str | None = None) -> None:
    """Raise what `iter_table` would raise for the file as a whole (empty, not a table, a
    required column missing) after reading only its start: an upload can be refused at once.
    """
    _, stream, owned = _open_reader(source, fmt, columns, DEFAULT_CHUNK_ROWS, encoding,
                                    delimiter)
    if owned:
        stream.close()


def _open_reader(source: Source, fmt: TableFormat | None, columns: ColumnMap | None,
                 chunk_rows: int, encoding: str, delimiter: str | None,
                 ) -> tuple[ParquetReader | CsvReader, BinaryIO, bool]:
    """The reader for `source` with its header checked, the stream, and whether we own it."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows = {chunk_rows}: must be at least 1")
    if fmt not in (None, "csv", "parquet"):
        raise ValueError(f"fmt = {fmt!r}: must be 'csv', 'parquet' or None")
    stream, owned, name = _open(source)
    try:
        head, stream = _peek(stream, name)
        if not head.lstrip(codecs.BOM_UTF8).strip():
            raise IngestionError(
                f"{name}: file is empty: expected a header such as {EXAMPLE_HEADER!r} "
                "and one row per cell",
                kind="table_empty",
                field=name,
            )
        fmt = fmt or _infer_format(name, head)
        reader: ParquetReader | CsvReader
        if fmt == "parquet":
            if isinstance(stream, _Replay):
                raise IngestionError(
                    f"{name}: Parquet needs a seekable file (its index is at the end): "
                    "pass a path or a seekable file object",
                    kind="table_unreadable",
                    field=name,
                )
            reader = ParquetReader(stream, name, columns, chunk_rows)
        else:
            reader = CsvReader(stream, head, name, columns, chunk_rows, encoding, delimiter)
    except BaseException:
        if owned:
            stream.close()
        raise
    return reader, stream, owned


def write_table(
    destination: str | os.PathLike[str] | BinaryIO,
    cellsets: Iterable[CellSet],
    fmt: TableFormat | None = None,
    *,
    include_lab: bool = True,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> int:
    """Write cell sets in long format (ids, volume_fl, hemoglobin_pg, lab columns).

    Returns the number of samples written.

    Streams: at most about `chunk_rows` rows are buffered. All five lab columns are written
    (blank where a sample has no value) because the schema is fixed before the first sample is
    seen; `include_lab=False` leaves them out. A path is written to a temporary file that
    replaces it only once complete. `fmt` defaults from the suffix.
    """
    if fmt is None:
        fmt = _format_from_suffix(destination)
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt = {fmt!r}: pass 'csv' or 'parquet' (cannot tell from the name)")
    schema = pa.schema(
        [
            ("patient_id", pa.string()),
            ("sample_id", pa.string()),
            ("volume_fl", pa.float32()),
            ("hemoglobin_pg", pa.float32()),
            *(LAB_COLUMNS if include_lab else ()),
        ]
    )
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows = {chunk_rows}: must be at least 1")
    path = None if _is_stream(destination) else Path(cast(str, destination))
    temporary = None if path is None else path.with_name(path.name + ".tmp")
    sink: Any = destination if temporary is None else open(temporary, "wb")
    writer: pq.ParquetWriter | pa_csv.CSVWriter | None = None
    written = 0
    try:
        if fmt == "parquet":
            writer = pq.ParquetWriter(sink, schema)
        else:
            # The header is written by hand so it stays unquoted, as lab exports have it.
            sink.write((",".join(schema.names) + "\n").encode())
            options = pa_csv.WriteOptions(include_header=False)
            writer = pa_csv.CSVWriter(sink, schema, write_options=options)
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for cellset in cellsets:
            if not isinstance(cellset, CellSet):
                raise TypeError(f"write_table takes CellSet objects, got {type(cellset).__name__}")
            batch = _long_rows(cellset, schema)
            pending.append(batch)
            pending_rows += batch.num_rows
            written += 1
            if pending_rows >= chunk_rows:
                writer.write_table(pa.Table.from_batches(pending, schema))
                pending, pending_rows = [], 0
        if pending:
            writer.write_table(pa.Table.from_batches(pending, schema))
        writer.close()
    except BaseException:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        if temporary is not None:
            sink.close()
            temporary.unlink(missing_ok=True)
        raise
    if temporary is not None:
        sink.close()
        os.replace(temporary, cast(Path, path))
    return written


def _samples(
    reader: ParquetReader | CsvReader, min_cells: int, max_cells: int, owned: BinaryIO | None
) -> Iterator[CellSet | SampleError]:
    try:
        grouper = Grouper(reader.layout, min_cells, max_cells)
        for rows in reader:
            yield from grouper.feed(rows)
        yield from grouper.finish()
    finally:
        if owned is not None:
            owned.close()


def _open(source: Source) -> tuple[BinaryIO, bool, str]:
    """-> (binary stream, whether we opened it and must close it, name for messages)."""
    if _is_stream(source):
        name = getattr(source, "name", None)
        return cast(BinaryIO, source), False, name if isinstance(name, str) else "<stream>"
    path = Path(cast(str, source))
    try:
        return open(path, "rb"), True, str(path)
    except OSError as exc:
        raise IngestionError(
            f"{path}: cannot be opened ({exc.strerror or exc})",
            kind="table_unreadable",
            field=str(path),
        ) from None


def _peek(stream: BinaryIO, name: str) -> tuple[bytes, BinaryIO]:
    """Read the start of the data without consuming it (seek back, or replay the bytes)."""
    try:
        seekable = bool(getattr(stream, "seekable", lambda: False)())
        position = stream.tell() if seekable else 0
        head = stream.read(SNIFF_BYTES)
        if seekable:
            stream.seek(position)
    except OSError as exc:
        raise IngestionError(
            f"{name}: cannot be read ({exc})", kind="table_unreadable", field=name
        ) from None
    if not isinstance(head, bytes | bytearray):
        raise TypeError(f"{name}: open the file in binary mode ('rb'), not text mode")
    head = bytes(head)
    return head, stream if seekable else cast(BinaryIO, _Replay(head, stream))


class _Replay(io.RawIOBase):
    """A non-seekable stream with the bytes already peeked at put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if len(self._head):
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _infer_format(name: str, head: bytes) -> TableFormat:
    if "parquet" in (format_from_magic(head), format_from_suffix(name)):
        return "parquet"
    return "csv"


def _format_from_suffix(destination: Any) -> TableFormat | None:
    name = getattr(destination, "name", None) if _is_stream(destination) else destination
    if not isinstance(name, str | os.PathLike):
        return None
    fmt = format_from_suffix(name)
    return fmt if fmt in ("csv", "parquet") and Path(name).suffix.lower() != ".txt" else None


def _is_stream(source: Any) -> bool:
    return hasattr(source, "read") or hasattr(source, "write")


def _long_rows(cellset: CellSet, schema: pa.Schema) -> pa.RecordBatch:
    n = cellset.n_cells
    lab = cellset.lab
    values: dict[str, Any] = {
        "patient_id": cellset.patient_id,
        "sample_id": cellset.sample_id,
        "measured_hematocrit_pct": lab.measured_hematocrit_pct,
        "rbc_count_e12_per_l": lab.rbc_count_e12_per_l,
        "collected_at": lab.collected_at.isoformat() if lab.collected_at else None,
        "sex": lab.sex,
        "age_years": lab.age_years,
    }
    arrays = []
    for field in schema:
        if field.name == "volume_fl":
            arrays.append(pa.array(cellset.volume_fl, pa.float32()))
        elif field.name == "hemoglobin_pg":
            arrays.append(pa.array(cellset.hemoglobin_pg, pa.float32()))
        elif values[field.name] is None:
            arrays.append(pa.nulls(n, field.type))
        else:
            arrays.append(pa.repeat(pa.scalar(values[field.name], field.type), n))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
