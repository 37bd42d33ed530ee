"""Turn a stream of row chunks into one `CellSet` (or `SampleError`) per sample.

Lab exports list a sample's cells in consecutive rows, so a sample ends when the
(patient_id, sample_id) key changes. Only the sample being assembled is held in memory, never
the file: memory stays at one sample plus the chunk being read. A failed sample drops its data
at once and only remembers its rows and first error.

Row numbers are 1-based data rows: the header is not counted (CSV line = row + 1 when the file
has no blank lines or quoted line breaks).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import pairwise
from typing import Any

import numpy as np

from ingestion.bounds import DEFAULT_MAX_CELLS
from ingestion.cells import CellSet, CellValidationError, LabValues
from ingestion.errors import SampleError
from ingestion.tables.columns import Layout

Key = tuple[str, str]
_INDEXED_FIELD = re.compile(r"^(?P<name>\w+)\[(?P<index>\d+)\]$")
_SEXES = {"f": "F", "female": "F", "w": "F", "m": "M", "male": "M"}


@dataclass(frozen=True)
class Coded:
    """A column as its distinct values plus one code per row (-1: missing or blank).

    Ids and lab values repeat over a sample's rows, so grouping and consistency checks run on
    small integer arrays, and each distinct string is handled once per chunk, not per row.
    """

    values: list[Any]
    codes: np.ndarray  # [n] int64

    @classmethod
    def single(cls, value: Any) -> Coded:
        if value is None:
            return cls([], np.full(1, -1, dtype=np.int64))
        return cls([value], np.zeros(1, dtype=np.int64))

    def __getitem__(self, rows: slice) -> Coded:
        return Coded(self.values, self.codes[rows])

    def value(self, i: int) -> Any:
        code = int(self.codes[i])
        return None if code < 0 else self.values[code]

    def first_rows(self) -> list[tuple[Any, int]]:
        """Each distinct value present with the index where it first occurs."""
        codes = self.codes
        if codes.size == 0:
            return []
        if codes.min() == codes.max():  # the usual case: one value for the whole run
            pairs: Iterable[tuple[Any, Any]] = [(codes[0], 0)]
        else:
            pairs = zip(*np.unique(codes, return_index=True), strict=True)
        return [(self.values[int(c)], int(i)) for c, i in pairs if c >= 0]


@dataclass
class Rows:
    """A run of consecutive data rows, already converted: ids, cell values, row problems.

    `volume`/`hemoglobin` are in fL/pg (NaN where `bad`); `explain(i, row)` gives
    (kind, message) for bad index `i`, which is file row `row`. Only a sample's first bad row
    is explained, so clean data costs nothing.
    """

    first_row: int
    patient_id: Coded
    sample_id: Coded
    volume: np.ndarray  # [n] float64
    hemoglobin: np.ndarray  # [n] float64
    bad: np.ndarray  # [n] bool
    explain: Callable[[int, int], tuple[str, str]]
    lab: dict[str, Coded]  # field -> raw values as read (text, numbers, timestamps)

    def __len__(self) -> int:
        return int(self.volume.size)

    def slice(self, start: int, stop: int) -> Rows:
        explain = self.explain
        rows = slice(start, stop)
        return Rows(
            first_row=self.first_row + start,
            patient_id=self.patient_id[rows],
            sample_id=self.sample_id[rows],
            volume=self.volume[rows],
            hemoglobin=self.hemoglobin[rows],
            bad=self.bad[rows],
            explain=lambda i, row: explain(i + start, row),
            lab={k: v[rows] for k, v in self.lab.items()},
        )


@dataclass
class _Sample:
    key: Key
    first_row: int
    last_row: int
    volume: list[np.ndarray] = field(default_factory=list)
    hemoglobin: list[np.ndarray] = field(default_factory=list)
    lab: dict[str, dict[Any, int]] = field(default_factory=dict)  # field -> raw -> first row
    error: tuple[str, str] | None = None  # (kind, message)
    n_cells: int = 0

    def fail(self, kind: str, message: str) -> None:
        if self.error is None:
            self.error = (kind, message)
            self.volume.clear()
            self.hemoglobin.clear()
            self.lab.clear()

    def add(self, rows: Rows, max_cells: int) -> None:
        self.last_row = rows.first_row + len(rows) - 1
        if self.error is not None:
            return
        self.n_cells += len(rows)
        if self.n_cells > max_cells:  # counted as rows arrive: a table has no header count
            self.fail("too_many_cells",
                      f"sample {self.key[1]} (patient {self.key[0]}) has more than {max_cells} "
                      f"cells by row {self.last_row}: at most {max_cells} per sample")
            return
        bad = np.flatnonzero(rows.bad)
        if bad.size:
            first = int(bad[0])
            self.fail(*rows.explain(first, rows.first_row + first))
            return
        self.volume.append(rows.volume.copy())
        self.hemoglobin.append(rows.hemoglobin.copy())
        for name, values in rows.lab.items():
            seen = self.lab.setdefault(name, {})
            for value, index in values.first_rows():
                seen.setdefault(value, rows.first_row + index)


@dataclass
class _Unattributed:
    """Rows without a patient or sample id, waiting to see which sample follows them."""

    first_row: int
    last_row: int
    message: str
    patient_id: str | None
    sample_id: str | None


class Grouper:
    """Feed `Rows` in file order; get finished samples back as soon as their key changes."""

    def __init__(self, layout: Layout, min_cells: int,
                 max_cells: int = DEFAULT_MAX_CELLS) -> None:
        self._layout = layout
        self._min_cells = min_cells
        self._max_cells = max_cells
        self._current: _Sample | None = None
        self._orphans: _Unattributed | None = None
        self._seen: set[Key] = set()

    def feed(self, rows: Rows) -> Iterator[CellSet | SampleError]:
        n = len(rows)
        if n == 0:
            return
        pid, sid = rows.patient_id.codes, rows.sample_id.codes
        changed = np.flatnonzero((pid[1:] != pid[:-1]) | (sid[1:] != sid[:-1])) + 1
        bounds = [0, *changed.tolist(), n]
        for start, stop in pairwise(bounds):
            yield from self._run(rows.slice(start, stop))

    def finish(self) -> Iterator[CellSet | SampleError]:
        """Flush the last sample and any trailing id-less rows."""
        if self._current is not None:
            yield self._close(self._current)
            self._current = None
        if self._orphans is not None:
            yield self._orphan_error(self._orphans)
            self._orphans = None

    def _run(self, rows: Rows) -> Iterator[CellSet | SampleError]:
        """Handle rows that all share one key (or all lack an id)."""
        pid, sid = rows.patient_id.value(0), rows.sample_id.value(0)
        last_row = rows.first_row + len(rows) - 1
        if pid is None or sid is None:
            if self._orphans is None:
                missing = "patient_id" if pid is None else "sample_id"
                self._orphans = _Unattributed(
                    rows.first_row,
                    last_row,
                    f"row {rows.first_row}: {missing} is empty: every row needs a patient_id "
                    "and a sample_id",
                    pid,
                    sid,
                )
            else:
                self._orphans.last_row = last_row
            return
        key = (pid, sid)
        current = self._current
        if current is not None and current.key == key:
            if self._orphans is not None:
                # Id-less rows inside a sample: its cells are incomplete, so it fails whole.
                current.fail("table_missing_id", self._orphans.message)
                self._orphans = None
            current.add(rows, self._max_cells)
            return
        if current is not None:
            yield self._close(current)
        if self._orphans is not None:
            yield self._orphan_error(self._orphans)
            self._orphans = None
        current = self._current = _Sample(key, rows.first_row, last_row)
        if key in self._seen:
            current.fail(
                "table_not_contiguous",
                f"sample {sid} (patient {pid}) appears again at row {rows.first_row} after "
                "other samples: rows of a sample must be contiguous",
            )
        current.add(rows, self._max_cells)

    def _close(self, sample: _Sample) -> CellSet | SampleError:
        self._seen.add(sample.key)
        pid, sid = sample.key
        location = f"rows {sample.first_row}-{sample.last_row}"
        if sample.error is not None:
            return SampleError(pid, sid, location, *sample.error)
        try:
            lab = self._lab_values(sample)
            volume = np.concatenate(sample.volume)
            hemoglobin = np.concatenate(sample.hemoglobin)
            return CellSet(pid, sid, volume, hemoglobin, lab=lab, min_cells=self._min_cells)
        except _LabError as exc:
            return SampleError(pid, sid, location, exc.kind, exc.message)
        except CellValidationError as exc:
            return SampleError(pid, sid, location, exc.kind, self._explain(exc, sample))

    def _explain(self, exc: CellValidationError, sample: _Sample) -> str:
        """Point a CellSet error (`volume_fl[17]`) at the file row it came from."""
        match = _INDEXED_FIELD.match(exc.field or "")
        if match is None:
            return f"rows {sample.first_row}-{sample.last_row}: {exc.message}"
        row = sample.first_row + int(match["index"])
        message = f"row {row} ({exc.field} of sample {sample.key[1]}): {exc.message}"
        if match["name"] == "hemoglobin_pg" and self._layout.hemoglobin_from_concentration:
            source = self._layout.hemoglobin.header
            message += f"; hemoglobin_pg was computed from volume_fl and {source}"
        return message

    def _lab_values(self, sample: _Sample) -> LabValues:
        values: dict[str, Any] = {}
        for column in self._layout.lab:
            parsed: dict[Any, int] = {}
            first_seen = sample.lab.get(column.field, {})
            for raw, row in sorted(first_seen.items(), key=lambda kv: kv[1]):
                value = _parse_lab(column.field, raw, column.factor, row, column.header)
                parsed.setdefault(value, row)
            if len(parsed) > 1:
                (a, row_a), (b, row_b) = sorted(parsed.items(), key=lambda kv: kv[1])[:2]
                raise _LabError(
                    "table_lab_inconsistent",
                    f"rows {sample.first_row}-{sample.last_row}: {column.field} differs within "
                    f"sample {sample.key[1]}: {_show(a)} (row {row_a}) vs {_show(b)} "
                    f"(row {row_b}): lab values must be constant within a sample",
                )
            if parsed:
                values[column.field] = next(iter(parsed))
        try:
            return LabValues(**values)
        except CellValidationError as exc:
            raise _LabError(
                exc.kind, f"rows {sample.first_row}-{sample.last_row}: {exc.message}"
            ) from None

    def _orphan_error(self, orphans: _Unattributed) -> SampleError:
        return SampleError(
            orphans.patient_id,
            orphans.sample_id,
            f"rows {orphans.first_row}-{orphans.last_row}",
            "table_missing_id",
            orphans.message,
        )


class _LabError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _parse_lab(name: str, raw: Any, factor: float, row: int, header: str) -> Any:
    """One raw lab cell -> the value `LabValues` takes; `_LabError` names the row."""

    def bad(expected: str) -> _LabError:
        return _LabError("table_lab_value", f"row {row}: {header} = {raw!r}: {expected}")

    if name == "sex":
        sex = _SEXES.get(str(raw).strip().lower())
        if sex is None:
            raise bad("must be F, M, female or male")
        return sex
    if name == "collected_at":
        if isinstance(raw, datetime):
            return raw
        if isinstance(raw, date):
            return datetime(raw.year, raw.month, raw.day)
        try:
            return datetime.fromisoformat(str(raw).strip())
        except ValueError:
            raise bad("must be an ISO 8601 date-time such as 2024-03-01T08:30:00") from None
    try:
        number = float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        raise bad("must be a number") from None
    if not math.isfinite(number):
        raise bad("must be a finite number")
    return number * factor


def _show(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return f"{value:g}" if isinstance(value, float) else str(value)
