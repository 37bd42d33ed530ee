"""The reader over the 17 files from real cytometers that ship inside the fcsparser wheel.

None of them holds red-cell channels, so for every readable file the expected outcome is a
parsed channel list and then the clear "no volume channel" error; the two broken ones
(`corrupted.fcs`: 10 bytes of text; `sample_header.fcs`: HEADER and TEXT of a 2 MB file whose
DATA is missing) must end in a clean IngestionError. `fake_large_fcs` (offsets only in
$BEGINDATA/$ENDDATA) and `fake_bitmask_error` (header fields shifted by a column, integer data
masked by $PnR) sound broken but are valid files and are read.
"""

from __future__ import annotations

import importlib.resources
import logging
import time
from pathlib import Path
from typing import NamedTuple

import fcsparser
import numpy as np
import pytest

from ingestion.cells import CellValidationError
from ingestion.errors import IngestionError
from ingestion.fcs.channels import ChannelMap
from ingestion.fcs.reader import read_fcs, read_fcs_channels, read_fcs_table

ROOT = Path(str(importlib.resources.files("fcsparser") / "tests" / "data" / "FlowCytometers"))
SLOW = 5.0  # seconds; each file takes milliseconds, this only catches hangs


class Readable(NamedTuple):
    version: str
    datatype: str
    n_events: int
    n_channels: int


class Broken(NamedTuple):
    kind: str
    fragment: str


MILTENYI = "MiltenyiBiotec/"
EXPECTED: dict[str, Readable | Broken] = {
    "Cytek_xP5/Cytek_xP5.fcs": Readable("3.0", "I", 23126, 8),  # 24-bit big-endian
    "FACSCaliburHTS/Sample_Well_A02.fcs": Readable("2.0", "I", 37395, 8),  # non-UTF-8 TEXT
    "FACS_Diva/facs_diva_test.fcs": Readable("3.0", "F", 83411, 12),
    "Fortessa/FCS_3.0_Fortessa_PBS_Specimen_001_A1_A01.fcs": Readable("3.0", "F", 11585, 11),
    "GuavaMuse/Guava Muse.fcs": Readable("3.0", "F", 108, 10),  # 4 data sets; first is read
    "HTS_BD_LSR-II/HTS_BD_LSR_II_Mixed_Specimen_001_D6_D06.fcs": Readable("3.0", "F", 14945, 11),
    MILTENYI + "FCS2.0/EY_2013-07-19_PBS_FCS_2.0_Custom_Without_Add_Well_A1.001.fcs": Readable(
        "2.0", "F", 10000, 16
    ),
    MILTENYI + "FCS3.0/FCS3.0_Custom_Compatible.fcs": Readable("3.0", "F", 10000, 16),
    # The four MACSQuant 3.1 files write $ENDDATA one byte past the DATA segment.
    MILTENYI + "FCS3.1/EY_2013-07-19_PBS_FCS_3.1_Custom_Add_Well_A1.001.fcs": Readable(
        "3.1", "F", 10000, 19
    ),
    MILTENYI + "FCS3.1/EY_2013-07-19_PBS_FCS_3.1_Custom_Without_Add_Well_A1.001.fcs": Readable(
        "3.1", "F", 10000, 19
    ),
    MILTENYI + "FCS3.1/EY_2013-07-19_PBS_FCS_3.1_Well_A1.001.fcs": Readable("3.1", "F", 10000, 19),
    MILTENYI + "FCS3.1/SG_2014-09-26_Duplicate_Names.fcs": Readable("3.1", "F", 8129, 9),
    "corrupted/corrupted.fcs": Broken("fcs_corrupt", "not an FCS file"),
    "cyflow_cube_8/cyflow_cube_8.fcs": Readable("3.0", "I", 725, 10),  # 8/16/32-bit mixed
    "cytek-nl-2000/sample_header.fcs": Broken("fcs_corrupt", "the file is truncated"),
    "fake_bitmask_error/fcs1_cleaned.lmd": Readable("2.0", "I", 50000, 7),
    "fake_large_fcs/fake_large_fcs.fcs": Readable("3.0", "F", 11585, 11),
}


def corpus_files() -> list[str]:
    return sorted(
        str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and p.suffix != ".txt"
    )


def test_every_corpus_file_is_classified() -> None:
    assert corpus_files() == sorted(EXPECTED)
    assert len(EXPECTED) == 17


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file(name: str) -> None:
    path = ROOT / name
    expected = EXPECTED[name]
    start = time.monotonic()
    if isinstance(expected, Broken):
        for reader in (read_fcs_channels, read_fcs):
            with pytest.raises(IngestionError) as info:
                reader(path)
            assert type(info.value) is IngestionError
            assert info.value.kind == expected.kind
            assert expected.fragment in info.value.message
    else:
        info = read_fcs_channels(path)
        got = Readable(info.version, info.datatype, info.n_events, len(info.channels))
        assert got == expected
        assert all(c.name for c in info.channels)

        # Decoding through the validator gives exactly what fcsparser gives on its own.
        table = read_fcs_table(path)
        _, frame = fcsparser.parse(str(path), channel_naming="$PnN", dtype=None)
        np.testing.assert_array_equal(table.data, frame.to_numpy(dtype=np.float64))

        with pytest.raises(IngestionError) as error:
            read_fcs(path)
        assert (error.value.kind, error.value.field) == ("fcs_no_channel", "volume")
        assert "file has channels [" in error.value.message
    assert time.monotonic() - start < SLOW


