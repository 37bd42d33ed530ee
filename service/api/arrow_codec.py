"""Arrow IPC streams at the HTTP edge: bulk samples in, result rows out.

In: one row per sample, `patient_id` and `sample_id` strings, `volume_fl` and `hemoglobin_pg`
lists of floats (float32 preferred), optional lab columns. The cell lists are read as numpy
views over the Arrow buffers (offsets + values), never as per-cell Python objects.
Out: the result row shared by batch results and `hct score` (`mapper.result_row`), one per
sample in request order, with the research-use notice in the schema metadata.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingestion.cells import MAX_ID_LENGTH, CellSet, LabValues, check_id
from ingestion.errors import IngestionError
from service.api.errors import ApiError
from service.api.sample_input import check_cell_count
from service.collection_time import aware
from service.prediction.mapper import RESULT_COLUMNS
from service.prediction.notice import NOTICE
from service.prediction.result_schema import column_type

ARROW_STREAM = "application/vnd.apache.arrow.stream"
ID_COLUMNS = ("patient_id", "sample_id")
CELL_COLUMNS = ("volume_fl", "hemoglobin_pg")
NUMBER_COLUMNS = ("measured_hematocrit_pct", "rbc_count_e12_per_l", "age_years")
LAB_COLUMNS = (*NUMBER_COLUMNS, "sex", "collected_at")
KNOWN_COLUMNS = (*ID_COLUMNS, *CELL_COLUMNS, *LAB_COLUMNS)
OUT_COLUMNS = (*RESULT_COLUMNS, "error_field")


@dataclass(frozen=True)
class _Cells:
    """One list column as flat numpy values plus per-row offsets."""

    offsets: np.ndarray  # [rows + 1] int64, absolute positions in `values`
    values: np.ndarray  # [total cells] float, NaN where Arrow had a null value
    valid: np.ndarray  # [rows] bool, False where the row's list itself is null

    def row(self, i: int) -> np.ndarray | None:
        return self.values[self.offsets[i]:self.offsets[i + 1]] if self.valid[i] else None


def read_table(data: bytes | bytearray, max_samples: int,
               max_decoded_bytes: int = 32 * 1024 * 1024) -> pa.Table:
    """The request's Arrow stream as one table, every batch validated in full before a value is
    read; malformed streams and wrong shapes are 4xx naming the column.

    A crafted stream can carry offsets or lengths that point outside its buffers: reading such
    an array returns bytes of the server's memory or crashes the process, so each column is
    checked with `validate(full=True)` (offsets, lengths, UTF-8) first. The schema is checked
    before the first batch is decoded, the row count after each batch, and a compressed
    batch's declared decoded size before it is decompressed (a few KiB of zstd can declare
    gigabytes): at most `max_decoded_bytes` over the stream, as for an uncompressed body.
    """
    if not data:
        raise ApiError(422, "empty", "the request body is empty: send an Arrow IPC stream",
                       "body")
    try:
        messages = pa.ipc.MessageReader.open_stream(pa.py_buffer(data))
        first = messages.read_next_message()
        if first.type != "schema":
            raise ValueError(f"the first message is a {first.type}, not the schema")
        schema = pa.ipc.read_schema(first)
        schema.names  # noqa: B018  names are request bytes: not UTF-8 is a 400, not a 500
    except (pa.ArrowException, OSError, ValueError, StopIteration) as exc:
        raise _unreadable(exc) from None
    _check_columns(schema)
    batches: list[pa.RecordBatch] = []
    rows = decoded = 0
    while True:
        try:
            message = messages.read_next_message()
        except StopIteration:
            break
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise _unreadable(exc) from None
        if message.type != "record batch":
            raise _unreadable(ValueError(f"unexpected {message.type} message"))
        decoded += decoded_size(message)
        if decoded > max_decoded_bytes:
            raise ApiError(413, "payload_too_large", f"the stream decodes to more than "
                           f"{max_decoded_bytes} bytes (HCT_MAX_BODY_BYTES)", "body")
        try:
            batch = pa.ipc.read_record_batch(message, schema)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise _unreadable(exc) from None
        rows += batch.num_rows
        if rows > max_samples:
            raise ApiError(413, "too_many_samples", f"the stream has more than {max_samples} "
                           f"rows (samples): at most {max_samples} per request "
                           "(HCT_MAX_BULK_SAMPLES)", "body.samples")
        _validate(batch)
        batches.append(batch)
    if rows == 0:
        raise ApiError(422, "empty", "the stream has no rows: send one row per sample",
                       "body.samples")
    return pa.Table.from_batches(batches, schema=schema).combine_chunks()


def decoded_size(message: pa.ipc.Message) -> int:
    """Bytes a record-batch message occupies once decoded: its body, or for a compressed body
    the sum of the decoded lengths its buffers declare (read from the flatbuffer metadata and
    each buffer's 8-byte length prefix, before anything is decompressed)."""
    body = message.body
    size = 0 if body is None else body.size
    try:
        buffers, compressed = _batch_layout(message.metadata.to_pybytes())
    except (struct.error, IndexError):
        raise _unreadable(ValueError("record batch metadata is malformed")) from None
    if not compressed or body is None:
        return size
    view = memoryview(body)
    total = 0
    for offset, length in buffers:
        if length < 8 or offset < 0 or offset + 8 > size:
            continue  # empty buffer (no prefix), or out of range: the reader refuses it
        declared = struct.unpack_from("<q", view, offset)[0]
        total += length - 8 if declared == -1 else max(declared, 0)
    return total


def _batch_layout(meta: bytes) -> tuple[list[tuple[int, int]], bool]:
    """(offset, length) of each body buffer, and whether the body is compressed, from a
    `Message` flatbuffer whose header is a `RecordBatch` (Arrow format, Message.fbs)."""
    message = struct.unpack_from("<I", meta, 0)[0]
    header = _field(meta, message, 2)  # Message.header
    if header is None:
        return [], False
    batch = header + struct.unpack_from("<I", meta, header)[0]
    buffers_at = _field(meta, batch, 2)  # RecordBatch.buffers
    buffers: list[tuple[int, int]] = []
    if buffers_at is not None:
        vector = buffers_at + struct.unpack_from("<I", meta, buffers_at)[0]
        count = struct.unpack_from("<I", meta, vector)[0]
        buffers = [struct.unpack_from("<qq", meta, vector + 4 + 16 * k) for k in range(count)]
    return buffers, _field(meta, batch, 3) is not None  # RecordBatch.compression


def _field(meta: bytes, table: int, index: int) -> int | None:
    """Where field `index` of the flatbuffer table at `table` lies (None: absent)."""
    vtable = table - struct.unpack_from("<i", meta, table)[0]
    vtable_size = struct.unpack_from("<H", meta, vtable)[0]
    if 4 + 2 * index >= vtable_size:
        return None
    offset = struct.unpack_from("<H", meta, vtable + 4 + 2 * index)[0]
    return table + offset if offset else None


def _unreadable(exc: Exception) -> ApiError:
    return ApiError(400, "invalid_arrow", "the body is not a readable Arrow IPC stream "
                    f"({_clip(str(exc), 200)})", "body")


def _validate(batch: pa.RecordBatch) -> None:
    """Full validation, column by column so the answer names the column."""
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        try:
            column.validate(full=True)
        except (pa.ArrowException, ValueError) as exc:
            raise ApiError(400, "invalid_arrow", f"column {name!r} is not a valid Arrow array "
                           f"({_clip(str(exc), 200)})", f"body.{name}") from None
    try:
        batch.validate(full=True)
    except (pa.ArrowException, ValueError) as exc:
        raise ApiError(400, "invalid_arrow", f"the record batch is not valid "
                       f"({_clip(str(exc), 200)})", "body") from None


def _check_columns(schema: pa.Schema) -> None:
    names = schema.names
    unknown = [n for n in names if n not in KNOWN_COLUMNS]
    if unknown:
        shown = _clip(unknown[0], 64)
        raise ApiError(422, "unknown_column", f"column {shown!r} is not known; columns "
                       f"are {list(KNOWN_COLUMNS)}", f"body.{shown}")
    twice = [n for n in KNOWN_COLUMNS if names.count(n) > 1]
    if twice:
        raise ApiError(422, "duplicate_column", f"column {twice[0]!r} appears "
                       f"{names.count(twice[0])} times: send each column once",
                       f"body.{twice[0]}")
    for name in (*ID_COLUMNS, *CELL_COLUMNS):
        if name not in names:
            raise ApiError(422, "missing_column", f"column {name!r} is required", f"body.{name}")
    for f in schema:
        problem = _type_problem(f.name, f.type)
        if problem is not None:
            raise ApiError(422, "invalid_column_type", f"column {f.name!r} is {problem}",
                           f"body.{f.name}")


def _wanted(name: str) -> str:
    if name in ID_COLUMNS or name == "sex":
        return "string"
    if name in CELL_COLUMNS:
        return "list<float32>"
    if name in NUMBER_COLUMNS:
        return "float64"
    return "timestamp (with time zone) or ISO 8601 string"


def _type_problem(name: str, t: pa.DataType) -> str | None:
    """Why column `name` cannot have type `t` (None: it can). Dictionary-encoded and large
    (64-bit offset) types are named, since a client can simply send the plain type."""
    want = _wanted(name)
    if pa.types.is_dictionary(t):
        return f"dictionary-encoded ({t}): send plain {want} values, not a dictionary"
    if (pa.types.is_large_string(t) or pa.types.is_large_binary(t)
            or pa.types.is_large_list(t)
            or (pa.types.is_list(t) and pa.types.is_large_list(t.value_type))):
        return f"{t}: large (64-bit offset) types are not accepted; send {want}"
    if name in ID_COLUMNS or name == "sex":
        ok = pa.types.is_string(t)
    elif name in CELL_COLUMNS:
        ok = pa.types.is_list(t) and pa.types.is_floating(t.value_type)
    elif name in NUMBER_COLUMNS:
        ok = pa.types.is_floating(t) or pa.types.is_integer(t)
    else:  # collected_at
        ok = pa.types.is_timestamp(t) or pa.types.is_string(t)
    return None if ok else f"{t}: expected {want}"


def _clip(text: str, limit: int) -> str:
    """At most `limit` characters of `text` (an id, a value) for an error message."""
    return text if len(text) <= limit else text[:limit] + "\u2026"


def shown_id(value: object) -> str:
    """An id as error messages echo it: repr of at most 64 characters."""
    return repr(_clip(value, 64)) if isinstance(value, str) else repr(value)


def echoed_id(value: str | None) -> str | None:
    """An id as an error row echoes it: at most `MAX_ID_LENGTH` characters (every valid id
    whole)."""
    return None if value is None else _clip(value, MAX_ID_LENGTH)


def _cells(column: pa.ChunkedArray | pa.Array) -> _Cells:
    arr = column.chunk(0) if isinstance(column, pa.ChunkedArray) else column
    offsets = arr.offsets.to_numpy().astype(np.int64, copy=False)  # [rows + 1]
    values = arr.values.to_numpy(zero_copy_only=False)  # nulls -> NaN
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return _Cells(offsets, values, valid)


@dataclass(frozen=True)
class _OutOfRange:
    """A timestamp that Python's datetime cannot hold: that row's error, not a 500."""

    ticks: int
    unit: str


# datetime's range (years 1 to 9999) in seconds since the epoch, a day inside either end so
# the conversion to a time zone stays in range too.
_FIRST_S = -62135596800 + 86400
_LAST_S = 253402300799 - 86400
_TICKS = {"s": 1, "ms": 1000, "us": 1_000_000, "ns": 1_000_000_000}
_INT64 = (-(2 ** 63), 2 ** 63 - 1)


def _timestamps(column: pa.Array) -> list[Any]:
    """A timestamp column as Python values, out-of-range entries as `_OutOfRange`."""
    unit = column.type.unit
    ticks = column.view(pa.int64())
    raw = ticks.fill_null(0).to_numpy(zero_copy_only=False)
    lo = max(_FIRST_S * _TICKS[unit], _INT64[0])
    hi = min(_LAST_S * _TICKS[unit], _INT64[1])
    ok = (raw >= lo) & (raw <= hi)
    inside = pc.if_else(pa.array(ok), column, pa.scalar(None, column.type)).to_pylist()
    return [v if good else _OutOfRange(int(t), unit)
            for v, good, t in zip(inside, ok.tolist(), raw.tolist(), strict=True)]


def _lab_column(table: pa.Table, name: str) -> list[Any]:
    column = table[name].combine_chunks()
    try:
        if pa.types.is_timestamp(column.type):
            return _timestamps(column)
        return column.to_pylist()
    except (pa.ArrowException, ValueError, OverflowError, KeyError) as exc:
        raise ApiError(422, "invalid_column_type", f"column {name!r} ({column.type}) cannot be "
                       f"read ({_clip(str(exc), 200)})", f"body.{name}") from None


def cellsets_from_table(table: pa.Table, *, max_cells: int, min_cells: int,
                        zone: tzinfo) -> list[CellSet | IngestionError | ApiError]:
    """One `CellSet` per row, or the error that row alone earns (same checks as JSON); a
    `collected_at` without an offset (string or timestamp without a zone) is read in `zone`."""
    volume, hemoglobin = _cells(table["volume_fl"]), _cells(table["hemoglobin_pg"])
    ids = {name: table[name].to_pylist() for name in ID_COLUMNS}
    lab_columns = {name: _lab_column(table, name) for name in LAB_COLUMNS
                   if name in table.column_names}
    out: list[CellSet | IngestionError | ApiError] = []
    for i in range(table.num_rows):
        try:
            out.append(_row(i, ids, lab_columns, volume, hemoglobin, max_cells, min_cells,
                            zone))
        except (IngestionError, ApiError) as exc:
            # Kept until the response is written: without its traceback, whose frames hold
            # the row's cells as float64 copies.
            out.append(exc.with_traceback(None))
    return out


def _row(i: int, ids: dict[str, list[Any]], lab: dict[str, list[Any]], volume: _Cells,
         hemoglobin: _Cells, max_cells: int, min_cells: int, zone: tzinfo) -> CellSet:
    for name in ID_COLUMNS:
        check_id(name, ids[name][i], shown_id)  # before the cells, as CellSet orders it
    v, h = volume.row(i), hemoglobin.row(i)
    for name, cells in (("volume_fl", v), ("hemoglobin_pg", h)):
        if cells is None:
            raise IngestionError(f"{name} is null: one list of cell values per sample is "
                                 "required", kind="validation", field=name)
    assert v is not None and h is not None
    check_cell_count(v.size, max_cells, "volume_fl")
    values = {name: column[i] for name, column in lab.items()}
    collected = values.get("collected_at")
    if isinstance(collected, _OutOfRange):
        raise IngestionError(f"collected_at = {collected.ticks} {collected.unit} since the "
                             "epoch: outside the times a date can hold (years 1 to 9999)",
                             kind="validation", field="collected_at")
    if isinstance(collected, str):
        try:
            collected = datetime.fromisoformat(collected.strip())
        except ValueError:
            raise IngestionError(f"collected_at = {shown_id(collected)}: must be an ISO 8601 "
                                 "time", kind="validation", field="collected_at") from None
    if isinstance(collected, datetime):
        values["collected_at"] = aware(collected, zone)
    sex = values.get("sex")
    if sex is not None and sex not in ("F", "M"):
        raise IngestionError(f"sex = {shown_id(sex)}: must be 'F' or 'M'", kind="validation",
                             field="sex")
    return CellSet(ids["patient_id"][i], ids["sample_id"][i], v, h,
                   lab=LabValues(**values), min_cells=min_cells)


def results_stream(rows: Sequence[dict[str, Any]]) -> bytes:
    """Result rows (`mapper.result_row` / `error_row` plus `error_field`) as an Arrow stream."""
    fields = [pa.field(name, column_type(name)) for name in OUT_COLUMNS]
    schema = pa.schema(fields, metadata={"notice": NOTICE})
    columns = [[row.get(name) for row in rows] for name in OUT_COLUMNS]
    table = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, fields,
                                                                            strict=True)],
                                 schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def samples_stream(samples: Sequence[dict[str, Any]]) -> bytes:
    """Client side: prediction bodies (`volume_fl`/`hemoglobin_pg` form) as a request stream.

    Used by the tests, the load bench and as a reference for clients.
    """
    def cells(name: str) -> pa.Array:
        arrays = [np.asarray(s[name], dtype=np.float32) for s in samples]
        offsets = np.concatenate([[0], np.cumsum([a.size for a in arrays])]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(arrays)))

    columns: dict[str, pa.Array] = {
        "patient_id": pa.array([s["patient_id"] for s in samples], pa.string()),
        "sample_id": pa.array([s["sample_id"] for s in samples], pa.string()),
        "volume_fl": cells("volume_fl"), "hemoglobin_pg": cells("hemoglobin_pg")}
    for name in LAB_COLUMNS:
        if any(name in s for s in samples):
            kind = pa.string() if name in ("sex", "collected_at") else pa.float64()
            columns[name] = pa.array([s.get(name) for s in samples], kind)
    table = pa.table(columns)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
