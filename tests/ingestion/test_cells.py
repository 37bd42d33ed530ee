import math

import numpy as np
import pytest

from ingestion.cells import CellSet, CellValidationError, LabValues


def _cells(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    volume = rng.normal(90, 10, n)
    return volume, volume * 0.33


def test_valid_cellset_holds_float32_copies():
    volume, hemoglobin = _cells()
    cs = CellSet("p1", "s1", volume, hemoglobin)
    assert cs.volume_fl.dtype == np.float32 and cs.hemoglobin_pg.dtype == np.float32
    assert cs.n_cells == 300
    assert cs.cells().shape == (300, 2)
    assert np.allclose(cs.volume_fl, volume, rtol=1e-6)


def test_validation_never_mutates_or_aliases_caller_data():
    volume, hemoglobin = _cells()
    before = volume.copy()
    cs = CellSet("p1", "s1", volume, hemoglobin)
    assert np.array_equal(volume, before)
    volume[0] = 1.0  # the caller keeps ownership of its array
    assert cs.volume_fl[0] != 1.0
    with pytest.raises(ValueError):
        cs.volume_fl[0] = 5.0  # and the cell set's arrays are read-only


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("volume_fl", -3.0, "volume_fl[17] = -3: must be in (0, 300] fL"),
        ("volume_fl", 0.0, "volume_fl[17] = 0: must be in (0, 300] fL"),
        ("volume_fl", 300.5, "volume_fl[17] = 300.5: must be in (0, 300] fL"),
        ("hemoglobin_pg", 101.0, "hemoglobin_pg[17] = 101: must be in (0, 100] pg"),
        ("volume_fl", math.nan, "volume_fl[17] = nan: must be a finite number"),
        ("hemoglobin_pg", math.inf, "hemoglobin_pg[17] = inf: must be a finite number"),
    ],
)
def test_out_of_range_cell_is_named_with_index_value_and_rule(field, value, message):
    volume, hemoglobin = _cells()
    arrays = {"volume_fl": volume, "hemoglobin_pg": hemoglobin}
    arrays[field][17] = value
    with pytest.raises(CellValidationError) as info:
        CellSet("p1", "s1", arrays["volume_fl"], arrays["hemoglobin_pg"])
    assert str(info.value).startswith(message)
    assert info.value.field == f"{field}[17]"


def test_300_fl_is_inside_the_closed_upper_bound():
    volume, hemoglobin = _cells()
    volume[3] = 300.0
    hemoglobin[3] = 100.0
    assert CellSet("p", "s", volume, hemoglobin).n_cells == 300


def test_too_few_cells_and_configurable_minimum():
    volume, hemoglobin = _cells(150)
    with pytest.raises(CellValidationError, match="150 cells: at least 200 are required"):
        CellSet("p", "s", volume, hemoglobin)
    assert CellSet("p", "s", volume, hemoglobin, min_cells=100).n_cells == 150


def test_unequal_lengths_are_rejected():
    volume, hemoglobin = _cells()
    with pytest.raises(CellValidationError, match="300 values but hemoglobin_pg has 299"):
        CellSet("p", "s", volume, hemoglobin[:-1])


def test_two_dimensional_input_is_rejected():
    volume, hemoglobin = _cells()
    with pytest.raises(CellValidationError, match=r"shape \[150, 2\]"):
        CellSet("p", "s", volume.reshape(150, 2), hemoglobin)


def test_non_numeric_input_is_rejected():
    with pytest.raises(CellValidationError, match="must be a list of numbers"):
        CellSet("p", "s", ["a"] * 300, [1.0] * 300)


@pytest.mark.parametrize("bad", ["", "   ", "x" * 129, "a\nb", None, 7])
def test_ids_must_be_non_empty_bounded_text(bad):
    volume, hemoglobin = _cells()
    with pytest.raises(CellValidationError) as info:
        CellSet(bad, "s", volume, hemoglobin)
    assert info.value.field == "patient_id"


def test_lab_values_are_range_checked():
    with pytest.raises(CellValidationError, match=r"measured_hematocrit_pct = 120"):
        LabValues(measured_hematocrit_pct=120.0)
    with pytest.raises(CellValidationError, match="sex"):
        LabValues(sex="X")  # type: ignore[arg-type]
    with pytest.raises(CellValidationError, match=r"age_years = -1: must be in \[0, 130\]"):
        LabValues(age_years=-1)
    assert LabValues(measured_hematocrit_pct=42.0, rbc_count_e12_per_l=4.6, sex="F",
                     age_years=0).age_years == 0


def test_swapped_channels_are_named_as_the_likely_cause():
    rng = np.random.default_rng(3)
    volume = rng.normal(88.0, 12.0, 400)
    hemoglobin = volume * 0.33
    with pytest.raises(CellValidationError, match="look swapped") as caught:
        CellSet("p", "s", hemoglobin, volume)  # channels given the wrong way round
    assert caught.value.field == "hemoglobin_pg"
    assert "check the channel order" in caught.value.message
