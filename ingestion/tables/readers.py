"""Readers that turn a CSV or Parquet export into `Rows` chunks, checking the header first.

Every needed CSV column is read as text and converted here, so a non-number in one row fails
that row's sample instead of pyarrow's conversion failing the whole file. Row numbers are
1-based data rows (the header is not counted).
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ingestion.errors import IngestionError
from ingestion.tables.columns import Column, ColumnMap, Layout, resolve
from ingestion.tables.rows import Coded, Rows

SNIFF_BYTES = 64 * 1024
EXAMPLE_HEADER = "patient_id,sample_id,volume_fl,hemoglobin_pg"


class CsvReader:
    """Streams a CSV as `Rows`, every needed column read as text so one bad cell is one error.

    Rows with the wrong number of fields are skipped by pyarrow, recorded here, and put back in
    file order as rows with a problem, so they fail their sample rather than the whole file.
    """

    def __init__(
        self,
        stream: BinaryIO,
        head: bytes,
        name: str,
        columns: ColumnMap | None,
        chunk_rows: int,
        encoding: str,
        delimiter: str | None,
    ) -> None:
        self._name = name
        self._encoding = encoding
        line = _header_line(head, name, encoding)
        self._delimiter = delimiter or _sniff_delimiter(line)
        header = [h.strip() for h in next(csv.reader([line], delimiter=self._delimiter))]
        self.layout = _resolve(header, columns, name)
        names = [f"c{i}" for i in range(len(header))]
        self._names = [names[c.index] for c in self.layout.columns]
        self._skipped: list[tuple[int, int, int, str]] = []  # row, expected, actual, text
        try:
            self._reader = pa_csv.open_csv(
                stream,
                read_options=pa_csv.ReadOptions(
                    use_threads=False,
                    block_size=_block_size(head, chunk_rows),
                    skip_rows=1,
                    column_names=names,
                    encoding=encoding,
                ),
                parse_options=pa_csv.ParseOptions(
                    delimiter=self._delimiter, invalid_row_handler=self._on_invalid_row
                ),
                convert_options=pa_csv.ConvertOptions(
                    include_columns=self._names,
                    column_types=dict.fromkeys(self._names, pa.string()),
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                    null_values=[""],
                ),
            )
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise self._error(exc, 1) from None

    def __iter__(self) -> Iterator[Rows]:
        row = 1
        while True:
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                break
            except (pa.ArrowException, OSError, ValueError) as exc:
                raise self._error(exc, row) from None
            rows = _to_rows(batch, self._names, self.layout, row)
            # Valid rows run until the next skipped row; skipped rows slot in by number.
            start = 0
            while start < len(rows):
                if self._skipped and self._skipped[0][0] <= row:
                    yield self._malformed(*self._skipped.pop(0))
                    row += 1
                    continue
                stop = len(rows)
                if self._skipped:
                    stop = min(stop, start + self._skipped[0][0] - row)
                part = rows.slice(start, stop)
                part.first_row = row
                yield part
                row += stop - start
                start = stop
        while self._skipped:
            yield self._malformed(*self._skipped.pop(0))

    def _on_invalid_row(self, invalid: Any) -> str:
        if invalid.number is None:
            return "error"
        # pyarrow counts the header as row 1.
        entry = (invalid.number - 1, invalid.expected_columns, invalid.actual_columns, invalid.text)
        self._skipped.append(entry)
        return "skip"

    def _malformed(self, row: int, expected: int, actual: int, text: str) -> Rows:
        fields = next(csv.reader([text], delimiter=self._delimiter), [])

        def field_at(column: Column) -> str | None:
            value = fields[column.index].strip() if column.index < len(fields) else ""
            return value or None

        message = f"row {row}: expected {expected} fields, found {actual}: {text[:200]!r}"
        return Rows(
            first_row=row,
            patient_id=Coded.single(field_at(self.layout.patient_id)),
            sample_id=Coded.single(field_at(self.layout.sample_id)),
            volume=np.full(1, np.nan),
            hemoglobin=np.full(1, np.nan),
            bad=np.ones(1, dtype=bool),
            explain=lambda _i, _row: ("table_parse", message),
            lab={c.field: Coded.single(None) for c in self.layout.lab},
        )

    def _error(self, exc: Exception, row: int) -> IngestionError:
        text = str(exc)
        if isinstance(exc, UnicodeError) or "UTF8" in text or "decode" in text:
            return IngestionError(
                f"{self._name}: rows from {row}: text is not valid {self._encoding}: "
                "pass encoding='latin-1' (or the export's encoding)",
                kind="table_encoding",
                field=f"row {row}",
            )
        if "straddl" in text:
            return IngestionError(
                f"{self._name}: a row at or after row {row} is longer than the read chunk: "
                "pass a larger chunk_rows",
                kind="table_parse",
                field=f"row {row}",
            )
        return IngestionError(
            f"{self._name}: rows from {row}: cannot be parsed as CSV ({text})",
            kind="table_parse",
            field=f"row {row}",
        )


class ParquetReader:
    """Streams a Parquet file as `Rows`, one `iter_batches` batch at a time, from row group
    `first_group` on (parallel readers start part-way; row numbers stay the file's)."""

    def __init__(
        self, stream: BinaryIO, name: str, columns: ColumnMap | None, chunk_rows: int,
        first_group: int = 0,
    ) -> None:
        self._name = name
        self._chunk_rows = chunk_rows
        self._first_group = first_group
        try:
            self._file = pq.ParquetFile(stream)
            schema = self._file.schema_arrow
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise IngestionError(
                f"{name}: not a readable Parquet file ({exc})", kind="table_unreadable", field=name
            ) from None
        self.layout = _resolve(schema.names, columns, name)
        self._names = [schema.names[c.index] for c in self.layout.columns]
        for column in self.layout.columns[:4]:
            _check_type(column, schema.field(column.index).type, name)
        meta = self._file.metadata
        self.group_rows = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]

    def __iter__(self) -> Iterator[Rows]:
        row = 1 + sum(self.group_rows[: self._first_group])
        groups = range(self._first_group, len(self.group_rows))
        batches = self._file.iter_batches(batch_size=self._chunk_rows, columns=self._names,
                                          row_groups=groups)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError, ValueError) as exc:
                raise IngestionError(
                    f"{self._name}: rows from {row}: cannot be read ({exc})",
                    kind="table_unreadable",
                    field=f"row {row}",
                ) from None
            yield _to_rows(batch, self._names, self.layout, row)
            row += batch.num_rows


