"""FCS reader and writer: exact round trips, channel mapping, ids, and every way a file can lie."""

from __future__ import annotations

import io
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fcsparser
import numpy as np
import pytest

from ingestion import fcs_writer
from ingestion.cells import CellValidationError, LabValues
from ingestion.channels import ChannelMap
from ingestion.errors import IngestionError
from ingestion.fcs import read_fcs, read_fcs_channels, read_fcs_table
from ingestion.fcs_writer import encode_fcs, write_fcs
from tests.ingestion.fcs_factory import (
    N_CELLS,
    patch_header,
    rbc_columns,
    rbc_fcs,
    split_fcs,
    two_data_sets,
    with_data,
    with_keywords,
)

VERSIONS = ("2.0", "3.0", "3.1")
ENCODINGS = [("I", 16), ("I", 32), ("F", None), ("D", None)]
SLOW = 5.0  # seconds; a generous sanity bound on a shared machine (typical: a few ms)
GOOD = rbc_fcs()
GOOD_I = rbc_fcs(datatype="I", bits=16, version="3.0")
GOOD_20 = rbc_fcs(version="2.0")


@contextmanager
def quick() -> Iterator[None]:
    start = time.monotonic()
    yield
    assert time.monotonic() - start < SLOW


def expected_values(columns: dict[str, np.ndarray], datatype: str) -> np.ndarray:
    """What the file stores: float32 for F, exact otherwise."""
    matrix = np.stack(list(columns.values()), axis=1)
    return matrix.astype(np.float32).astype(np.float64) if datatype == "F" else matrix


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("byteorder", ["little", "big"])
@pytest.mark.parametrize(("datatype", "bits"), ENCODINGS)
@pytest.mark.parametrize("version", VERSIONS)
def test_round_trip_is_exact(
    version: Any, datatype: Any, bits: int | None, byteorder: Any, tmp_path: Path
) -> None:
    columns = rbc_columns(integer=datatype == "I")
    if datatype == "I" and bits == 32:
        columns["BIG"] = np.arange(N_CELLS, dtype=np.float64) * 9_999_991 + 7  # needs > 16 bits
    elif datatype == "D":
        columns["TINY"] = np.linspace(1e-300, 1e-290, N_CELLS)  # not representable in float32
    blob = encode_fcs(
        columns,
        version=version,
        datatype=datatype,
        byteorder=byteorder,
        bits=bits,
        patient_id="P-7",
        sample_id="S-7",
    )
    table = read_fcs_table(blob)
    info = table.info
    assert (info.version, info.datatype, info.byteorder) == (version, datatype, byteorder)
    assert info.n_events == N_CELLS
    assert info.channel_names == tuple(columns)
    assert [c.bits for c in info.channels] == [bits or {"F": 32, "D": 64}[datatype]] * len(columns)
    np.testing.assert_array_equal(table.data, expected_values(columns, datatype))

    # fcsparser on its own reads the same numbers (the writer is not only self-consistent).
    path = tmp_path / "round_trip.fcs"
    path.write_bytes(blob)
    meta, frame = fcsparser.parse(str(path), channel_naming="$PnN", dtype=None)
    np.testing.assert_array_equal(frame.to_numpy(dtype=np.float64), table.data)
    assert meta["$SRC"] == "P-7" and meta["$SMNO"] == "S-7"

    cells = read_fcs(blob)
    assert (cells.patient_id, cells.sample_id, cells.n_cells) == ("P-7", "S-7", N_CELLS)
    volume = np.asarray(columns["V"], dtype=np.float32)
    np.testing.assert_array_equal(cells.volume_fl, volume)
    np.testing.assert_allclose(cells.hemoglobin_pg, columns["V"] * columns["HC"] / 100.0, rtol=1e-6)


def test_big_endian_24_bit_integers_read_exactly() -> None:
    columns = {
        "V": np.arange(N_CELLS) + 60.0,
        "CH": np.full(N_CELLS, 30.0),
        "T": [2**24 - 1] * N_CELLS,
    }
    blob = encode_fcs(columns, datatype="I", bits=24, byteorder="big")
    np.testing.assert_array_equal(read_fcs_table(blob).data, np.stack(list(columns.values()), 1))


