"""CSV and Parquet readers: file-level errors, CSV dialects and encodings, chunked streaming."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion.cells import CellSet
from ingestion.errors import IngestionError, SampleError
from ingestion.tables.long_format import iter_table, write_table
from ingestion.tables.readers import CsvReader
from tests.ingestion.tabular_helpers import (
    HEADER,
    OneWay,
    assert_same_cellsets,
    csv_rows,
    make_cellset,
    summary,
    write_csv,
)

# --- file-level errors ------------------------------------------------------------------------


def test_header_only_file_has_no_samples(tmp_path: Path) -> None:
    assert list(iter_table(write_csv(tmp_path / "a.csv", HEADER, []))) == []


@pytest.mark.parametrize("name", ["garbage.bin", "garbage.csv", "garbage.parquet"])
def test_binary_garbage_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(IngestionError) as info:
        iter_table(path)
    expected = "table_unreadable" if name.endswith(".parquet") else "table_format"
    assert info.value.kind == expected
    assert name in info.value.message


def test_text_in_another_encoding(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    lines = csv_rows([("Müller", "S1", 210)])
    path.write_bytes(("\n".join([HEADER, *lines]) + "\n").encode("latin-1"))
    with pytest.raises(IngestionError) as info:
        iter_table(path)
    assert info.value.kind == "table_encoding"
    assert info.value.field == "line 2" and "encoding=" in info.value.message
    [cellset] = iter_table(path, encoding="latin-1")
    assert isinstance(cellset, CellSet) and cellset.patient_id == "Müller"


def test_parquet_with_unusable_column_type(tmp_path: Path) -> None:
    table = pa.table(
        {
            "patient_id": ["P1"],
            "sample_id": ["S1"],
            "volume_fl": pa.array([datetime(2024, 1, 1)]),
            "hemoglobin_pg": [30.0],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(IngestionError) as info:
        iter_table(tmp_path / "t.parquet")
    assert info.value.kind == "table_column" and info.value.field == "volume_fl"
    assert "must be numeric" in info.value.message


def test_parquet_with_native_types(tmp_path: Path) -> None:
    n = 210
    table = pa.table(
        {
            "Patient": pa.array([7] * n, pa.int32()),
            "sample_id": pa.array(["S1"] * n).dictionary_encode(),
            "Volume (fL)": pa.array(np.linspace(70, 110, n)),
            "Hb [pg]": pa.array(np.linspace(25, 35, n), pa.float32()),
            "collected_at": pa.array([datetime(2024, 5, 1, 7, tzinfo=UTC)] * n),
            "age_years": pa.array([50] * n, pa.int64()),
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    [cellset] = iter_table(tmp_path / "t.parquet", chunk_rows=64)
    assert isinstance(cellset, CellSet)
    assert (cellset.patient_id, cellset.sample_id) == ("7", "S1")
    assert cellset.lab.collected_at == datetime(2024, 5, 1, 7, tzinfo=UTC)
    assert cellset.lab.age_years == 50.0


def test_parquet_null_value_names_the_row(tmp_path: Path) -> None:
    volume = [80.0] * 420
    volume[333] = None  # type: ignore[call-overload]
    table = pa.table(
        {
            "patient_id": ["P1"] * 210 + ["P2"] * 210,
            "sample_id": ["S1"] * 420,
            "volume_fl": volume,
            "hemoglobin_pg": [30.0] * 420,
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    items = list(iter_table(tmp_path / "t.parquet", chunk_rows=100))
    assert [type(i) for i in items] == [CellSet, SampleError]
    assert items[1].message == "row 334: volume_fl is empty: every cell needs one"  # type: ignore[union-attr]


# --- csv dialect ------------------------------------------------------------------------------


def test_semicolon_delimiter_bom_and_crlf(tmp_path: Path) -> None:
    lines = [line.replace(",", ";") for line in csv_rows([("P1", "S1", 210)])]
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + "\r\n".join([HEADER.replace(",", ";"), *lines]) + "\r\n").encode())
    [cellset] = iter_table(path)
    assert isinstance(cellset, CellSet)
    assert cellset.patient_id == "P1" and cellset.n_cells == 210


# --- streaming --------------------------------------------------------------------------------


def many_samples_csv(tmp_path: Path, n_samples: int = 40, cells: int = 250) -> Path:
    samples = [(f"P{i // 2}", f"S{i % 2}", cells) for i in range(n_samples)]
    lines = csv_rows(samples, seed=11)
    lines[cells * 7 + 3] = lines[cells * 7 + 3].rsplit(",", 1)[0] + ",oops"  # one bad sample
    return write_csv(tmp_path / "many.csv", HEADER, lines)


def test_tiny_chunks_give_identical_results(tmp_path: Path) -> None:
    path = many_samples_csv(tmp_path)
    small = [summary(i) for i in iter_table(path, chunk_rows=100)]
    large = [summary(i) for i in iter_table(path, chunk_rows=1_000_000)]
    assert small == large
    assert len(small) == 40 and sum(s[0] == "error" for s in small) == 1


def test_tiny_chunks_really_split_samples(tmp_path: Path) -> None:
    path = many_samples_csv(tmp_path)
    with path.open("rb") as f:
        head = f.read(65536)
        f.seek(0)
        reader = CsvReader(f, head, str(path), None, 100, "utf-8", None)
        sizes = [len(rows) for rows in reader]
    assert sum(sizes) == 40 * 250
    assert max(sizes) < 250  # every sample spans at least one chunk boundary


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_chunk_size_does_not_change_round_trip(tmp_path: Path, fmt: str) -> None:
    cellsets = [make_cellset(f"P{i}", "S", 200 + 13 * i, seed=i) for i in range(6)]
    path = tmp_path / f"many.{fmt}"
    write_table(path, cellsets, chunk_rows=500)
    for chunk_rows in (1, 7, 199, 4096):
        assert_same_cellsets(cellsets, list(iter_table(path, chunk_rows=chunk_rows)))


def test_first_samples_arrive_before_the_rest_is_read(tmp_path: Path) -> None:
    path = many_samples_csv(tmp_path, n_samples=400)
    data = path.read_bytes() + b"P999,S1,\xff\xfe,30\n"  # corrupt tail: not UTF-8
    stream = OneWay(data)
    items = iter_table(stream, chunk_rows=100)
    first = next(items)
    assert isinstance(first, CellSet) and first.patient_id == "P0"
    assert stream.consumed < len(data) // 10
    with pytest.raises(IngestionError) as info:
        list(items)
    assert info.value.kind == "table_encoding"


@st.composite
def exports(draw: st.DrawFn) -> list[str]:
    """Lines of a small export with bad values, blank ids, repeated keys and short rows."""
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        patient = draw(st.sampled_from(["P0", "P1", "P2", "P3", ""]))
        sample = f"S{draw(st.integers(0, 2))}"
        for _ in range(draw(st.integers(1, 60))):
            volume = draw(st.sampled_from(["80", "95.5", "1e2", "abc", "", "400", "70.25"]))
            hemoglobin = draw(st.sampled_from(["30", "28.5"]))
            hct = draw(st.sampled_from(["45", "", "45.0", "46"]))
            if draw(st.integers(0, 40)) == 0:
                lines.append(f"{patient},{sample},{volume}")  # a row cut short
            else:
                lines.append(f"{patient},{sample},{volume},{hemoglobin},{hct}")
    return lines


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=exports(), chunk_rows=st.integers(1, 300))
def test_chunk_size_never_changes_the_output(
    tmp_path: Path, lines: list[str], chunk_rows: int
) -> None:
    header = HEADER + ",hct"
    path = write_csv(tmp_path / "prop.csv", header, lines)
    expected = [summary(i) for i in iter_table(path, min_cells=3, chunk_rows=1_000_000)]
    assert [summary(i) for i in iter_table(path, min_cells=3, chunk_rows=chunk_rows)] == expected
    if any(line.count(",") != 4 for line in lines):
        return  # short rows exist only in CSV
    table = pa.table(
        {name: [line.split(",")[i] for line in lines] for i, name in enumerate(header.split(","))}
    )
    pq.write_table(table, tmp_path / "prop.parquet")
    got = [
        summary(i)
        for i in iter_table(tmp_path / "prop.parquet", min_cells=3, chunk_rows=chunk_rows)
    ]
    assert got == expected
