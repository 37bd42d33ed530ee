"""Mapping an export header onto `CellSet` fields: aliases, units, missing/ambiguous columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingestion.cells import CellSet
from ingestion.errors import IngestionError
from ingestion.tables.columns import ColumnMap, split_unit
from ingestion.tables.long_format import iter_table
from tests.ingestion.tabular_helpers import HEADER, csv_rows, write_csv

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


# --- units ------------------------------------------------------------------------------------


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


def test_unknown_unit_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "ml.csv", "patient_id,sample_id,Volume (mL),hemoglobin_pg", [])
    with pytest.raises(IngestionError) as info:
        iter_table(path)
    assert info.value.kind == "table_unit"
    assert info.value.field == "Volume (mL)"
    assert "'ml'" in info.value.message and "fl" in info.value.message


# --- missing and ambiguous columns ------------------------------------------------------------


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