def test_corpus_summary() -> None:
    """One line per file, logged (see it with `--log-cli-level=INFO`, or in the report of a
    failure): never printed into pytest's progress line. Every file is read or fails cleanly."""
    counts = {"read": 0, "clean error": 0, "failure": 0}
    lines = []
    for name in corpus_files():
        start = time.monotonic()
        try:
            info = read_fcs_table(ROOT / name).info
            outcome = "read"
            detail = f"FCS{info.version} {info.datatype} {info.byteorder} {info.n_events} events"
            try:
                read_fcs(ROOT / name)
            except IngestionError as exc:
                detail += f"; as cells: {exc.kind}"
        except IngestionError as exc:
            outcome, detail = "clean error", f"{exc.kind}: {exc.message[:60]}"
        except Exception as exc:  # the summary exists to show such failures
            outcome, detail = "failure", f"{type(exc).__name__}: {exc}"
        counts[outcome] += 1
        lines.append(f"{outcome:12s} {time.monotonic() - start:6.3f}s {name}  {detail}")
    logging.getLogger(__name__).info("FCS corpus: %s\n  %s", counts, "\n  ".join(lines))
    assert counts == {"read": 15, "clean error": 2, "failure": 0}


# --- a real file read as cells through a user channel map ------------------------------------

DUPLICATE_NAMES = ROOT / MILTENYI / "FCS3.1/SG_2014-09-26_Duplicate_Names.fcs"


def test_real_file_reads_as_cells_when_channels_happen_to_be_in_range() -> None:
    # MACSQuant: FSC-H spans 0.47-107 and HDR-V 0.08-20, so every event passes CellSet's
    # (0, 300] fL and (0, 100] pg checks. Nonsense biologically, but it exercises the full
    # path: a real 3.1 file, $ENDDATA off by one, ids from $SRC and $FIL.
    cmap = ChannelMap.from_dict({"volume": ["FSC-H"], "hemoglobin_content": ["HDR-V"]})
    cells = read_fcs(DUPLICATE_NAMES, channel_map=cmap)
    table = read_fcs_table(DUPLICATE_NAMES)
    assert cells.n_cells == 8129
    assert (cells.patient_id, cells.sample_id) == ("A01", "SG_2014-09-26_092314_1.11_Well_A1.001")
    np.testing.assert_array_equal(cells.volume_fl, table.column("FSC-H").astype(np.float32))
    np.testing.assert_array_equal(cells.hemoglobin_pg, table.column("HDR-V").astype(np.float32))


def test_real_scatter_channels_fail_validation_naming_the_field() -> None:
    # Same file, FSC-A / SSC-A as the issue suggests: SSC-A dips to -0.003, which no
    # hemoglobin content can be, so CellSet rejects it and the error names field and channel.
    cmap = ChannelMap.from_dict({"volume": ["FSC-A"], "hemoglobin_content": ["SSC-A"]})
    with pytest.raises(CellValidationError) as info:
        read_fcs(DUPLICATE_NAMES, channel_map=cmap)
    assert info.value.field.startswith("hemoglobin_pg[")
    assert "channel $P6N 'SSC-A'" in info.value.message
    # On a BD Fortessa FSC-A goes as low as -9043: the volume fails first.
    fortessa = ROOT / "Fortessa/FCS_3.0_Fortessa_PBS_Specimen_001_A1_A01.fcs"
    with pytest.raises(CellValidationError) as info:
        read_fcs(fortessa, channel_map=cmap)
    assert info.value.field.startswith("volume_fl[")


def test_log_amplified_real_channel_is_refused() -> None:
    # Cytek xP5 FL1 has $PnE 4.0,1.0: its values are 4-decade log channel numbers.
    cmap = ChannelMap.from_dict({"volume": ["FSC"], "hemoglobin_content": ["FL1"]})
    with pytest.raises(IngestionError) as info:
        read_fcs(ROOT / "Cytek_xP5/Cytek_xP5.fcs", channel_map=cmap, patient_id="p")
    assert (info.value.kind, info.value.field) == ("fcs_unsupported", "$P4E")


def test_multi_data_set_file_reads_the_first() -> None:
    info = read_fcs_channels(ROOT / "GuavaMuse/Guava Muse.fcs")
    assert info.next_data == 7766 and info.n_events == 108
    assert any("only the first is read" in note for note in info.notes)