def test_mixed_integer_widths_read_exactly() -> None:
    # Mixed widths take fcsparser's structured-array path, like the CyFlow Cube 8 file.
    columns = {
        "V": np.full(N_CELLS, 91.0),
        "CH": np.full(N_CELLS, 29.0),
        "T": np.arange(N_CELLS) * 1e6,
    }
    blob = encode_fcs(
        columns, datatype="I", bits={"V": 8, "CH": 16, "T": 32}, patient_id="p", sample_id="s"
    )
    table = read_fcs_table(blob)
    assert [c.bits for c in table.info.channels] == [8, 16, 32]
    np.testing.assert_array_equal(table.data, np.stack(list(columns.values()), 1))
    assert read_fcs(blob).hemoglobin_pg[0] == 29.0


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


def test_large_offsets_go_to_keywords(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend 8 digits end at 500 bytes, so the writer must put 0 in the HEADER (3.x only).
    monkeypatch.setattr(fcs_writer, "MAX_HEADER_OFFSET", 1000)
    blob = rbc_fcs(version="3.1")
    assert blob[26:42] == b"       0       0"
    assert read_fcs(blob).n_cells == N_CELLS
    with pytest.raises(ValueError, match=r"FCS 2\.0 cannot address"):
        rbc_fcs(version="2.0")


def test_enddata_one_past_the_end_is_tolerated_but_two_are_not() -> None:
    blob = rbc_fcs()
    _, _, data = split_fcs(blob)
    off_by_one = with_data(blob, data + b"\x00")  # how MACSQuant 3.1 files look
    assert read_fcs(off_by_one).n_cells == N_CELLS
    assert any("1 byte longer" in note for note in read_fcs_channels(off_by_one).notes)
    with pytest.raises(IngestionError, match="DATA segment holds"):
        read_fcs(with_data(blob, data + b"\x00\x00"))


def test_text_without_closing_delimiter_is_tolerated_like_fcsparser_does() -> None:
    blob = patch_header(GOOD, 1, int(GOOD[18:26]) - 1)  # TEXT now stops before its last "/"
    info = read_fcs_channels(blob)
    assert any("does not end with its delimiter" in note for note in info.notes)
    with pytest.warns(UserWarning, match="same delimiter character"):  # fcsparser's own warning
        cells = read_fcs(blob)
    np.testing.assert_array_equal(cells.volume_fl, read_fcs(GOOD).volume_fl)


# --- writer details --------------------------------------------------------------------------


def test_header_offsets_are_right_justified_and_match_keywords() -> None:
    blob = rbc_fcs(version="3.1")
    assert blob[:10] == b"FCS3.1    "
    fields = [blob[10 + 8 * i : 18 + 8 * i] for i in range(6)]
    assert all(len(f) == 8 and f == f.rjust(8) and f.strip().isdigit() for f in fields)
    text_start, text_end, data_start, data_end = (int(f) for f in fields[:4])
    assert text_start == 58 and blob[text_start : text_start + 1] == b"/"
    assert blob[text_end : text_end + 1] == b"/" and data_start == text_end + 1
    assert data_end == len(blob) - 1
    _, keywords, _ = split_fcs(blob)
    assert (int(keywords["$BEGINDATA"]), int(keywords["$ENDDATA"])) == (data_start, data_end)
    assert keywords["$P1R"] and keywords["$P1E"] == "0,0" and keywords["$MODE"] == "L"


def test_delimiters_in_values_are_escaped_by_doubling(tmp_path: Path) -> None:
    blob = rbc_fcs(
        keywords={"$FIL": "runs/2024/a.fcs", "$COM": "x//y/"}, long_names={"V": "Vol/fL"}
    )
    assert b"/$FIL/runs//2024//a.fcs/" in blob
    info = read_fcs_channels(blob)
    assert info.keywords["$FIL"] == "runs/2024/a.fcs" and info.keywords["$COM"] == "x//y/"
    assert info.channels[0].long_name == "Vol/fL"
    path = tmp_path / "escaped.fcs"
    path.write_bytes(blob)
    meta = fcsparser.parse(str(path), meta_data_only=True)
    assert meta["$FIL"] == "runs/2024/a.fcs" and meta["$P1S"] == "Vol/fL"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"keywords": {"$COM": "/leading"}}, "must not start with '/'"),
        ({"keywords": {"$COM": ""}}, "non-empty string"),
        ({"keywords": {"$tot": "5"}}, "sets $TOT itself"),
        ({"keywords": {"$BEGINDATA": "5"}}, "sets $BEGINDATA itself"),
        ({"datatype": "I", "bits": 12}, "expected one of (8, 16, 24, 32)"),
        ({"datatype": "F", "bits": 64}, "always 32-bit"),
        ({"version": "4.0"}, "expected '2.0', '3.0' or '3.1'"),
        ({"long_names": {"nope": "x"}}, "unknown channels ['nope']"),
    ],
)
def test_writer_refuses_what_it_cannot_write_faithfully(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        encode_fcs(rbc_columns(), **kwargs)
    assert fragment in str(info.value)


def test_writer_refuses_integers_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match=r"V\[0\] = 70000.0: .* 16 bits"):
        encode_fcs({"V": [70000.0], "CH": [1.0]}, datatype="I", bits=16)
    with pytest.raises(ValueError, match="whole numbers"):
        encode_fcs({"V": [1.5], "CH": [1.0]}, datatype="I")
    with pytest.raises(ValueError, match=r"\$PnN must be unique"):
        encode_fcs(np.ones((2, 2)), names=["V", "v"])


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