def _to_rows(batch: pa.RecordBatch, names: list[str], layout: Layout, first_row: int) -> Rows:
    """Convert one batch: ids to str|None, cells to fL/pg floats, remember bad rows."""
    raw = [_decoded(batch.column(n)) for n in names]
    volume, volume_missing, volume_text = _numbers(raw[2])
    hemoglobin, hemoglobin_missing, hemoglobin_text = _numbers(raw[3])
    volume *= layout.volume.factor
    if layout.hemoglobin_from_concentration:
        # Mass = volume × concentration: fL × g/dL = 1e-15 L × 10 g/L = 1e-14 g = 0.01 pg.
        hemoglobin = volume * hemoglobin * layout.hemoglobin.factor / 100.0
    else:
        hemoglobin *= layout.hemoglobin.factor
    checks = (
        (layout.volume, raw[2], volume_missing, volume_text),
        (layout.hemoglobin, raw[3], hemoglobin_missing, hemoglobin_text),
    )

    def explain(i: int, row: int) -> tuple[str, str]:
        for column, values, missing, not_number in checks:
            if missing[i]:
                return "table_value", f"row {row}: {column.header} is empty: every cell needs one"
            if not_number[i]:
                text = values[i].as_py()
                return "table_value", f"row {row}: {column.header} = {text!r}: must be a number"
        return "table_value", f"row {row}: unusable"  # unreachable: only bad rows are explained

    return Rows(
        first_row=first_row,
        patient_id=_coded(raw[0], text=True),
        sample_id=_coded(raw[1], text=True),
        volume=volume,
        hemoglobin=hemoglobin,
        bad=volume_missing | volume_text | hemoglobin_missing | hemoglobin_text,
        explain=explain,
        lab={c.field: _coded(values) for c, values in zip(layout.lab, raw[4:], strict=True)},
    )


def _decoded(values: pa.Array) -> pa.Array:
    return values.dictionary_decode() if pa.types.is_dictionary(values.type) else values


