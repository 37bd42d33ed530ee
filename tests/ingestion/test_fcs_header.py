"""HEADER/TEXT validation: every way a file can lie ends in one clear error; known quirks pass."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest

from ingestion.errors import IngestionError
from ingestion.fcs.reader import read_fcs, read_fcs_channels
from ingestion.fcs.writer import encode_fcs
from tests.ingestion.fcs_factory import (
    N_CELLS,
    patch_header,
    quick,
    rbc_columns,
    rbc_fcs,
    replace_text,
    split_fcs,
    with_data,
    with_keywords,
)

GOOD = rbc_fcs()
GOOD_I = rbc_fcs(datatype="I", bits=16, version="3.0")
GOOD_20 = rbc_fcs(version="2.0")


# --- files that lie --------------------------------------------------------------------------


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
        lambda: replace_text(GOOD, b"/$MODE/L/", b"/$TOT/99/"), "fcs_corrupt", "appears twice",
    ),
    "lower-case $tot": (
        lambda: replace_text(GOOD, b"/$TOT/", b"/$tot/"), "fcs_corrupt", "found '$tot'",
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
        lambda: replace_text(GOOD, b"/$MODE/L/", b"/$MODE_L/"), "fcs_corrupt", "must pair up",
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


# --- tolerated quirks ------------------------------------------------------------------------


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