# --- files that lie --------------------------------------------------------------------------


def _replace_text(blob: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and blob.count(old) == 1
    return blob.replace(old, new)


def _garbage_text(blob: bytes) -> bytes:
    start, end = int(blob[10:18]), int(blob[18:26])
    noise = np.random.default_rng(5).integers(0, 256, end - start + 1, dtype=np.uint8).tobytes()
    return blob[:start] + noise + blob[end + 1 :]


CORRUPT: dict[str, tuple[Callable[[], bytes], str, str]] = {
    # name: (make file, kind, fragment of the message)
    "empty": (lambda: b"", "fcs_corrupt", "file is empty (0 bytes)"),
    "zero bytes": (lambda: b"\x00" * 4096, "fcs_corrupt", "only zero bytes"),
    "png renamed": (
        lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "fcs_corrupt", "a PNG image",
    ),
    "text file": (lambda: b"patient,volume\n1,90\n", "fcs_corrupt", "not an FCS file"),
    "fcs 4.0": (lambda: b"FCS4.0" + GOOD[6:], "fcs_unsupported", "FCS version '4.0'"),
    "header only": (lambda: GOOD[:40], "fcs_corrupt", "needs 58"),
    "truncated data": (lambda: GOOD[:-100], "fcs_corrupt", "the file is truncated"),
    "truncated text": (lambda: GOOD[:120], "fcs_corrupt", "TEXT segment ends at byte"),
    "text past end": (
        lambda: patch_header(GOOD, 1, 99_999_999), "fcs_corrupt", "TEXT segment ends",
    ),
    "data past end (2.0)": (
        lambda: patch_header(GOOD_20, 3, len(GOOD_20) + 4000), "fcs_corrupt", "truncated",
    ),
    "header offset not a number": (
        lambda: GOOD[:18] + b"  12x4  " + GOOD[26:], "fcs_corrupt", "right-justified integer",
    ),
    "header and $BEGINDATA disagree": (
        lambda: patch_header(GOOD, 2, int(GOOD[26:34]) + 4), "fcs_corrupt", "must agree",
    ),
    "garbage text": (lambda: _garbage_text(GOOD), "fcs_corrupt", ""),
    "$PAR one short": (
        lambda: with_keywords(GOOD, PAR="1"), "fcs_corrupt", "so $PAR or a $PnB is probably wrong",
    ),
    "$PAR one short (integer)": (
        lambda: with_keywords(GOOD_I, PAR="1"), "fcs_corrupt", "bytes per event",
    ),
    "$TOT too large": (
        lambda: with_keywords(GOOD, TOT=str(N_CELLS + 1)), "fcs_corrupt", "DATA segment holds",
    ),
    "$TOT = 1e12": (
        lambda: with_keywords(GOOD, TOT="1000000000000"), "fcs_corrupt",
        "$TOT = 1000000000000: 1000000000000 events × 8 bytes",
    ),
    "$TOT = 0": (lambda: with_keywords(GOOD, TOT="0"), "fcs_empty", "holds no events"),
    "written with no events": (
        lambda: encode_fcs({"V": [], "HC": []}), "fcs_empty", "holds no events",
    ),
    "just 'FCS'": (lambda: b"FCS", "fcs_corrupt", "not an FCS file"),
    "$TOT not a number": (lambda: with_keywords(GOOD, TOT="1e3"), "fcs_corrupt", "whole number"),
    "$TOT missing": (lambda: with_keywords(GOOD, TOT=None), "fcs_corrupt", "no $TOT keyword"),
    "$TOT twice": (
        lambda: _replace_text(GOOD, b"/$MODE/L/", b"/$TOT/99/"), "fcs_corrupt", "appears twice",
    ),
    "lower-case $tot": (
        lambda: _replace_text(GOOD, b"/$TOT/", b"/$tot/"), "fcs_corrupt", "found '$tot'",
    ),
    "$NEXTDATA missing": (
        lambda: with_keywords(GOOD, NEXTDATA=None), "fcs_corrupt", "no $NEXTDATA keyword",
    ),
    "$P2B missing": (lambda: with_keywords(GOOD, P2B=None), "fcs_corrupt", "no $P2B keyword"),
    "$P1B = 64 for F": (lambda: with_keywords(GOOD, P1B="64"), "fcs_unsupported", "expected 32"),
    "$P1B = 12 for I": (lambda: with_keywords(GOOD_I, P1B="12"), "fcs_unsupported", "widths"),
    "$P1R missing for I": (lambda: with_keywords(GOOD_I, P1R=None), "fcs_corrupt", "$P1R"),
    "$P1R beyond bits": (lambda: with_keywords(GOOD_I, P1R="1e9"), "fcs_corrupt", "2**16"),
    "$P0B": (lambda: with_keywords(GOOD, P0B="32"), "fcs_unsupported", "numbered from 0"),
    "$MODE C": (lambda: with_keywords(GOOD, MODE="C"), "fcs_unsupported", "list mode"),
    "$DATATYPE A": (lambda: with_keywords(GOOD, DATATYPE="A"), "fcs_unsupported", "$DATATYPE"),
    "$BYTEORD 3,4,1,2": (
        lambda: with_keywords(GOOD, BYTEORD="3,4,1,2"), "fcs_unsupported", "$BYTEORD",
    ),
    "24-bit little-endian": (
        lambda: encode_fcs(rbc_columns(integer=True), datatype="I", bits=24),
        "fcs_unsupported", "misreads 3-byte little-endian",
    ),
    "keyword without value": (
        lambda: _replace_text(GOOD, b"/$MODE/L/", b"/$MODE_L/"), "fcs_corrupt", "must pair up",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CORRUPT))
def test_corrupt_file_raises_one_clear_ingestion_error(name: str) -> None:
    make, kind, fragment = CORRUPT[name]
    blob = make()
    for reader in (read_fcs, read_fcs_channels):
        with quick(), pytest.raises(IngestionError) as info:
            reader(blob)
        err = info.value
        assert type(err) is IngestionError, err
        assert err.kind == kind, err.message
        assert fragment in err.message
        assert err.field
        assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def test_lying_tot_never_allocates() -> None:
    blob = with_keywords(GOOD, TOT="1000000000000")
    tracemalloc.start()
    try:
        with pytest.raises(IngestionError) as info:
            read_fcs(blob)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20, f"peak {peak} bytes"
    assert "7.3 TiB declared, but the DATA segment holds 3200 bytes" in info.value.message
    assert info.value.field == "$TOT"


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
    return _replace_text(blob, b"/$BYTEORD/1,2,3,4/", b"/$BYTEORD/4,3,2,1/")


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
