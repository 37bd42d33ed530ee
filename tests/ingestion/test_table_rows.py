"""Grouping rows into samples: lab columns, and errors that fail one sample but not the file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from ingestion.cells import CellSet
from ingestion.errors import SampleError
from ingestion.tables.long_format import iter_table
from tests.ingestion.tabular_helpers import HEADER, csv_rows, errors, good, write_csv

# --- lab columns ------------------------------------------------------------------------------


def test_lab_columns_with_aliases_and_units(tmp_path: Path) -> None:
    header = HEADER + ",HCT (%),RBC (10^12/L),collected_at,Sex,age"
    lines = [
        f"{line},45.5,4.9,2024-03-01T08:30:00+01:00,female,62"
        for line in csv_rows([("P1", "S1", 210)])
    ]
    lines += [f"{line},0.41,5.1,2024-03-02,m,30" for line in csv_rows([("P2", "S1", 210)])]
    path = write_csv(tmp_path / "lab.csv", header.replace("HCT (%)", "hct"), lines[:210])
    [first] = iter_table(path)
    assert isinstance(first, CellSet)
    assert first.lab.measured_hematocrit_pct == 45.5
    assert first.lab.rbc_count_e12_per_l == 4.9
    assert first.lab.collected_at == datetime.fromisoformat("2024-03-01T08:30:00+01:00")
    assert first.lab.sex == "F" and first.lab.age_years == 62.0
    path = write_csv(tmp_path / "ll.csv", header.replace("HCT (%)", "Hematocrit (L/L)"), lines)
    second = list(iter_table(path))[1]
    assert isinstance(second, CellSet)
    assert second.lab.measured_hematocrit_pct == pytest.approx(41.0)
    assert second.lab.collected_at == datetime(2024, 3, 2)
    assert second.lab.sex == "M"


def test_lab_value_given_once_per_sample_is_enough(tmp_path: Path) -> None:
    lines = csv_rows([("P1", "S1", 210)])
    lines = [f"{line},{'44' if i == 0 else ''}" for i, line in enumerate(lines)]
    [cellset] = iter_table(write_csv(tmp_path / "a.csv", HEADER + ",hct", lines))
    assert isinstance(cellset, CellSet) and cellset.lab.measured_hematocrit_pct == 44.0


def test_inconsistent_lab_values_fail_only_that_sample(tmp_path: Path) -> None:
    lines = csv_rows([("P1", "S1", 210), ("P2", "S1", 210)])
    lines = [f"{line},{'46' if i == 150 else '45.0'}" for i, line in enumerate(lines)]
    items = list(iter_table(write_csv(tmp_path / "a.csv", HEADER + ",hct", lines)))
    [error] = errors(items)
    assert (error.patient_id, error.sample_id, error.location) == ("P1", "S1", "rows 1-210")
    assert error.kind == "table_lab_inconsistent"
    assert "measured_hematocrit_pct differs" in error.message
    assert "45 (row 1) vs 46 (row 151)" in error.message
    assert [c.patient_id for c in good(items)] == ["P2"]


def test_equal_lab_values_written_differently_are_consistent(tmp_path: Path) -> None:
    lines = [
        f"{line},{'45' if i % 2 else '45.0'}"
        for i, line in enumerate(csv_rows([("P1", "S1", 210)]))
    ]
    [cellset] = iter_table(write_csv(tmp_path / "a.csv", HEADER + ",hct", lines))
    assert isinstance(cellset, CellSet)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("sex", "x", "must be F, M, female or male"),
        ("collected_at", "yesterday", "ISO 8601"),
        ("age", "old", "must be a number"),
    ],
)
def test_bad_lab_value_names_the_row(
    tmp_path: Path, column: str, value: str, expected: str
) -> None:
    lines = [f"{line},{value}" for line in csv_rows([("P1", "S1", 210)])]
    [error] = iter_table(write_csv(tmp_path / "a.csv", f"{HEADER},{column}", lines))
    assert isinstance(error, SampleError) and error.kind == "table_lab_value"
    assert error.message.startswith(f"row 1: {column} = '{value}'")
    assert expected in error.message


def test_lab_value_out_of_range(tmp_path: Path) -> None:
    lines = [f"{line},140" for line in csv_rows([("P1", "S1", 210)])]
    [error] = iter_table(write_csv(tmp_path / "a.csv", HEADER + ",hct", lines))
    assert isinstance(error, SampleError) and error.kind == "validation"
    assert error.message.startswith("rows 1-210: measured_hematocrit_pct = 140")


# --- per-sample errors ------------------------------------------------------------------------


def three_samples() -> list[str]:
    return csv_rows([("P1", "S1", 210), ("P2", "S1", 220), ("P3", "S1", 230)])


def test_non_numeric_value_fails_only_its_sample(tmp_path: Path) -> None:
    lines = three_samples()
    lines[214] = "P2,S1,abc,30"  # row 215
    items = list(iter_table(write_csv(tmp_path / "a.csv", HEADER, lines)))
    assert [type(i) for i in items] == [CellSet, SampleError, CellSet]
    error = items[1]
    assert isinstance(error, SampleError)
    assert (error.patient_id, error.sample_id) == ("P2", "S1")
    assert error.location == "rows 211-430"
    assert error.kind == "table_value"
    assert error.message == "row 215: volume_fl = 'abc': must be a number"


def test_row_number_is_the_line_number_minus_one(tmp_path: Path) -> None:
    lines = three_samples()
    lines[499] = "P3,S1,80,"
    path = write_csv(tmp_path / "a.csv", HEADER, lines)
    [error] = errors(list(iter_table(path)))
    assert error.message == "row 500: hemoglobin_pg is empty: every cell needs one"
    assert path.read_text().splitlines()[500] == "P3,S1,80,"


def test_out_of_range_value_is_translated_to_a_row(tmp_path: Path) -> None:
    lines = three_samples()
    lines[210 + 17] = "P2,S1,500,30"
    [error] = errors(list(iter_table(write_csv(tmp_path / "a.csv", HEADER, lines))))
    assert error.kind == "validation"
    assert error.message.startswith("row 228 (volume_fl[17] of sample S1): volume_fl[17] = 500")


def test_nan_value_is_not_finite(tmp_path: Path) -> None:
    lines = three_samples()
    lines[2] = "P1,S1,NaN,30"
    [error] = errors(list(iter_table(write_csv(tmp_path / "a.csv", HEADER, lines))))
    assert error.message.startswith("row 3 (volume_fl[2] of sample S1)")
    assert "finite" in error.message


def test_too_few_cells(tmp_path: Path) -> None:
    items = list(iter_table(write_csv(tmp_path / "a.csv", HEADER, three_samples()), min_cells=215))
    [error] = errors(items)
    assert error.location == "rows 1-210" and "at least 215" in error.message
    assert len(good(items)) == 2


def test_missing_id_inside_a_sample_fails_it(tmp_path: Path) -> None:
    lines = three_samples()
    lines[300] = ",S1,80,30"
    items = list(iter_table(write_csv(tmp_path / "a.csv", HEADER, lines)))
    assert [type(i) for i in items] == [CellSet, SampleError, CellSet]
    error = items[1]
    assert isinstance(error, SampleError) and error.kind == "table_missing_id"
    assert error.location == "rows 211-430"
    assert error.message.startswith("row 301: patient_id is empty")


def test_missing_id_between_samples_is_its_own_error(tmp_path: Path) -> None:
    lines = three_samples()
    lines[210:210] = ["P9,,80,30", "P9,,81,30"]
    items = list(iter_table(write_csv(tmp_path / "a.csv", HEADER, lines)))
    assert [type(i) for i in items] == [CellSet, SampleError, CellSet, CellSet]
    error = items[1]
    assert isinstance(error, SampleError)
    assert (error.patient_id, error.sample_id, error.location) == ("P9", None, "rows 211-212")
    assert "sample_id is empty" in error.message


def test_row_with_wrong_field_count_fails_only_its_sample(tmp_path: Path) -> None:
    lines = three_samples()
    lines[450] = "P3,S1,80"
    lines[451] = "P3,S1,80,30,extra"
    items = list(iter_table(write_csv(tmp_path / "a.csv", HEADER, lines), chunk_rows=50))
    assert [type(i) for i in items] == [CellSet, CellSet, SampleError]
    error = items[2]
    assert isinstance(error, SampleError) and error.kind == "table_parse"
    assert error.location == "rows 431-660"
    assert error.message == "row 451: expected 4 fields, found 3: 'P3,S1,80'"


@pytest.mark.parametrize("where", ["first", "last"])
def test_short_row_at_either_end(tmp_path: Path, where: str) -> None:
    lines = three_samples()
    index = 0 if where == "first" else len(lines) - 1
    lines[index] = lines[index].rsplit(",", 1)[0]
    path = tmp_path / "a.csv"
    path.write_text("\n".join([HEADER, *lines]))  # and no newline at the end
    items = list(iter_table(path, chunk_rows=10))
    [error] = errors(items)
    assert error.message.startswith(f"row {index + 1}: expected 4 fields, found 3")
    assert len(good(items)) == 2


def test_non_contiguous_sample(tmp_path: Path) -> None:
    lines = csv_rows([("P1", "S1", 210), ("P2", "S1", 210), ("P1", "S1", 5), ("P3", "S1", 210)])
    items = list(iter_table(write_csv(tmp_path / "a.csv", HEADER, lines)))
    assert [type(i) for i in items] == [CellSet, CellSet, SampleError, CellSet]
    error = items[2]
    assert isinstance(error, SampleError) and error.kind == "table_not_contiguous"
    assert error.location == "rows 421-425"
    assert error.message == (
        "sample S1 (patient P1) appears again at row 421 after other samples: "
        "rows of a sample must be contiguous"
    )


def test_concentration_range_error_names_the_source_column(tmp_path: Path) -> None:
    lines = [f"P1,S1,100,{'900' if i == 3 else '33'}" for i in range(210)]
    path = write_csv(tmp_path / "hc.csv", "patient_id,sample_id,volume_fl,hb_conc_g_dl", lines)
    [error] = iter_table(path)
    assert isinstance(error, SampleError)
    assert error.message.startswith("row 4 (hemoglobin_pg[3] of sample S1): hemoglobin_pg[3] = 900")
    assert "hb_conc_g_dl" in error.message