def _coded(values: pa.Array, *, text: bool = False) -> Coded:
    """Dictionary-encode a column; strip text, and code null or blank cells as -1.

    `text=True` (ids) turns integers into strings first, so id 7 and "7" are the same.
    """
    if pa.types.is_null(values.type):
        return Coded([], np.full(len(values), -1, dtype=np.int64))
    if text and not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = pc.cast(values, pa.string())
    encoded = pc.dictionary_encode(values)
    distinct = [v.strip() if isinstance(v, str) else v for v in encoded.dictionary.to_pylist()]
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    blank = [i for i, v in enumerate(distinct) if v == ""]
    if blank:
        codes[np.isin(codes, blank)] = -1
    return Coded(distinct, codes)


def _numbers(values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (float64 values with NaN where unusable, missing mask, not-a-number mask)."""
    n = len(values)
    not_number = np.zeros(n, dtype=bool)
    if pa.types.is_null(values.type):
        return np.full(n, np.nan), np.ones(n, dtype=bool), not_number
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        values = pc.utf8_trim_whitespace(values)
        values = pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)
        missing = values.is_null().to_numpy(zero_copy_only=False)
        try:
            numbers = pc.cast(values, pa.float64())
        except pa.ArrowInvalid:
            return _numbers_slowly(values.to_pylist(), missing)
    else:
        numbers = pc.cast(values, pa.float64())
        missing = numbers.is_null().to_numpy(zero_copy_only=False)
    return numbers.fill_null(np.nan).to_numpy(zero_copy_only=False).copy(), missing, not_number


def _numbers_slowly(
    texts: list[str | None], missing: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-value parse, only for a chunk holding a non-number, to find which rows."""
    out = np.full(len(texts), np.nan)
    not_number = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        if text is None:
            continue
        try:
            if "_" in text:  # Python accepts '1_000'; Arrow's fast path does not.
                raise ValueError(text)
            out[i] = float(text)
        except ValueError:
            not_number[i] = True
    return out, missing, not_number


def _check_type(column: Column, kind: pa.DataType, name: str) -> None:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    if column.field.endswith("_id"):
        ok, expected = text or pa.types.is_integer(kind), "text or integer"
    else:
        ok, expected = text or numeric, "numeric"
    if not ok:
        raise IngestionError(
            f"{name}: column {column.header!r} has type {kind}: {column.field} must be {expected}",
            kind="table_column",
            field=column.header,
        )


def _resolve(header: list[str], columns: ColumnMap | None, name: str) -> Layout:
    try:
        return resolve(header, columns)
    except IngestionError as exc:
        raise IngestionError(f"{name}: {exc.message}", kind=exc.kind, field=exc.field) from None


def _header_line(head: bytes, name: str, encoding: str) -> str:
    """Decode the first line; refuse binary data and text in another encoding up front."""
    wide = codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    nul = -1 if wide else head.find(b"\x00")
    if nul >= 0:
        raise IngestionError(
            f"{name}: not a CSV or Parquet file (binary data: a NUL byte at offset {nul}): "
            f"expected a text header such as {EXAMPLE_HEADER!r} "
            "or a Parquet file",
            kind="table_format",
            field=name,
        )
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(head, final=len(head) < SNIFF_BYTES)
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n") + 1
        raise IngestionError(
            f"{name}: line {line}: byte 0x{head[exc.start]:02x} at offset {exc.start} is not "
            f"valid {encoding}: pass encoding='latin-1' (or the export's encoding)",
            kind="table_encoding",
            field=f"line {line}",
        ) from None
    if "\n" not in text and len(head) >= SNIFF_BYTES:
        raise IngestionError(
            f"{name}: no line break in the first {SNIFF_BYTES // 1024} KiB: not a CSV file?",
            kind="table_format",
            field=name,
        )
    line = text.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    if not line.strip():
        raise IngestionError(
            f"{name}: line 1 is blank: expected a header such as {EXAMPLE_HEADER!r}",
            kind="table_format",
            field="line 1",
        )
    return line


def _sniff_delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _block_size(head: bytes, chunk_rows: int) -> int:
    """Bytes per CSV read so a block holds about `chunk_rows` rows (pyarrow reads bytes).

    Never below 16 times the longest line seen: a row longer than a block cannot be parsed.
    """
    lines = head.split(b"\n")[:-1] or [head]
    data = lines[1:] or lines
    per_row = sum(len(x) + 1 for x in data) / len(data)
    longest = max(len(x) + 1 for x in lines)
    return int(max(chunk_rows * per_row, 16 * longest, 1024))
