"""Read FCS 2.0 / 3.0 / 3.1 list-mode files into a `CellSet`.

`ingestion.fcs.header` first validates HEADER and TEXT (fcsparser 0.2.8 trusts the file and
crashes, hangs or misreads on corrupt headers). Only then does fcsparser read the DATA
segment, and anything it still raises is turned into an `IngestionError`. Every failure
leaves as exactly one IngestionError.

Only the first data set of a multi-data-set file (`$NEXTDATA` != 0) is read; the rest of the
file is never looked at. Supported datatypes and byte orders: see `ingestion.fcs.header`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from fcsparser.api import FCSParser

from ingestion.bounds import DEFAULT_MAX_CELLS, check_cells
from ingestion.cells import DEFAULT_MIN_CELLS, CellSet, CellValidationError, LabValues
from ingestion.errors import IngestionError
from ingestion.fcs.channels import ChannelMap, hemoglobin_pg, select_channels
from ingestion.fcs.header import FcsChannel, FcsInfo, corrupt, unsupported, validate

__all__ = ["FcsChannel", "FcsInfo", "FcsSource", "FcsTable", "read_fcs", "read_fcs_channels",
           "read_fcs_table"]  # fmt: skip

FcsSource = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO


@dataclass(frozen=True)
class FcsTable:
    """All channels of the first data set: `data[event, channel]` as float64."""

    info: FcsInfo
    data: np.ndarray = field(repr=False)

    def column(self, name: str) -> np.ndarray:
        """Values of the channel whose $PnN (or else $PnS) is exactly `name`."""
        for c in self.info.channels:
            if name in (c.name, c.long_name):
                return self.data[:, c.index - 1]
        raise KeyError(f"no channel {name!r}: file has {list(self.info.channel_names)}")


def read_fcs(
    source: FcsSource,
    *,
    channel_map: ChannelMap | None = None,
    patient_id: str | None = None,
    sample_id: str | None = None,
    min_cells: int = DEFAULT_MIN_CELLS,
    lab: LabValues | None = None,
    default_sample_id: str | None = None,
    max_cells: int = DEFAULT_MAX_CELLS,
) -> CellSet:
    """Read the first data set of an FCS file into a validated `CellSet`.

    Volume and hemoglobin channels come from `channel_map` (defaults in `ingestion.fcs.channels`).
    Ids given here win; otherwise patient_id is `$SRC` and sample_id is `$SMNO`, then `$FIL`,
    then the file name's stem when reading from a path, then `default_sample_id` (for bytes
    with a natural name elsewhere, such as a zip archive member's file name).
    `$TOT` above `max_cells` is refused before DATA is decoded.
    Raises IngestionError (kinds: fcs_io, fcs_corrupt, fcs_unsupported, fcs_empty,
    fcs_no_channel, fcs_ambiguous_channel, fcs_no_id, too_many_cells, validation).
    """
    with _open(source) as (handle, size, stem):
        info = validate(handle, size)
        check_cells(info.n_events, max_cells, "$TOT", "$TOT")
        selection = select_channels([(c.name, c.long_name) for c in info.channels], channel_map)
        volume_channel = info.channels[selection.volume]
        hemoglobin_channel = info.channels[selection.hemoglobin]
        for channel in (volume_channel, hemoglobin_channel):
            _require_linear(channel)
        patient, sample = _resolve_ids(info, patient_id, sample_id, stem, default_sample_id)
        columns = _read_columns(handle, info)
    raw_volume = columns[selection.volume]
    raw_hemoglobin = columns[selection.hemoglobin]
    for channel, raw in ((volume_channel, raw_volume), (hemoglobin_channel, raw_hemoglobin)):
        _check_byte_order(info, channel, raw)
    volume = np.asarray(raw_volume, dtype=np.float64)
    hemoglobin = hemoglobin_pg(volume, raw_hemoglobin, selection.hemoglobin_kind)
    try:
        return CellSet(
            patient_id=patient,
            sample_id=sample,
            volume_fl=volume,
            hemoglobin_pg=hemoglobin,
            lab=lab or LabValues(),
            min_cells=min_cells,
        )
    except CellValidationError as exc:
        origin = {
            "volume_fl": f"channel $P{volume_channel.index}N {volume_channel.name!r}",
            "hemoglobin_pg": f"channel $P{hemoglobin_channel.index}N "
            f"{hemoglobin_channel.name!r}"
            + (" × volume / 100" if selection.hemoglobin_kind == "concentration_g_dl" else ""),
        }.get((exc.field or "").split("[")[0])
        if origin is None:
            raise
        raise CellValidationError(
            f"{exc.message} (from FCS {origin})", field=exc.field or ""
        ) from None


def read_fcs_channels(source: FcsSource) -> FcsInfo:
    """Validate HEADER and TEXT and describe the first data set, without decoding DATA."""
    with _open(source) as (handle, size, _stem):
        return validate(handle, size)


def read_fcs_table(source: FcsSource, *, max_cells: int = DEFAULT_MAX_CELLS) -> FcsTable:
    """Every channel of the first data set as float64, for inspection and tests."""
    with _open(source) as (handle, size, _stem):
        info = validate(handle, size)
        check_cells(info.n_events, max_cells, "$TOT", "$TOT")
        columns = _read_columns(handle, info)
    data = np.stack([np.asarray(c, dtype=np.float64) for c in columns], axis=1)
    return FcsTable(info=info, data=data)


# --- opening -------------------------------------------------------------------------------


@contextmanager
def _open(source: FcsSource) -> Iterator[tuple[BinaryIO, int, str | None]]:
    """Yield (binary handle, size in bytes, file-name stem or None) for any supported source."""
    if isinstance(source, bytes | bytearray | memoryview):
        handle: BinaryIO = io.BytesIO(bytes(source))
        yield handle, len(handle.getbuffer()), None
        return
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            opened = path.open("rb")
        except OSError as exc:
            raise IngestionError(
                f"cannot open FCS file {str(path)!r}: {exc.strerror or exc}",
                kind="fcs_io",
                field="path",
            ) from None
        with opened:
            yield opened, os.fstat(opened.fileno()).st_size, path.stem
        return
    if not hasattr(source, "read"):
        raise IngestionError(
            f"FCS source of type {type(source).__name__}: expected a path, bytes or a "
            "binary file object",
            kind="fcs_io",
            field="source",
        )
    handle = source
    if not (hasattr(handle, "seekable") and handle.seekable()):
        handle = io.BytesIO(source.read())
    handle.seek(0, io.SEEK_END)
    size = handle.tell()
    handle.seek(0)
    yield handle, size, None


# --- decoding ------------------------------------------------------------------------------


def _read_columns(handle: BinaryIO, info: FcsInfo) -> list[np.ndarray]:
    """Let fcsparser decode DATA (already known to match TEXT); one array per channel."""
    handle.seek(0)
    parser = FCSParser()
    try:
        parser.load_file(handle, data_set=0, read_data=True)
        data = parser.data
    except Exception as exc:  # fcsparser raises anything from KeyError to MemoryError
        raise corrupt(
            "DATA", f"fcsparser could not decode the file: {type(exc).__name__}: {exc}"
        ) from None
    meta = parser.annotation
    if meta.get("$TOT") != info.n_events or meta.get("$PAR") != len(info.channels):
        raise corrupt(
            "TEXT",
            f"fcsparser read $TOT = {meta.get('$TOT')!r}, $PAR = {meta.get('$PAR')!r} but "
            f"validation read {info.n_events}, {len(info.channels)}",
        )
    if data.dtype.names:  # mixed widths come back as a structured array
        columns = [np.asarray(data[name]) for name in data.dtype.names]
    elif data.ndim == 2:
        columns = [data[:, i] for i in range(data.shape[1])]
    else:
        columns = []
    if len(columns) != len(info.channels) or any(c.size != info.n_events for c in columns):
        raise corrupt(
            "DATA",
            f"fcsparser returned data of shape {data.shape}: expected {info.n_events} events "
            f"× {len(info.channels)} channels",
        )
    return columns


def _require_linear(channel: FcsChannel) -> None:
    """Log-amplified channels ($PnE f1 > 0) hold exponents, not fL or pg."""
    raw = channel.amplification
    if raw is None:
        return
    key = f"$P{channel.index}E"
    try:
        decades = float(raw.split(",")[0])
    except ValueError:
        raise corrupt(key, f"{key} = {raw!r}: expected 'f1,f2' such as '0,0'") from None
    if decades != 0:
        raise unsupported(
            key,
            f"{key} = {raw!r} on channel {channel.label!r}: log-amplified channels are not "
            "supported; volume and hemoglobin must be linear ($PnE 0,0)",
        )


def _check_byte_order(info: FcsInfo, channel: FcsChannel, raw: np.ndarray) -> None:
    """Floats read in the wrong byte order turn round numbers into subnormals (~1e-41).

    CellSet's range checks would accept those as tiny positive cells, so catch them here:
    no physical volume or hemoglobin is subnormal.
    """
    if not np.issubdtype(raw.dtype, np.floating):
        return
    tiny = np.finfo(raw.dtype).tiny
    magnitude = np.abs(raw)
    subnormal = np.flatnonzero((magnitude > 0) & (magnitude < tiny))
    if subnormal.size:
        i = int(subnormal[0])
        raise corrupt(
            "$BYTEORD",
            f"$BYTEORD = {info.byteorder}-endian but channel {channel.label!r} holds "
            f"{subnormal.size} subnormal values (event {i}: {float(raw[i]):.3g}), which is "
            "what data written in the other byte order reads as",
        )


# --- ids -----------------------------------------------------------------------------------


def _resolve_ids(
    info: FcsInfo,
    patient_id: str | None,
    sample_id: str | None,
    stem: str | None,
    default_sample_id: str | None = None,
) -> tuple[str, str]:
    keywords = info.keywords
    patient = patient_id if patient_id is not None else _non_blank(keywords.get("$SRC"))
    sample = sample_id
    if sample is None:
        sample = _non_blank(keywords.get("$SMNO"))
    if sample is None:
        sample = _file_stem(keywords.get("$FIL"))
    if sample is None:
        sample = _non_blank(stem)
    if sample is None:
        sample = _non_blank(default_sample_id)
    if patient is None:
        raise IngestionError(
            "no patient id: pass patient_id or set $SRC in the file",
            kind="fcs_no_id",
            field="patient_id",
        )
    if sample is None:
        raise IngestionError(
            "no sample id: pass sample_id or set $SMNO (or $FIL) in the file",
            kind="fcs_no_id",
            field="sample_id",
        )
    return patient, sample


def _non_blank(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _file_stem(value: str | None) -> str | None:
    """`$FIL` often holds a full Windows or POSIX path; keep the name without extension."""
    name = _non_blank(value)
    if name is None:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    return _non_blank(stem)
