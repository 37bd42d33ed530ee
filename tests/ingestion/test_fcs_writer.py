"""FCS writer: exact write/read-back round trips (checked against fcsparser) and output layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fcsparser
import numpy as np
import pytest

from ingestion.fcs import writer as fcs_writer
from ingestion.fcs.reader import read_fcs, read_fcs_channels, read_fcs_table
from ingestion.fcs.writer import encode_fcs
from tests.ingestion.fcs_factory import ENCODINGS, N_CELLS, rbc_columns, rbc_fcs, split_fcs

VERSIONS = ("2.0", "3.0", "3.1")


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


def test_large_offsets_go_to_keywords(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend 8 digits end at 500 bytes, so the writer must put 0 in the HEADER (3.x only).
    monkeypatch.setattr(fcs_writer, "MAX_HEADER_OFFSET", 1000)
    blob = rbc_fcs(version="3.1")
    assert blob[26:42] == b"       0       0"
    assert read_fcs(blob).n_cells == N_CELLS
    with pytest.raises(ValueError, match=r"FCS 2\.0 cannot address"):
        rbc_fcs(version="2.0")


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
