"""The one table of file formats: magic bytes and suffixes, read by format detection for whole
uploads (`sources.detect_format`) and for lab exports (`tables.long_format`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

SourceFormat = Literal["fcs", "csv", "parquet", "hdf5", "zip"]

MAGIC: tuple[tuple[bytes, SourceFormat], ...] = (
    (b"FCS", "fcs"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"PAR1", "parquet"),
    (b"PK\x03\x04", "zip"),
)
SUFFIX: dict[str, SourceFormat] = {
    ".fcs": "fcs", ".lmd": "fcs", ".csv": "csv", ".txt": "csv", ".parquet": "parquet",
    ".pq": "parquet", ".parq": "parquet", ".h5": "hdf5", ".hdf5": "hdf5", ".zip": "zip",
}


def format_from_magic(head: bytes) -> SourceFormat | None:
    """The format whose magic bytes start `head`, or None (CSV has no magic)."""
    for magic, fmt in MAGIC:
        if head.startswith(magic):
            return fmt
    return None


def format_from_suffix(name: str | Path) -> SourceFormat | None:
    """The format a file name's suffix promises, or None for an unknown suffix."""
    return SUFFIX.get(Path(name).suffix.lower())
