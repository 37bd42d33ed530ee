"""Long-format CSV/Parquet exports: round trips, header mapping, per-sample errors, streaming."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion.cells import CellSet, LabValues
from ingestion.columns import ColumnMap, split_unit
from ingestion.errors import IngestionError, SampleError
from ingestion.table_readers import CsvReader
from ingestion.tabular import iter_table, write_table

HEADER = "patient_id,sample_id,volume_fl,hemoglobin_pg"


def make_cellset(
    patient: str, sample: str, n: int = 250, *, seed: int = 0, lab: LabValues | None = None
) -> CellSet:
    rng = np.random.default_rng(seed)
    return CellSet(
        patient,
        sample,
        rng.uniform(60.0, 120.0, n),
        rng.uniform(20.0, 40.0, n),
        lab=lab or LabValues(),
        min_cells=1,
    )


def csv_rows(samples: list[tuple[str, str, int]], *, seed: int = 0) -> list[str]:
    """Data lines for (patient, sample, n_cells) blocks, in order."""
    rng = np.random.default_rng(seed)
    lines = []
    for patient, sample, n in samples:
        for v, h in zip(rng.uniform(60, 120, n), rng.uniform(20, 40, n), strict=True):
            lines.append(f"{patient},{sample},{v:.3f},{h:.3f}")
    return lines


def write_csv(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def summary(item: CellSet | SampleError) -> tuple[Any, ...]:
    """A comparable form of one reader output."""
    if isinstance(item, SampleError):
        return ("error", item)
    return (
        "ok",
        item.patient_id,
        item.sample_id,
        item.volume_fl.tobytes(),
        item.hemoglobin_pg.tobytes(),
        item.lab,
    )


def assert_same_cellsets(expected: list[CellSet], got: list[CellSet | SampleError]) -> None:
    assert [type(g) for g in got] == [CellSet] * len(expected)
    for want, have in zip(expected, got, strict=True):
        assert isinstance(have, CellSet)
        assert (have.patient_id, have.sample_id) == (want.patient_id, want.sample_id)
        np.testing.assert_array_equal(have.volume_fl, want.volume_fl)
        np.testing.assert_array_equal(have.hemoglobin_pg, want.hemoglobin_pg)
        assert have.lab == want.lab


def errors(items: list[CellSet | SampleError]) -> list[SampleError]:
    return [i for i in items if isinstance(i, SampleError)]


def good(items: list[CellSet | SampleError]) -> list[CellSet]:
    return [i for i in items if isinstance(i, CellSet)]


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


# --- header mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "roles"),  # roles: p(atient) s(ample) v(olume) h(emoglobin) x (ignored)
    [
        ("patient_id,sample_id,volume_fl,hemoglobin_pg", "psvh"),
        ("Patient ID,Sample,Volume (fL),Hb [pg]", "psvh"),
        ("PATIENT_ID,SAMPLE_ID,V [µm³],hgb_pg", "psvh"),
        ("pid,sid,rbc_volume_um3,CH", "psvh"),
        ("patient,specimen_id,mcv_cell,hemoglobin", "psvh"),
        ("sample_id,extra_flag,patient_id,Hemoglobin (pg),Volume [um3],fsc", "sxphvx"),
    ],
)
def test_header_aliases_and_unit_suffixes(tmp_path: Path, header: str, roles: str) -> None:
    rng = np.random.default_rng(5)
    volume, hemoglobin = rng.uniform(60, 120, 220).round(3), rng.uniform(20, 40, 220).round(3)
    lines = []
    for v, h in zip(volume, hemoglobin, strict=True):
        cell = {"p": "P1", "s": "S1", "v": f"{v}", "h": f"{h}", "x": "x"}
        lines.append(",".join(cell[role] for role in roles))
    [cellset] = iter_table(write_csv(tmp_path / "a.csv", header, lines))
    assert isinstance(cellset, CellSet)
    np.testing.assert_array_equal(cellset.volume_fl, volume.astype(np.float32))
    np.testing.assert_array_equal(cellset.hemoglobin_pg, hemoglobin.astype(np.float32))


def test_split_unit_reads_suffixes() -> None:
    assert split_unit("Volume (fL)", {"fl": 1.0}) == ("volume", "fl")
    assert split_unit("hc_g_dl", {"g/dl": 1.0}) == ("hc", "g/dl")
    assert split_unit("V [µm³]", {"um3": 1.0}) == ("v", "um3")
    assert split_unit("rbc_volume", {"fl": 1.0}) == ("rbc_volume", None)
    assert split_unit("RBC (10^12/L)", {}) == ("rbc", "10^12/l")


def test_custom_aliases(tmp_path: Path) -> None:
    lines = [line.replace(",", ";") for line in csv_rows([("P1", "S1", 210)])]
    path = write_csv(tmp_path / "a.csv", "Pat;Probe;VOL;HGB", lines)
    with pytest.raises(IngestionError):
        iter_table(path)
    mapping = ColumnMap().with_aliases(
        patient_id=["pat"], sample_id=["probe"], volume=["vol"], hemoglobin=["hgb"]
    )
    [cellset] = iter_table(path, columns=mapping)
    assert isinstance(cellset, CellSet) and cellset.n_cells == 210


def test_semicolon_delimiter_bom_and_crlf(tmp_path: Path) -> None:
    lines = [line.replace(",", ";") for line in csv_rows([("P1", "S1", 210)])]
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + "\r\n".join([HEADER.replace(",", ";"), *lines]) + "\r\n").encode())
    [cellset] = iter_table(path)
    assert isinstance(cellset, CellSet)
    assert cellset.patient_id == "P1" and cellset.n_cells == 210


@pytest.mark.parametrize(("column", "per_g_dl"), [("CHC (g/dL)", 1.0), ("hc_g_l", 10.0)])
def test_hemoglobin_from_concentration(tmp_path: Path, column: str, per_g_dl: float) -> None:
    rng = np.random.default_rng(7)
    volume = rng.uniform(60, 120, 210).round(2)
    concentration_g_dl = rng.uniform(28, 36, 210).round(2)
    volume[0], concentration_g_dl[0] = 90.0, 33.0  # 90 fL at 33 g/dL carries 29.7 pg
    lines = [
        f"P1,S1,{v},{c * per_g_dl:.4f}" for v, c in zip(volume, concentration_g_dl, strict=True)
    ]
    path = write_csv(tmp_path / "hc.csv", f"patient_id,sample_id,volume_fl,{column}", lines)
    [cellset] = iter_table(path)
    assert isinstance(cellset, CellSet)
    assert cellset.hemoglobin_pg[0] == pytest.approx(29.7, rel=1e-6)
    np.testing.assert_allclose(
        cellset.hemoglobin_pg, volume * concentration_g_dl / 100.0, rtol=1e-6
    )


def test_mass_column_wins_over_concentration(tmp_path: Path) -> None:
    lines = [f"{line},999" for line in csv_rows([("P1", "S1", 210)])]
    path = write_csv(tmp_path / "both.csv", HEADER + ",chc", lines)
    [cellset] = iter_table(path)
    assert isinstance(cellset, CellSet)
    assert float(cellset.hemoglobin_pg.max()) <= 40.0


def test_concentration_range_error_names_the_source_column(tmp_path: Path) -> None:
    lines = [f"P1,S1,100,{'900' if i == 3 else '33'}" for i in range(210)]
    path = write_csv(tmp_path / "hc.csv", "patient_id,sample_id,volume_fl,hb_conc_g_dl", lines)
    [error] = iter_table(path)
    assert isinstance(error, SampleError)
    assert error.message.startswith("row 4 (hemoglobin_pg[3] of sample S1): hemoglobin_pg[3] = 900")
    assert "hb_conc_g_dl" in error.message


def test_unknown_unit_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "ml.csv", "patient_id,sample_id,Volume (mL),hemoglobin_pg", [])
    with pytest.raises(IngestionError) as info:
        iter_table(path)
    assert info.value.kind == "table_unit"
    assert info.value.field == "Volume (mL)"
    assert "'ml'" in info.value.message and "fl" in info.value.message


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("patient_id,sample_id,hemoglobin_pg", "volume_fl"),
        ("patient_id,sample_id,volume_fl", "hemoglobin_pg"),
        ("sample_id,volume_fl,hemoglobin_pg", "patient_id"),
    ],
)
def test_missing_required_column_raises_at_call(tmp_path: Path, header: str, field: str) -> None:
    path = write_csv(tmp_path / "a.csv", header, ["P1,S1,80"])
    with pytest.raises(IngestionError) as info:
        iter_table(path)  # not even iterated: the header is checked up front
    assert info.value.kind == "table_column"
    assert info.value.field == field
    assert f"no column for {field}" in info.value.message
    assert "'sample_id'" in info.value.message or "'patient_id'" in info.value.message


def test_two_columns_for_one_field_raise(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", HEADER + ",volume", [])
    with pytest.raises(IngestionError, match="both name volume_fl") as info:
        iter_table(path)
    assert info.value.kind == "table_column"


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


# --- file-level errors ------------------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    for content in (b"", b"\n\n", b"\xef\xbb\xbf"):
        path = tmp_path / "empty.csv"
        path.write_bytes(content)
        with pytest.raises(IngestionError) as info:
            iter_table(path)
        assert info.value.kind == "table_empty"
        assert "empty" in info.value.message


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


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(IngestionError) as info:
        iter_table(tmp_path / "nope.csv")
    assert info.value.kind == "table_unreadable" and "nope.csv" in info.value.message


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


def test_parquet_needs_a_seekable_stream(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    write_table(path, ROUND_TRIP[:1])
    with pytest.raises(IngestionError, match="seekable") as info:
        iter_table(OneWay(path.read_bytes()))
    assert info.value.kind == "table_unreadable"


# --- streaming --------------------------------------------------------------------------------


class OneWay(io.RawIOBase):
    """A non-seekable stream that counts the bytes handed out."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        self.consumed += len(chunk)
        return len(chunk)


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
