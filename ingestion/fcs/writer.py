"""A small FCS 2.0/3.0/3.1 list-mode writer for tests, demos and the synthetic cohort export.

It writes what the reader in `ingestion.fcs.reader` expects from a well-formed file: HEADER offsets
right-justified in 8-character fields, a "/"-delimited TEXT segment (a "/" inside a keyword or
value is escaped by doubling it), `$BEGINDATA`/`$ENDDATA` and the other 3.x offset keywords,
`$PnB`/`$PnE`/`$PnN`/`$PnR` for every channel, and the DATA segment event by event in the
requested byte order. Integer channels get `$PnR = 2**bits` because readers (fcsparser among
them) mask integer values to the bits `$PnR` implies; a smaller `$PnR` would silently cut data.

`assemble_fcs` lays out HEADER + TEXT + DATA for keywords the caller chooses without checking
that they describe the data, which is how tests build files that lie about `$TOT` or `$PAR`
while every offset is still right.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

FcsVersion = Literal["2.0", "3.0", "3.1"]
Datatype = Literal["I", "F", "D"]
ByteOrder = Literal["little", "big"]

HEADER_LENGTH = 58
DELIMITER = "/"
MAX_HEADER_OFFSET = 99_999_999  # 8 digits; larger offsets live only in $BEGINDATA/$ENDDATA
INTEGER_BITS = (8, 16, 24, 32)
FLOAT_BITS = {"F": 32, "D": 64}
BYTEORD = {"little": "1,2,3,4", "big": "4,3,2,1"}
_OFFSET_KEYWORDS = (
    "$BEGINANALYSIS",
    "$ENDANALYSIS",
    "$BEGINSTEXT",
    "$ENDSTEXT",
    "$BEGINDATA",
    "$ENDDATA",
)


def write_fcs(
    target: str | os.PathLike[str] | BinaryIO,
    columns: Mapping[str, Sequence[float] | np.ndarray] | np.ndarray,
    *,
    names: Sequence[str] | None = None,
    version: FcsVersion = "3.1",
    datatype: Datatype = "F",
    byteorder: ByteOrder = "little",
    bits: int | Mapping[str, int] | None = None,
    long_names: Mapping[str, str] | None = None,
    ranges: Mapping[str, float] | None = None,
    patient_id: str | None = None,
    sample_id: str | None = None,
    keywords: Mapping[str, str] | None = None,
) -> int:
    """Write one list-mode data set to a path or binary buffer; returns the bytes written.

    See `encode_fcs` for the arguments.
    """
    blob = encode_fcs(
        columns,
        names=names,
        version=version,
        datatype=datatype,
        byteorder=byteorder,
        bits=bits,
        long_names=long_names,
        ranges=ranges,
        patient_id=patient_id,
        sample_id=sample_id,
        keywords=keywords,
    )
    if isinstance(target, str | os.PathLike):
        Path(target).write_bytes(blob)
    else:
        target.write(blob)
    return len(blob)


def encode_fcs(
    columns: Mapping[str, Sequence[float] | np.ndarray] | np.ndarray,
    *,
    names: Sequence[str] | None = None,
    version: FcsVersion = "3.1",
    datatype: Datatype = "F",
    byteorder: ByteOrder = "little",
    bits: int | Mapping[str, int] | None = None,
    long_names: Mapping[str, str] | None = None,
    ranges: Mapping[str, float] | None = None,
    patient_id: str | None = None,
    sample_id: str | None = None,
    keywords: Mapping[str, str] | None = None,
) -> bytes:
    """Encode one list-mode data set as FCS bytes.

    columns     {$PnN: values} in channel order, or a 2-D [events, channels] array with `names`
    datatype    "F" float32, "D" float64, "I" unsigned integer of `bits` (8/16/24/32, one width
                for all channels or {$PnN: bits}); integer values must be whole and < 2**bits
    byteorder   "little" ($BYTEORD 1,2,3,4) or "big" (4,3,2,1)
    long_names  {$PnN: $PnS}
    ranges      {$PnN: $PnR}, overriding 2**bits (I) or the ceiling of the largest value (F/D)
    patient_id  written as $SRC; sample_id as $SMNO
    keywords    extra TEXT keywords; they may not redefine the ones the writer sets
    Raises ValueError for anything it cannot write faithfully.
    """
    if version not in ("2.0", "3.0", "3.1"):
        raise ValueError(f"version = {version!r}: expected '2.0', '3.0' or '3.1'")
    if datatype not in ("I", "F", "D"):
        raise ValueError(f"datatype = {datatype!r}: expected 'I', 'F' or 'D'")
    if byteorder not in BYTEORD:
        raise ValueError(f"byteorder = {byteorder!r}: expected 'little' or 'big'")
    channel_names, matrix = _as_matrix(columns, names)
    widths = _channel_bits(channel_names, datatype, bits)
    endian = "<" if byteorder == "little" else ">"

    text: dict[str, str] = {
        "$BYTEORD": BYTEORD[byteorder],
        "$DATATYPE": datatype,
        "$MODE": "L",
        "$NEXTDATA": "0",
        "$PAR": str(len(channel_names)),
        "$TOT": str(matrix.shape[0]),
    }
    for i, name in enumerate(channel_names, start=1):
        column = matrix[:, i - 1]
        text[f"$P{i}N"] = name
        text[f"$P{i}B"] = str(widths[i - 1])
        text[f"$P{i}E"] = "0,0"
        text[f"$P{i}R"] = _format_number(
            _channel_range(name, column, datatype, widths[i - 1], ranges)
        )
        if long_names and name in long_names:
            text[f"$P{i}S"] = long_names[name]
    _check_subset(long_names, channel_names, "long_names")
    _check_subset(ranges, channel_names, "ranges")
    if patient_id is not None:
        text["$SRC"] = patient_id
    if sample_id is not None:
        text["$SMNO"] = sample_id
    taken = {k.upper() for k in text} | set(_OFFSET_KEYWORDS)
    for key, value in (keywords or {}).items():
        if key.upper() in taken:
            raise ValueError(f"keywords[{key!r}]: the writer sets {key.upper()} itself")
        text[key] = value

    data = _encode_data(matrix, channel_names, widths, datatype, endian)
    return assemble_fcs(text, data, version=version)


def assemble_fcs(keywords: Mapping[str, str], data: bytes, *, version: FcsVersion = "3.1") -> bytes:
    """Lay out HEADER + TEXT + DATA with every offset right, for keywords taken as given.

    For 3.x the offset keywords ($BEGINDATA, $ENDDATA, $BEGINANALYSIS, ...) are (re)computed;
    everything else is written verbatim, even when it does not describe `data`.
    """
    text_keywords = dict(keywords)
    text_start = HEADER_LENGTH
    # Offsets are written as decimal text inside TEXT, so TEXT's length depends on them; a few
    # rounds reach the fixed point (each round can only add digits).
    for _ in range(8):
        text = _encode_text(text_keywords)
        text_end = text_start + len(text) - 1
        data_start, data_end = (text_end + 1, text_end + len(data)) if data else (0, 0)
        if version == "2.0":
            break
        offsets = {
            "$BEGINANALYSIS": "0",
            "$ENDANALYSIS": "0",
            "$BEGINSTEXT": "0",
            "$ENDSTEXT": "0",
            "$BEGINDATA": str(data_start),
            "$ENDDATA": str(data_end),
        }
        if all(text_keywords.get(k) == v for k, v in offsets.items()):
            break
        text_keywords.update(offsets)
    else:  # pragma: no cover - the loop converges in at most three rounds
        raise RuntimeError("FCS TEXT offsets did not converge")

    if text_end > MAX_HEADER_OFFSET:
        raise ValueError(
            f"TEXT segment ends at byte {text_end}: must fit the 8-digit header "
            f"(<= {MAX_HEADER_OFFSET})"
        )
    if data_end > MAX_HEADER_OFFSET:
        if version == "2.0":
            raise ValueError(
                f"DATA segment ends at byte {data_end}: FCS 2.0 cannot address past "
                f"{MAX_HEADER_OFFSET}; write version '3.0' or '3.1'"
            )
        header_data = (0, 0)  # 3.x: readers take $BEGINDATA/$ENDDATA instead
    else:
        header_data = (data_start, data_end)
    fields = (text_start, text_end, *header_data, 0, 0)
    header = f"FCS{version}    " + "".join(f"{v:>8d}" for v in fields)
    return header.encode("ascii") + text + data


def _encode_text(keywords: Mapping[str, str]) -> bytes:
    parts = [DELIMITER]
    for key, value in keywords.items():
        for what, item in (("keyword", key), (f"value of {key}", value)):
            if not isinstance(item, str) or not item:
                raise ValueError(f"{what} = {item!r}: FCS TEXT needs a non-empty string")
            if item.startswith(DELIMITER):
                # "//" would read as an escaped delimiter glued to the previous token.
                raise ValueError(f"{what} = {item!r}: must not start with {DELIMITER!r}")
        parts.append(_escape(key) + DELIMITER + _escape(value) + DELIMITER)
    return "".join(parts).encode("utf-8")


def _escape(item: str) -> str:
    return item.replace(DELIMITER, DELIMITER * 2)


def _as_matrix(
    columns: Mapping[str, Sequence[float] | np.ndarray] | np.ndarray,
    names: Sequence[str] | None,
) -> tuple[list[str], np.ndarray]:
    """Columns as one float64 [events, channels] matrix plus the channel names."""
    if isinstance(columns, Mapping):
        if names is not None:
            raise ValueError("names: give either a {name: values} mapping or names + 2-D array")
        channel_names = [str(k) for k in columns]
        arrays = [np.asarray(v, dtype=np.float64) for v in columns.values()]
        for name, arr in zip(channel_names, arrays, strict=True):
            if arr.ndim != 1:
                raise ValueError(f"columns[{name!r}] has shape {arr.shape}: expected 1-D")
        lengths = {arr.size for arr in arrays}
        if len(lengths) > 1:
            sizes = {n: a.size for n, a in zip(channel_names, arrays, strict=True)}
            raise ValueError(f"columns have different lengths {sizes}: expected one per event")
        matrix = np.stack(arrays, axis=1) if arrays else np.empty((0, 0), dtype=np.float64)
    else:
        matrix = np.asarray(columns, dtype=np.float64)
        if matrix.ndim != 2:
            raise ValueError(f"columns has shape {matrix.shape}: expected [events, channels]")
        if names is None or len(names) != matrix.shape[1]:
            raise ValueError(
                f"names: expected {matrix.shape[1]} channel names for a "
                f"{matrix.shape[0]}x{matrix.shape[1]} array, got {names!r}"
            )
        channel_names = [str(n) for n in names]
    if not channel_names:
        raise ValueError("columns: at least one channel is required")
    folded = [n.casefold() for n in channel_names]
    if len(set(folded)) != len(folded):
        raise ValueError(f"channel names {channel_names}: $PnN must be unique")
    for name in channel_names:
        if not name or "," in name:
            raise ValueError(f"channel name {name!r}: $PnN must be non-empty without commas")
    return channel_names, matrix


def _channel_bits(
    names: list[str], datatype: Datatype, bits: int | Mapping[str, int] | None
) -> list[int]:
    if datatype in FLOAT_BITS:
        width = FLOAT_BITS[datatype]
        if bits is not None and bits != width:
            raise ValueError(f"bits = {bits!r}: $DATATYPE {datatype} is always {width}-bit")
        return [width] * len(names)
    if bits is None:
        bits = 16
    if isinstance(bits, Mapping):
        _check_subset(bits, names, "bits")
        widths = [bits.get(n, 16) for n in names]
    else:
        widths = [bits] * len(names)
    for name, width in zip(names, widths, strict=True):
        if width not in INTEGER_BITS:
            raise ValueError(f"bits for {name!r} = {width!r}: expected one of {INTEGER_BITS}")
    return widths


def _channel_range(
    name: str,
    column: np.ndarray,
    datatype: Datatype,
    width: int,
    ranges: Mapping[str, float] | None,
) -> float:
    if ranges and name in ranges:
        return float(ranges[name])
    if datatype == "I":
        return float(2**width)
    finite = column[np.isfinite(column)]
    top = float(np.max(np.abs(finite))) if finite.size else 0.0
    return float(max(1, math.ceil(top)))


def _encode_data(
    matrix: np.ndarray, names: list[str], widths: list[int], datatype: Datatype, endian: str
) -> bytes:
    n_events = matrix.shape[0]
    row_bytes = sum(widths) // 8
    out = np.empty((n_events, row_bytes), dtype=np.uint8)
    pos = 0
    for i, (name, width) in enumerate(zip(names, widths, strict=True)):
        column = matrix[:, i]
        nbytes = width // 8
        if datatype == "I":
            _check_integers(name, column, width)
            storage = 4 if width == 24 else nbytes
            raw = column.astype(f"{endian}u{storage}").view(np.uint8).reshape(n_events, storage)
            if width == 24:  # drop the always-zero most significant byte
                raw = raw[:, :3] if endian == "<" else raw[:, 1:]
        else:
            kind = "f4" if datatype == "F" else "f8"
            raw = column.astype(f"{endian}{kind}").view(np.uint8).reshape(n_events, nbytes)
        out[:, pos : pos + nbytes] = raw
        pos += nbytes
    return out.tobytes()


def _check_integers(name: str, column: np.ndarray, width: int) -> None:
    bad = np.flatnonzero(
        ~np.isfinite(column) | (column < 0) | (column >= 2**width) | (column != np.round(column))
    )
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name}[{i}] = {float(column[i])!r}: $DATATYPE I with {width} bits needs whole "
            f"numbers in [0, {2**width - 1}] ({bad.size} values are not)"
        )


def _check_subset(mapping: Mapping[str, object] | None, names: list[str], what: str) -> None:
    unknown = sorted(set(mapping or {}) - set(names))
    if unknown:
        raise ValueError(f"{what} names unknown channels {unknown}: channels are {names}")


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
