"""`write_table`/`iter_table` round trips, and errors opening a source (missing, empty, seek)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingestion.cells import LabValues
from ingestion.errors import IngestionError
from ingestion.tables.long_format import iter_table, write_table
from tests.ingestion.tabular_helpers import HEADER, OneWay, assert_same_cellsets, make_cellset

# --- round trips ------------------------------------------------------------------------------


ROUND_TRIP = [
    make_cellset("P1", "S1", 250, seed=1),
    make_cellset(
        "P1",
        "S2",
        300,
        seed=2,
        lab=LabValues(
            measured_hematocrit_pct=44.5,
            rbc_count_e12_per_l=4.81,
            collected_at=datetime(2024, 3, 1, 8, 30, 15, 123456),
            sex="F",
            age_years=41.0,
        ),
    ),
    make_cellset(
        "P2", "S1", 210, seed=3, lab=LabValues(collected_at=datetime(2024, 3, 2, 9, tzinfo=UTC))
    ),
    make_cellset('P3, "quoted"', "S 1", 205, seed=4, lab=LabValues(sex="M")),
]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip_equals_input(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"cells.{fmt}"
    assert write_table(path, ROUND_TRIP) == len(ROUND_TRIP)
    assert not list(tmp_path.glob("*.tmp"))
    assert_same_cellsets(ROUND_TRIP, list(iter_table(path, min_cells=200)))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip_through_file_objects(fmt: Any) -> None:
    buffer = io.BytesIO()
    write_table(buffer, ROUND_TRIP, fmt)
    buffer.seek(0)
    assert_same_cellsets(ROUND_TRIP, list(iter_table(buffer, min_cells=200)))


def test_round_trip_without_lab_columns(tmp_path: Path) -> None:
    path = tmp_path / "cells.csv"
    write_table(path, ROUND_TRIP[:1], include_lab=False)
    assert path.read_text().splitlines()[0] == HEADER
    assert_same_cellsets(ROUND_TRIP[:1], list(iter_table(path)))


def test_csv_header_is_the_documented_default(tmp_path: Path) -> None:
    path = tmp_path / "cells.csv"
    write_table(path, ROUND_TRIP[:1])
    header = path.read_text().splitlines()[0].replace('"', "")
    assert header.startswith(HEADER + ",measured_hematocrit_pct,rbc_count_e12_per_l")


def test_write_table_failure_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "cells.parquet"

    def broken() -> Any:
        yield ROUND_TRIP[0]
        raise RuntimeError("cohort generator died")

    with pytest.raises(RuntimeError):
        write_table(path, broken())
    assert list(tmp_path.iterdir()) == []


def test_write_table_rejects_other_objects(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="CellSet"):
        write_table(tmp_path / "x.csv", [object()])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="fmt"):
        write_table(tmp_path / "x.dat", ROUND_TRIP)


def test_write_table_with_nothing_reads_back_nothing(tmp_path: Path) -> None:
    for name in ("none.csv", "none.parquet"):
        assert write_table(tmp_path / name, []) == 0
        assert list(iter_table(tmp_path / name)) == []


# --- errors opening the source ----------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    for content in (b"", b"\n\n", b"\xef\xbb\xbf"):
        path = tmp_path / "empty.csv"
        path.write_bytes(content)
        with pytest.raises(IngestionError) as info:
            iter_table(path)
        assert info.value.kind == "table_empty"
        assert "empty" in info.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(IngestionError) as info:
        iter_table(tmp_path / "nope.csv")
    assert info.value.kind == "table_unreadable" and "nope.csv" in info.value.message


def test_parquet_needs_a_seekable_stream(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    write_table(path, ROUND_TRIP[:1])
    with pytest.raises(IngestionError, match="seekable") as info:
        iter_table(OneWay(path.read_bytes()))
    assert info.value.kind == "table_unreadable"
