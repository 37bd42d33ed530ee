"""`read_fcs`: sources, channel mapping and units, ids, decoding failures, flipped byte order."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fcsparser
import numpy as np
import pytest

from ingestion.cells import CellValidationError, LabValues
from ingestion.errors import IngestionError
from ingestion.fcs.channels import ChannelMap
from ingestion.fcs.reader import read_fcs, read_fcs_channels, read_fcs_table
from ingestion.fcs.writer import encode_fcs, write_fcs
from tests.ingestion.fcs_factory import (
    ENCODINGS,
    N_CELLS,
    quick,
    rbc_columns,
    rbc_fcs,
    replace_text,
    two_data_sets,
    with_keywords,
)

GOOD = rbc_fcs()


# --- sources and data sets -------------------------------------------------------------------


def test_sources_path_bytes_and_file_objects_agree(tmp_path: Path) -> None:
    blob = rbc_fcs()
    path = tmp_path / "sample.fcs"
    assert write_fcs(path, rbc_columns(), patient_id="P-001", sample_id="S-001") == len(blob)
    assert path.read_bytes() == blob

    class Stream(io.RawIOBase):  # readable, not seekable: an HTTP body
        def __init__(self) -> None:
            self._inner = io.BytesIO(blob)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            data = self._inner.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)

    results = [
        read_fcs(source)
        for source in (blob, bytearray(blob), memoryview(blob), path, str(path), io.BytesIO(blob),
                       io.BufferedReader(Stream()))
    ]  # fmt: skip
    for cells in results:
        np.testing.assert_array_equal(cells.volume_fl, results[0].volume_fl)
        np.testing.assert_array_equal(cells.hemoglobin_pg, results[0].hemoglobin_pg)


def test_first_data_set_of_a_multi_data_set_file_is_read() -> None:
    first = rbc_fcs(seed=1, sample_id="first")
    blob = two_data_sets(first, rbc_fcs(seed=2, sample_id="second"))
    info = read_fcs_channels(blob)
    assert info.next_data == len(blob) - len(rbc_fcs(seed=2, sample_id="second"))
    assert any("only the first is read" in note for note in info.notes)
    cells = read_fcs(blob)
    assert cells.sample_id == "first"
    np.testing.assert_array_equal(cells.volume_fl, read_fcs(first).volume_fl)


# --- channel mapping and units ---------------------------------------------------------------


def test_concentration_channel_is_converted_to_pg() -> None:
    n = 200
    volume = np.tile([90.0, 80.0, 100.0, 120.5], n // 4)
    concentration = np.tile([33.0, 30.0, 35.5, 31.0], n // 4)
    blob = encode_fcs({"RBC Volume": volume, "Hb conc": concentration}, datatype="D",
                      patient_id="p", sample_id="s")  # fmt: skip
    cells = read_fcs(blob)
    np.testing.assert_allclose(cells.hemoglobin_pg[:4], [29.7, 24.0, 35.5, 37.355], rtol=1e-6)


def test_content_channel_is_used_as_is() -> None:
    columns = {"FSC": np.full(N_CELLS, 5.0), "V": np.full(N_CELLS, 88.0),
               "CH": np.full(N_CELLS, 29.5), "HC": np.full(N_CELLS, 40.0)}  # fmt: skip
    cells = read_fcs(encode_fcs(columns, patient_id="p", sample_id="s"))
    assert set(cells.hemoglobin_pg.tolist()) == {29.5}


def test_user_channel_map_picks_channels_by_pns() -> None:
    columns = {"FL1-A": np.full(N_CELLS, 95.0), "FL2-A": np.full(N_CELLS, 31.0)}
    blob = encode_fcs(columns, long_names={"FL1-A": "size", "FL2-A": "hgb"},
                      patient_id="p", sample_id="s")  # fmt: skip
    with pytest.raises(IngestionError) as info:
        read_fcs(blob)
    assert info.value.kind == "fcs_no_channel"
    assert "file has channels ['FL1-A (size)', 'FL2-A (hgb)']" in info.value.message
    cmap = ChannelMap.from_dict({"volume": ["SIZE"]})  # "hgb" matches the default "HGB"
    cells = read_fcs(blob, channel_map=cmap)
    assert (cells.volume_fl[0], cells.hemoglobin_pg[0]) == (95.0, 31.0)


def test_out_of_range_values_name_the_channel() -> None:
    columns = rbc_columns()
    columns["V"][17] = 450.0
    with pytest.raises(CellValidationError) as info:
        read_fcs(encode_fcs(columns, patient_id="p", sample_id="s"))
    assert info.value.field == "volume_fl[17]"
    assert "from FCS channel $P1N 'V'" in info.value.message


def test_nan_in_a_float_file_is_a_validation_error() -> None:
    columns = rbc_columns()
    columns["HC"][3] = np.nan
    with pytest.raises(CellValidationError) as info:
        read_fcs(encode_fcs(columns, patient_id="p", sample_id="s"))
    assert info.value.field == "hemoglobin_pg[3]"
    assert "$P2N 'HC' × volume / 100" in info.value.message


def test_min_cells_and_lab_values_pass_through() -> None:
    blob = rbc_fcs(n=50)
    with pytest.raises(CellValidationError, match="at least 200"):
        read_fcs(blob)
    cells = read_fcs(blob, min_cells=10, lab=LabValues(measured_hematocrit_pct=41.0))
    assert cells.n_cells == 50 and cells.lab.measured_hematocrit_pct == 41.0


def test_log_amplified_channel_is_refused() -> None:
    blob = with_keywords(rbc_fcs(), P1E="4,1")
    assert read_fcs_channels(blob).channels[0].amplification == "4,1"
    with pytest.raises(IngestionError) as info:
        read_fcs(blob)
    assert (info.value.kind, info.value.field) == ("fcs_unsupported", "$P1E")


# --- ids -------------------------------------------------------------------------------------


def test_ids_from_keywords() -> None:
    cells = read_fcs(rbc_fcs(patient_id="  MRN-42 ", sample_id="TUBE-9"))
    assert (cells.patient_id, cells.sample_id) == ("MRN-42", "TUBE-9")


def test_caller_ids_win_over_keywords() -> None:
    cells = read_fcs(rbc_fcs(), patient_id="caller-p", sample_id="caller-s")
    assert (cells.patient_id, cells.sample_id) == ("caller-p", "caller-s")


def test_sample_id_falls_back_to_fil_then_path_stem(tmp_path: Path) -> None:
    with_fil = rbc_fcs(sample_id=None, keywords={"$FIL": r"E:\Data\Run 3\tube_07.fcs"})
    assert read_fcs(with_fil).sample_id == "tube_07"
    path = tmp_path / "A1_well.fcs"
    path.write_bytes(rbc_fcs(sample_id=None))
    assert read_fcs(path).sample_id == "A1_well"
    with pytest.raises(IngestionError) as info:
        read_fcs(rbc_fcs(sample_id=None))
    assert (info.value.kind, info.value.field) == ("fcs_no_id", "sample_id")


def test_default_sample_id_is_only_the_last_fallback(tmp_path: Path) -> None:
    assert read_fcs(rbc_fcs(sample_id=None), default_sample_id="member").sample_id == "member"
    assert read_fcs(rbc_fcs(sample_id="TUBE-9"), default_sample_id="member").sample_id == "TUBE-9"
    with_fil = rbc_fcs(sample_id=None, keywords={"$FIL": "tube_07.fcs"})
    assert read_fcs(with_fil, default_sample_id="member").sample_id == "tube_07"
    path = tmp_path / "A1_well.fcs"
    path.write_bytes(rbc_fcs(sample_id=None))
    assert read_fcs(path, default_sample_id="member").sample_id == "A1_well"
    cells = read_fcs(rbc_fcs(sample_id=None), sample_id="caller", default_sample_id="member")
    assert (cells.sample_id, cells.patient_id) == ("caller", "P-001")


def test_missing_or_blank_patient_id_is_a_clear_error() -> None:
    for blob in (rbc_fcs(patient_id=None), rbc_fcs(patient_id="   ")):
        with pytest.raises(IngestionError) as info:
            read_fcs(blob)
        assert (info.value.kind, info.value.field) == ("fcs_no_id", "patient_id")
        assert "$SRC" in info.value.message
    assert read_fcs(rbc_fcs(patient_id=None), patient_id="given").patient_id == "given"


# --- failures while decoding -----------------------------------------------------------------


def test_fcsparser_failures_are_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(self: object, *args: object, **kwargs: object) -> None:
        raise MemoryError("Unable to allocate 14.6 TiB")

    monkeypatch.setattr(fcsparser.api.FCSParser, "load_file", explode)
    with pytest.raises(IngestionError) as info:
        read_fcs(GOOD)
    assert info.value.kind == "fcs_corrupt"
    assert "MemoryError: Unable to allocate 14.6 TiB" in info.value.message


def test_missing_file_is_an_io_error(tmp_path: Path) -> None:
    with pytest.raises(IngestionError) as info:
        read_fcs(tmp_path / "nope.fcs")
    assert info.value.kind == "fcs_io" and "nope.fcs" in info.value.message
    with pytest.raises(IngestionError) as info:
        read_fcs(tmp_path)
    assert info.value.kind == "fcs_io"


# --- flipped byte order ----------------------------------------------------------------------


def _flip(blob: bytes) -> bytes:
    return replace_text(blob, b"/$BYTEORD/1,2,3,4/", b"/$BYTEORD/4,3,2,1/")


@pytest.mark.parametrize("round_values", [False, True], ids=["measured", "round"])
@pytest.mark.parametrize(("datatype", "bits"), ENCODINGS)
def test_flipped_byte_order_ends_in_a_clean_error(
    datatype: Any, bits: int | None, round_values: bool
) -> None:
    columns = rbc_columns(integer=datatype == "I" or round_values)
    blob = encode_fcs(columns, datatype=datatype, bits=bits, patient_id="p", sample_id="s")
    assert read_fcs(blob).n_cells == N_CELLS
    with quick(), pytest.raises(IngestionError) as info:
        read_fcs(_flip(blob))
    assert info.value.field and info.value.field.startswith(("$BYTEORD", "volume_fl", "hemoglobin"))


def test_flipped_round_floats_would_pass_cellset_range_checks() -> None:
    """Why the reader checks for subnormals: swapped 90.0 reads as ~6.5e-41, inside (0, 300]."""
    columns = rbc_columns(integer=True)
    flipped = _flip(encode_fcs(columns, datatype="F", patient_id="p", sample_id="s"))
    raw = read_fcs_table(flipped).data  # decoding alone does not notice anything
    assert np.all((raw > 0) & (raw < 1e-30))
    with pytest.raises(IngestionError) as info:
        read_fcs(flipped)
    assert (info.value.kind, info.value.field) == ("fcs_corrupt", "$BYTEORD")
    assert "subnormal" in info.value.message
