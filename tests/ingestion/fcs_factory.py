"""Builders for FCS test files: good ones from the writer, broken ones by surgery on those.

`with_keywords` re-lays a file with some TEXT keywords changed but every offset still right, so
a test exercises exactly one lie (a `$TOT` of 1e12, a `$PAR` one short) and not a side effect
such as a TEXT segment that no longer ends where the HEADER says. `ENCODINGS`, `quick` and
`replace_text` are shared by the reader, header and writer tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ingestion.fcs.writer import ByteOrder, Datatype, FcsVersion, assemble_fcs, encode_fcs

N_CELLS = 400
ENCODINGS = [("I", 16), ("I", 32), ("F", None), ("D", None)]
SLOW = 5.0  # seconds; a generous sanity bound on a shared machine (typical: a few ms)


def rbc_columns(n: int = N_CELLS, *, seed: int = 0, integer: bool = False) -> dict[str, np.ndarray]:
    """Plausible red cells: V in fL (≈ 90 ± 8) and HC in g/dL (≈ 33 ± 1.5).

    Float values keep their random low bits, so a byte-swapped read scatters them widely;
    `integer=True` rounds them for $DATATYPE I.
    """
    rng = np.random.default_rng(seed)
    volume = np.clip(rng.normal(90.0, 8.0, n), 55.0, 140.0)
    concentration = np.clip(rng.normal(33.0, 1.5, n), 26.0, 40.0)
    if integer:
        volume, concentration = np.round(volume), np.round(concentration)
    return {"V": volume, "HC": concentration}


def rbc_fcs(
    n: int = N_CELLS,
    *,
    seed: int = 0,
    version: FcsVersion = "3.1",
    datatype: Datatype = "F",
    byteorder: ByteOrder = "little",
    bits: int | None = None,
    patient_id: str | None = "P-001",
    sample_id: str | None = "S-001",
    **options: Any,
) -> bytes:
    """A valid RBC file written by the writer under test."""
    columns = rbc_columns(n, seed=seed, integer=datatype == "I")
    return encode_fcs(
        columns,
        version=version,
        datatype=datatype,
        byteorder=byteorder,
        bits=bits,
        patient_id=patient_id,
        sample_id=sample_id,
        **options,
    )


def split_fcs(blob: bytes) -> tuple[FcsVersion, dict[str, str], bytes]:
    """Undo `assemble_fcs` for a file the writer produced: version, TEXT keywords, DATA."""
    version: Any = blob[3:6].decode("ascii")
    offsets = [int(blob[10 + 8 * i : 18 + 8 * i].strip() or b"0") for i in range(6)]
    text = blob[offsets[0] : offsets[1] + 1].decode("utf-8")
    delimiter = text[0]
    tokens: list[str] = []
    for n, chunk in enumerate(text[1:-1].split(delimiter * 2)):
        parts = chunk.split(delimiter)
        if n:
            tokens[-1] += delimiter + parts[0]
            parts = parts[1:]
        tokens.extend(parts)
    keywords = dict(zip(tokens[0::2], tokens[1::2], strict=True))
    start, end = offsets[2], offsets[3]
    if not start:
        start, end = int(keywords.get("$BEGINDATA", 0)), int(keywords.get("$ENDDATA", -1))
    data = blob[start : end + 1] if start else b""
    return version, keywords, data


def with_keywords(blob: bytes, **changes: str | None) -> bytes:
    """Same file with TEXT keywords changed (None removes one); offsets are recomputed.

    Keyword names are given without "$": `with_keywords(blob, TOT="1000000000000")`.
    """
    version, keywords, data = split_fcs(blob)
    for name, value in changes.items():
        key = "$" + name
        if value is None:
            keywords.pop(key, None)
        else:
            keywords[key] = value
    return assemble_fcs(keywords, data, version=version)


def with_data(blob: bytes, data: bytes) -> bytes:
    """Same TEXT over a different DATA segment (offsets recomputed, $TOT left alone)."""
    version, keywords, _ = split_fcs(blob)
    return assemble_fcs(keywords, data, version=version)


def patch_header(blob: bytes, field: int, value: int) -> bytes:
    """Overwrite HEADER offset field 0-5 (text start/end, data start/end, analysis start/end)."""
    start = 10 + 8 * field
    return blob[:start] + f"{value:>8d}".encode("ascii") + blob[start + 8 :]


def two_data_sets(first: bytes, second: bytes) -> bytes:
    """`first` with $NEXTDATA pointing at `second` appended after it."""
    version, keywords, data = split_fcs(first)
    offset = len(first)
    for _ in range(8):  # $NEXTDATA's own digits change the length it points past
        keywords["$NEXTDATA"] = str(offset)
        head = assemble_fcs(keywords, data, version=version)
        if len(head) == offset:
            return head + second
        offset = len(head)
    raise AssertionError("$NEXTDATA did not converge")


def replace_text(blob: bytes, old: bytes, new: bytes) -> bytes:
    """Swap one unique TEXT fragment for another of the same length (offsets stay right)."""
    assert len(old) == len(new) and blob.count(old) == 1
    return blob.replace(old, new)


@contextmanager
def quick() -> Iterator[None]:
    """Fail the test if the block takes `SLOW` seconds or more (a hang, not a benchmark)."""
    start = time.monotonic()
    yield
    assert time.monotonic() - start < SLOW
