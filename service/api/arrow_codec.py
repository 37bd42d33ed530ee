"""Arrow IPC streams at the HTTP edge: bulk samples in, result rows out.

In: one row per sample, `patient_id` and `sample_id` strings, `volume_fl` and `hemoglobin_pg`
lists of floats (float32 preferred), optional lab columns. The cell lists are read as numpy
views over the Arrow buffers (offsets + values), never as per-cell Python objects.
Out: the result row shared by batch results and `hct score` (`mapper.result_row`), one per
sample in request order, with the research-use notice in the schema metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import numpy as np
import pyarrow as pa

from ingestion.cells import CellSet, LabValues
from ingestion.errors import IngestionError
from service.api.errors import ApiError
from service.api.sample_input import check_cell_count
from service.collection_time import CollectionTimeError, aware, parse
from service.prediction.mapper import RESULT_COLUMNS
from service.prediction.notice import NOTICE

ARROW_STREAM = "application/vnd.apache.arrow.stream"
ID_COLUMNS = ("patient_id", "sample_id")
CELL_COLUMNS = ("volume_fl", "hemoglobin_pg")
NUMBER_COLUMNS = ("measured_hematocrit_pct", "rbc_count_e12_per_l", "age_years")
LAB_COLUMNS = (*NUMBER_COLUMNS, "sex", "collected_at")
KNOWN_COLUMNS = (*ID_COLUMNS, *CELL_COLUMNS, *LAB_COLUMNS)
OUT_COLUMNS = (*RESULT_COLUMNS, "error_field")
_INT_OUT = {"seq", "n_cells", "n_cells_used"}
_FLOAT_OUT = {"hematocrit_pct", "hematocrit_lower_pct", "hematocrit_upper_pct", "quality_score",
              "population_mean", "cbc_indices", "moments", "analyzer_formula",
              "measured_hematocrit_pct", "mcv_fl", "rdw_cv_pct"}


@dataclass(frozen=True)
class _Cells:
    """One list column as flat numpy values plus per-row offsets."""

    offsets: np.ndarray  # [rows + 1] int64, absolute positions in `values`
    values: np.ndarray  # [total cells] float, NaN where Arrow had a null value
    valid: np.ndarray  # [rows] bool, False where the row's list itself is null

    def row(self, i: int) -> np.ndarray | None:
        return self.values[self.offsets[i]:self.offsets[i + 1]] if self.valid[i] else None


def read_table(data: bytes, max_samples: int) -> pa.Table:
    """The request's Arrow stream as one table; malformed streams and wrong shapes are 4xx."""
    if not data:
        raise ApiError(422, "empty", "the request body is empty: send an Arrow IPC stream",
                       "body")
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, pa.ArrowException, OSError, ValueError) as exc:
        raise ApiError(400, "invalid_arrow", f"the body is not a readable Arrow IPC stream "
                       f"({exc})", "body") from None
    if table.num_rows > max_samples:
        raise ApiError(413, "too_many_samples", f"the stream has {table.num_rows} rows "
                       f"(samples): at most {max_samples} per request (HCT_MAX_BULK_SAMPLES)",
                       "body.samples")
    if table.num_rows == 0:
        raise ApiError(422, "empty", "the stream has no rows: send one row per sample",
                       "body.samples")
    names = table.column_names
    unknown = [n for n in names if n not in KNOWN_COLUMNS]
    if unknown:
        raise ApiError(422, "unknown_column", f"column {unknown[0]!r} is not known; columns "
                       f"are {list(KNOWN_COLUMNS)}", f"body.{unknown[0]}")
    for name in (*ID_COLUMNS, *CELL_COLUMNS):
        if name not in names:
            raise ApiError(422, "missing_column", f"column {name!r} is required", f"body.{name}")
    _check_types(table.schema)
    return table.combine_chunks()


