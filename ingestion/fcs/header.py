"""Validate an FCS file's HEADER and TEXT segment before any DATA is decoded.

fcsparser 0.2.8 trusts the file, so on a corrupt header it crashes, hangs or returns silently
wrong data: a `$TOT` of 1e12 makes it ask numpy for terabytes, a `$PAR` one short or a flipped
`$BYTEORD` yields wrong numbers, and broken input surfaces as AttributeError / KeyError /
MemoryError. So `validate` checks first: magic, offsets inside the file, delimiter, required
keywords, supported datatype and widths, and `$TOT × Σ$PnB/8` equal to the DATA segment's
length (or one byte less: MACSQuant and others write `$ENDDATA` one past the end). Every
failure is one IngestionError (kinds fcs_corrupt, fcs_unsupported, fcs_empty).

Supported: `$MODE` L; `$BYTEORD` 1,2,3,4 / 1,2 (little) and 4,3,2,1 / 2,1 (big); `$DATATYPE`
F, D and I (8/16/24/32-bit; 24-bit big-endian only: fcsparser 0.2.8 reads 3-byte little-endian
integers × 256).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO, Literal

from ingestion.errors import IngestionError

ByteOrder = Literal["little", "big"]

HEADER_LENGTH = 58
VERSIONS = {b"FCS2.0": "2.0", b"FCS3.0": "3.0", b"FCS3.1": "3.1"}
BYTE_ORDERS: dict[str, ByteOrder] = {
    "1,2,3,4": "little",
    "1,2": "little",
    "4,3,2,1": "big",
    "2,1": "big",
}
DATATYPES = ("I", "F", "D")
FLOAT_BITS = {"F": 32, "D": 64}
INTEGER_BITS = (8, 16, 24, 32)
KEYWORDS_OF_INTEREST = (
    "$SMNO", "$SRC", "$FIL", "$CYT", "$CYTSN", "$INST", "$OP", "$DATE", "$BTIM", "$ETIM",
    "$PROJ", "$COM", "$SYS",
)  # fmt: skip
# Keywords whose repetition makes the file's layout ambiguous (fcsparser keeps the last one).
_STRUCTURAL = {"$PAR", "$TOT", "$DATATYPE", "$BYTEORD", "$MODE", "$NEXTDATA", "$BEGINDATA",
               "$ENDDATA"}  # fmt: skip
_HEADER_FIELDS = ("text start", "text end", "data start", "data end", "analysis start",
                  "analysis end")  # fmt: skip
_OTHER_FORMATS = {
    b"\x89PNG": "a PNG image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive",
    b"\x1f\x8b": "a gzip archive",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x89HDF": "an HDF5 file",
}


@dataclass(frozen=True)
class FcsChannel:
    """One parameter ($Pn...) as declared in TEXT; `index` is n (1-based)."""

    index: int
    name: str  # $PnN
    long_name: str | None  # $PnS
    bits: int  # $PnB
    range: float | None  # $PnR
    amplification: str | None  # $PnE, e.g. "0,0" linear or "4,1" log

    @property
    def label(self) -> str:
        if self.long_name and self.long_name != self.name:
            return f"{self.name} ({self.long_name})"
        return self.name


@dataclass(frozen=True)
class FcsInfo:
    """What HEADER and TEXT say about the (first) data set, after validation."""

    version: str  # "2.0" | "3.0" | "3.1"
    n_events: int
    channels: tuple[FcsChannel, ...]
    datatype: str  # "I" | "F" | "D"
    byteorder: ByteOrder
    data_offsets: tuple[int, int]  # first and last byte of DATA, inclusive
    next_data: int  # $NEXTDATA: non-zero when more data sets follow (they are not read)
    keywords: Mapping[str, str]  # those in KEYWORDS_OF_INTEREST that the file has
    notes: tuple[str, ...] = ()  # tolerated oddities, e.g. a TEXT segment without closing delimiter

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    @property
    def row_bytes(self) -> int:
        return sum(c.bits for c in self.channels) // 8


def validate(handle: BinaryIO, size: int) -> FcsInfo:
    """Check HEADER and TEXT of the first data set and describe it; DATA is not decoded."""
    handle.seek(0)
    head = handle.read(HEADER_LENGTH)
    version = _check_magic(head, size)
    offsets = _parse_header(head)
    text_start, text_end = offsets["text start"], offsets["text end"]
    if offsets["text end"] == offsets["data start"]:
        text_end -= 1  # same tolerance as fcsparser for writers that overlap TEXT and DATA
    if text_start < HEADER_LENGTH or text_end < text_start:
        raise corrupt(
            "HEADER",
            f"TEXT segment at bytes {text_start}-{text_end}: expected "
            f"{HEADER_LENGTH} <= start <= end",
        )
    if text_end >= size:
        raise corrupt(
            "HEADER",
            f"TEXT segment ends at byte {text_end} but the file has {size} bytes: "
            "the file is truncated or the header is wrong",
        )
    handle.seek(text_start)
    keywords, notes = _parse_text(handle.read(text_end - text_start + 1))
    return _describe(version, offsets, keywords, notes, size)


def check_magic(head: bytes, size: int) -> str:
    """The FCS version from the first bytes, or the error naming what the file looks like."""
    return _check_magic(head, size)


def text_end(head: bytes) -> int:
    """Last byte of TEXT per the HEADER, so a streamed file can be read up to there and no
    further before `validate` runs.
    """
    return _parse_header(head)["text end"]


def _check_magic(head: bytes, size: int) -> str:
    if size == 0:
        raise corrupt("file", "file is empty (0 bytes): expected an FCS file")
    magic = head[:6]
    if magic in VERSIONS:
        if size < HEADER_LENGTH:
            raise corrupt(
                "HEADER",
                f"file has {size} bytes: an FCS HEADER alone needs {HEADER_LENGTH}",
            )
        return VERSIONS[magic]
    if len(magic) == 6 and magic.startswith(b"FCS") and magic[3:].replace(b".", b"").isdigit():
        raise IngestionError(
            f"FCS version {magic[3:].decode('ascii', 'replace')!r}: supported are "
            f"{', '.join(VERSIONS.values())}",
            kind="fcs_unsupported",
            field="HEADER",
        )
    what = next((name for sig, name in _OTHER_FORMATS.items() if head.startswith(sig)), None)
    if what is None and not head.strip(b"\x00"):
        what = "only zero bytes"
    detail = f" (looks like {what})" if what else ""
    raise corrupt(
        "HEADER",
        f"not an FCS file: starts with {head[:8]!r}{detail}; expected 'FCS2.0', 'FCS3.0' or "
        "'FCS3.1'",
    )


def _parse_header(head: bytes) -> dict[str, int]:
    """Six offsets, 8 characters each from byte 10; blank means 0 (3.x: look in TEXT)."""
    offsets: dict[str, int] = {}
    for i, name in enumerate(_HEADER_FIELDS):
        start = 10 + 8 * i
        raw = head[start : start + 8]
        text = raw.strip()  # ASCII whitespace only, like the int() fcsparser applies
        if not text:
            offsets[name] = 0
        elif text.isdigit():
            offsets[name] = int(text)
        else:
            raise corrupt(
                "HEADER",
                f"HEADER {name} (bytes {start}-{start + 7}) = {raw!r}: expected a "
                "right-justified integer",
            )
    return offsets


def _parse_text(raw: bytes) -> tuple[dict[str, str], list[str]]:
    """Split TEXT exactly as fcsparser does, but reject what it would silently misread."""
    notes: list[str] = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="ignore")  # what fcsparser does too
        notes.append("TEXT segment is not valid UTF-8; invalid bytes were dropped")
    if not text:
        raise corrupt("TEXT", "TEXT segment is empty after decoding")
    delimiter = text[0]
    if not 1 <= ord(delimiter) <= 126:
        raise corrupt(
            "TEXT",
            f"TEXT delimiter = {delimiter!r}: expected an ASCII character 1-126 "
            "(the TEXT offset is probably wrong)",
        )
    body = text
    if body[-1] != delimiter and delimiter.strip() == delimiter:
        body = body.strip()
    if len(body) >= 2 and body[-1] == delimiter:
        body = body[1:-1]
    else:
        body = body[1:]
        notes.append(f"TEXT segment does not end with its delimiter {delimiter!r}")
    # A doubled delimiter is an escaped one; split on those first, as fcsparser does.
    tokens: list[str] = []
    for n, chunk in enumerate(body.split(delimiter * 2)):
        parts = chunk.split(delimiter)
        if n == 0:
            tokens = parts
        else:
            tokens[-1] += delimiter + parts[0]
            tokens.extend(parts[1:])
    if len(tokens) % 2:
        raise corrupt(
            "TEXT",
            f"TEXT segment has {len(tokens)} fields: keywords and values must pair up "
            f"(last keyword {tokens[-1][:40]!r} has no value)",
        )
    keywords: dict[str, str] = {}
    for key, value in zip(tokens[0::2], tokens[1::2], strict=True):
        if key in keywords and key in _STRUCTURAL and keywords[key] != value:
            raise corrupt(
                key,
                f"{key} appears twice ({keywords[key]!r} and {value!r}): the layout is ambiguous",
            )
        keywords[key] = value
    return keywords, notes


def _describe(
    version: str, offsets: dict[str, int], kw: dict[str, str], notes: list[str], size: int
) -> FcsInfo:
    n_par = _int_keyword(kw, "$PAR", minimum=1)
    if "$P0B" in kw:
        raise unsupported("$P0B", "channels numbered from 0 ($P0B): FCS numbers them from 1")
    mode = _keyword(kw, "$MODE")
    if mode != "L":
        raise unsupported("$MODE", f"$MODE = {mode!r}: only list mode (L) is supported")
    datatype = _keyword(kw, "$DATATYPE")
    if datatype not in DATATYPES:
        raise unsupported(
            "$DATATYPE", f"$DATATYPE = {datatype!r}: expected one of {', '.join(DATATYPES)}"
        )
    byteord = _keyword(kw, "$BYTEORD")
    if byteord not in BYTE_ORDERS:
        raise unsupported(
            "$BYTEORD",
            f"$BYTEORD = {byteord!r}: expected one of {', '.join(BYTE_ORDERS)}",
        )
    byteorder = BYTE_ORDERS[byteord]
    next_data = _int_keyword(kw, "$NEXTDATA", minimum=0)
    channels = tuple(_channel(kw, n, datatype, byteorder) for n in range(1, n_par + 1))
    n_events = _int_keyword(kw, "$TOT", minimum=0)
    if n_events == 0:
        raise IngestionError("$TOT = 0: the file holds no events", kind="fcs_empty", field="$TOT")

    start = _data_offset(offsets["data start"], kw, "$BEGINDATA", "data start")
    end = _data_offset(offsets["data end"], kw, "$ENDDATA", "data end")
    if start < HEADER_LENGTH or end < start:
        raise corrupt(
            "$BEGINDATA",
            f"DATA segment at bytes {start}-{end}: expected {HEADER_LENGTH} <= start <= end",
        )
    if end >= size:
        raise corrupt(
            "$ENDDATA",
            f"DATA segment ends at byte {end} but the file has {size} bytes: the file is "
            "truncated or the offset is wrong",
        )
    length = end - start + 1
    row_bytes = sum(c.bits for c in channels) // 8
    declared = n_events * row_bytes
    if length == declared + 1:
        # MACSQuant (FCS 3.1) and others write $ENDDATA one past the last byte; fcsparser reads
        # $TOT events from the start, so the extra byte is never decoded.
        notes.append(f"DATA segment is 1 byte longer than $TOT × Σ$PnB/8 = {declared}; ignored")
    elif declared != length:
        hint = ""
        blame = "$TOT"
        if length % n_events == 0:
            hint = (
                f"; that is {length // n_events} bytes per event, so $PAR or a $PnB is "
                "probably wrong"
            )
            blame = "$PAR"
        raise corrupt(
            blame,
            f"$TOT = {n_events}: {n_events} events × {row_bytes} bytes ($PAR = {n_par} "
            f"channels, Σ$PnB = {row_bytes * 8} bits) = {_human_bytes(declared)} declared, "
            f"but the DATA segment holds {length} bytes{hint}",
        )
    if offsets["analysis end"] > offsets["analysis start"]:
        notes.append("file has an ANALYSIS segment; it is ignored")
    if next_data:
        notes.append(f"$NEXTDATA = {next_data}: more data sets follow; only the first is read")
    return FcsInfo(
        version=version,
        n_events=n_events,
        channels=channels,
        datatype=datatype,
        byteorder=byteorder,
        data_offsets=(start, end),
        next_data=next_data,
        keywords={k: kw[k] for k in KEYWORDS_OF_INTEREST if k in kw},
        notes=tuple(notes),
    )


def _channel(kw: dict[str, str], n: int, datatype: str, byteorder: ByteOrder) -> FcsChannel:
    bits = _int_keyword(kw, f"$P{n}B", minimum=1)
    key = f"$P{n}B"
    if datatype in FLOAT_BITS and bits != FLOAT_BITS[datatype]:
        raise unsupported(
            key, f"{key} = {bits} with $DATATYPE {datatype}: expected {FLOAT_BITS[datatype]}"
        )
    if datatype == "I":
        if bits not in INTEGER_BITS:
            raise unsupported(
                key, f"{key} = {bits} with $DATATYPE I: supported widths are {INTEGER_BITS}"
            )
        if bits == 24 and byteorder == "little":
            raise unsupported(
                key,
                f"{key} = 24 with $BYTEORD little-endian: fcsparser 0.2.8 misreads 3-byte "
                "little-endian integers (every value × 256); only big-endian 24-bit is read",
            )
    value_range = _range(kw, n, datatype, bits)
    name = kw.get(f"$P{n}N", "").strip()
    long_name = kw.get(f"$P{n}S", "").strip() or None
    return FcsChannel(
        index=n,
        name=name,
        long_name=long_name,
        bits=bits,
        range=value_range,
        amplification=kw.get(f"$P{n}E"),
    )


def _range(kw: dict[str, str], n: int, datatype: str, bits: int) -> float | None:
    """$PnR as a number; for integers it is required, because fcsparser masks values with it."""
    key = f"$P{n}R"
    raw = kw.get(key)
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        value = None
    if datatype != "I":
        return value
    if value is None or not 0 < value <= 2**bits:
        raise corrupt(
            key,
            f"{key} = {raw!r}: integer channels need a range in (0, 2**{bits}] "
            "(values are masked to the bits it implies)",
        )
    return value


def _data_offset(header_value: int, kw: dict[str, str], keyword: str, name: str) -> int:
    keyword_value = _int_keyword(kw, keyword, minimum=0) if keyword in kw else None
    if header_value and keyword_value and header_value != keyword_value:
        raise corrupt(
            keyword,
            f"{keyword} = {keyword_value} but HEADER {name} = {header_value}: they must agree",
        )
    value = header_value or keyword_value
    if not value:
        raise corrupt(
            keyword,
            f"DATA segment {name} is 0 in the HEADER and {keyword} is "
            f"{'missing' if keyword_value is None else '0'}: cannot locate the data",
        )
    return value


def _keyword(kw: dict[str, str], key: str) -> str:
    if key in kw:
        return kw[key]
    variants = [k for k in kw if k.upper() == key]
    found = f" (found {variants[0]!r}; this reader needs upper-case keywords)" if variants else ""
    raise corrupt(key, f"TEXT segment has no {key} keyword{found}")


def _int_keyword(kw: dict[str, str], key: str, *, minimum: int) -> int:
    raw = _keyword(kw, key)
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < minimum:
        raise corrupt(key, f"{key} = {raw!r}: expected a whole number >= {minimum}")
    return int(text)


def corrupt(where: str, message: str) -> IngestionError:
    return IngestionError(message, kind="fcs_corrupt", field=where)


def unsupported(where: str, message: str) -> IngestionError:
    return IngestionError(message, kind="fcs_unsupported", field=where)


def _human_bytes(n: int) -> str:
    """1.6e13 -> '14.6 TiB': lying sizes are easier to spot in binary units."""
    units = ("bytes", "KiB", "MiB", "GiB", "TiB")
    value, step = float(n), 0
    while value >= 1024 and step < len(units) - 1:
        value, step = value / 1024, step + 1
    return f"{n} bytes" if step == 0 else f"{value:.1f} {units[step]}"