def _check_types(schema: pa.Schema) -> None:
    for f in schema:
        t = f.type
        if f.name in ID_COLUMNS or f.name == "sex":
            ok = pa.types.is_string(t) or pa.types.is_large_string(t)
            want = "string"
        elif f.name in CELL_COLUMNS:
            ok = ((pa.types.is_list(t) or pa.types.is_large_list(t))
                  and pa.types.is_floating(t.value_type))
            want = "list<float32>"
        elif f.name in NUMBER_COLUMNS:
            ok = pa.types.is_floating(t) or pa.types.is_integer(t)
            want = "float64"
        else:  # collected_at
            ok = pa.types.is_timestamp(t) or pa.types.is_string(t)
            want = "timestamp (with time zone) or ISO 8601 string"
        if not ok:
            raise ApiError(422, "invalid_column_type", f"column {f.name!r} is {t}: expected "
                           f"{want}", f"body.{f.name}")


def _cells(column: pa.ChunkedArray | pa.Array) -> _Cells:
    arr = column.chunk(0) if isinstance(column, pa.ChunkedArray) else column
    offsets = arr.offsets.to_numpy().astype(np.int64, copy=False)  # [rows + 1]
    values = arr.values.to_numpy(zero_copy_only=False)  # nulls -> NaN
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return _Cells(offsets, values, valid)


def cellsets_from_table(table: pa.Table, *, max_cells: int, min_cells: int,
                        zone: tzinfo) -> list[CellSet | IngestionError | ApiError]:
    """One `CellSet` per row, or the error that row alone earns (same checks as JSON); a
    `collected_at` without an offset (string or timestamp without a zone) is read in `zone`."""
    volume, hemoglobin = _cells(table["volume_fl"]), _cells(table["hemoglobin_pg"])
    ids = {name: table[name].to_pylist() for name in ID_COLUMNS}
    lab_columns = {name: _values(table[name]) for name in LAB_COLUMNS
                   if name in table.column_names}
    out: list[CellSet | IngestionError | ApiError] = []
    for i in range(table.num_rows):
        try:
            out.append(_row(i, ids, lab_columns, volume, hemoglobin, max_cells, min_cells,
                            zone))
        except (IngestionError, ApiError) as exc:
            out.append(exc)
    return out


def _values(column: pa.ChunkedArray) -> list[Any]:
    """A column as Python values; a timestamp outside datetime's years becomes the error its
    row alone answers (pyarrow refuses the whole column otherwise)."""
    try:
        return column.to_pylist()
    except (OverflowError, ValueError):
        return [_value(scalar) for scalar in column]


def _value(scalar: pa.Scalar) -> Any:
    try:
        return scalar.as_py()
    except (OverflowError, ValueError):
        return CollectionTimeError(f"collected_at = {scalar.value} ({scalar.type}): outside "
                                   "years 0001 to 9999")


def _row(i: int, ids: dict[str, list[Any]], lab: dict[str, list[Any]], volume: _Cells,
         hemoglobin: _Cells, max_cells: int, min_cells: int, zone: tzinfo) -> CellSet:
    v, h = volume.row(i), hemoglobin.row(i)
    for name, cells in (("volume_fl", v), ("hemoglobin_pg", h)):
        if cells is None:
            raise IngestionError(f"{name} is null: one list of cell values per sample is "
                                 "required", kind="validation", field=name)
    assert v is not None and h is not None
    check_cell_count(v.size, max_cells, "volume_fl")
    values = {name: column[i] for name, column in lab.items()}
    collected = values.get("collected_at")
    if isinstance(collected, CollectionTimeError):
        raise collected
    if isinstance(collected, str):
        values["collected_at"] = parse(collected, zone)
    elif isinstance(collected, datetime):
        values["collected_at"] = aware(collected, zone)
    return CellSet(ids["patient_id"][i], ids["sample_id"][i], v, h,
                   lab=LabValues(**values), min_cells=min_cells)


def results_stream(rows: Sequence[dict[str, Any]]) -> bytes:
    """Result rows (`mapper.result_row` / `error_row` plus `error_field`) as an Arrow stream."""
    fields = [pa.field(name, pa.int64() if name in _INT_OUT
                       else pa.float64() if name in _FLOAT_OUT else pa.string())
              for name in OUT_COLUMNS]
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
