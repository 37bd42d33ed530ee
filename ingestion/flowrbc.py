"""The Flow-RBC HDF5 layout, read and written, so the real data set trains unchanged.

Published layout (Deep Sets++ paper, Flow-RBC): `train_data [N, S, 2]` float, `train_labels [N]`
(hematocrit %), `test_data`, `test_labels`; feature 0 is volume (fL), feature 1 hemoglobin (pg).
Every set is full (S cells). Extra datasets named `<split>_<name>` (e.g. `train_oracle_hct`)
carry what the synthetic cohort knows beyond the label; readers of the real data ignore them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

from ingestion.bounds import (
    DEFAULT_MAX_CELLS,
    MAX_CHUNK_BYTES,
    SLAB_BYTES,
    check_cells,
    check_real_dtype,
)
from ingestion.cells import DEFAULT_MIN_CELLS, CellSet, LabValues
from ingestion.errors import IngestionError, SampleError

SPLITS = ("train", "test")
N_FEATURES = 2


def _open(path: str | Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise IngestionError(f"not a readable HDF5 file ({exc})", kind="hdf5_corrupt",
                             field="file") from None


@dataclass
class FlowRBCFile:
    """An open Flow-RBC file; datasets stay on disk and are sliced lazily."""

    handle: h5py.File

    @classmethod
    def open(cls, path: str | Path, *, max_cells: int = DEFAULT_MAX_CELLS) -> FlowRBCFile:
        """Open and check the layout (shapes, dtypes, feature count, labels per set) from the
        header alone: nothing is read until the sets are sliced.
        """
        handle = _open(path)
        try:
            splits = [s for s in SPLITS if f"{s}_data" in handle]
            if not splits:
                raise IngestionError(
                    f"no 'train_data' or 'test_data' dataset; has {sorted(handle)}",
                    kind="hdf5_layout", field="train_data",
                )
            for split in splits:
                _check_split(handle, split, max_cells)
        except BaseException:
            handle.close()
            raise
        return cls(handle)

    @property
    def splits(self) -> list[str]:
        return [s for s in SPLITS if f"{s}_data" in self.handle]

    def data(self, split: str) -> h5py.Dataset:
        return self.handle[f"{split}_data"]  # [N, S, 2]

    def labels(self, split: str) -> np.ndarray | None:
        name = f"{split}_labels"
        return self.handle[name][...].astype(np.float64) if name in self.handle else None

    def extra(self, split: str, name: str) -> np.ndarray | None:
        key = f"{split}_{name}"
        return self.handle[key][...] if key in self.handle else None

    @property
    def attrs(self) -> dict[str, object]:
        return dict(self.handle.attrs)

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> FlowRBCFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_flowrbc(
    path: str | Path,
    *,
    splits: tuple[str, ...] | None = None,
    min_cells: int = DEFAULT_MIN_CELLS,
    max_cells: int = DEFAULT_MAX_CELLS,
    chunk: int = 1024,
    window: tuple[int, int] | None = None,
) -> Iterator[CellSet | SampleError]:
    """Yield every set as a `CellSet` (label -> measured hematocrit), or a `SampleError`.

    Ids: patient id `<split>-<index>` unless a `<split>_patient_id` dataset exists. Sets are
    read in slabs of at most `chunk` sets and about `SLAB_BYTES`, whatever the file declares.
    `window=(start, stop)` reads only sets `start:stop` of each split (parallel readers).
    """
    with FlowRBCFile.open(path, max_cells=max_cells) as f:
        for split in splits or tuple(f.splits):
            data = f.data(split)  # [N, S, 2]
            n_sets, per_set = data.shape[0], max(1, data.shape[1] * N_FEATURES
                                                 * data.dtype.itemsize)
            step = max(1, min(chunk, SLAB_BYTES // per_set))
            if data.chunks and step < data.chunks[0] <= MAX_CHUNK_BYTES // per_set:
                step = data.chunks[0]  # whole storage chunks: each is inflated once
            first, last = (0, n_sets) if window is None else (window[0], min(window[1], n_sets))
            for start in range(first, last, step):
                stop = min(start + step, last)
                block, labels, ids, rbc = _slab(f.handle, split, start, stop)  # [c, S, 2]
                for j in range(block.shape[0]):
                    i = start + j
                    where = f"{split}_data[{i}]"
                    try:
                        pid = _text(ids[j]) if ids is not None else f"{split}-{i}"
                    except UnicodeDecodeError:
                        yield SampleError(None, f"{split}-{i}", f"{split}_patient_id[{i}]",
                                          "hdf5_patient_id", f"{split}_patient_id[{i}] = "
                                          f"{bytes(ids[j])[:40]!r}: not valid UTF-8")
                        continue
                    try:
                        lab = LabValues(
                            measured_hematocrit_pct=_opt(labels, j),
                            rbc_count_e12_per_l=_opt(rbc, j),
                        )
                        yield CellSet(pid, f"{split}-{i}", block[j, :, 0], block[j, :, 1],
                                      lab=lab, min_cells=min_cells)
                    except IngestionError as exc:
                        yield SampleError(pid, f"{split}-{i}", where, exc.kind, exc.message)


def _slab(handle: h5py.File, split: str, start: int, stop: int
          ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Sets `start:stop` and their labels, ids and RBC counts; a read failure names where."""
    out: list[np.ndarray | None] = []
    for name in ("data", "labels", "patient_id", "rbc_count_e12_per_l"):
        key = f"{split}_{name}"
        if name != "data" and key not in handle:
            out.append(None)
            continue
        try:
            out.append(handle[key][start:stop])
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise IngestionError(f"{key}[{start}:{stop}] cannot be read ({exc})",
                                 kind="hdf5_corrupt", field=key) from None
    block, labels, ids, rbc = out
    assert block is not None
    return block, labels, ids, rbc


def _check_split(handle: h5py.File, split: str, max_cells: int) -> None:
    """Every dataset a reader touches: a plain dataset, real numbers (ids: strings), one
    value per set, storage inside this file, and at most `max_cells` cells per set.
    """
    name = f"{split}_data"
    data = _dataset(handle, name)
    check_real_dtype(data.dtype, name)
    if data.ndim != 3 or data.shape[2] != N_FEATURES:
        raise IngestionError(
            f"{name} has shape {list(data.shape)}: expected [N, S, 2] "
            "(feature 0 volume fL, 1 hemoglobin pg)",
            kind="hdf5_layout", field=name,
        )
    check_cells(data.shape[1], max_cells, name, f"{name} shape {list(data.shape)}: S")
    per_set = [f"{split}_labels", f"{split}_rbc_count_e12_per_l", f"{split}_patient_id"]
    for key in per_set:
        if key not in handle:
            continue
        values = _dataset(handle, key)
        if key.endswith("_patient_id"):
            if values.dtype.kind != "S" and h5py.check_string_dtype(values.dtype) is None:
                raise IngestionError(
                    f"{key} has dtype {values.dtype}: expected strings (one patient id per set)",
                    kind="hdf5_layout", field=key,
                )
        else:
            check_real_dtype(values.dtype, key)
        if values.ndim != 1:
            raise IngestionError(
                f"{key} has shape {list(values.shape)}: expected [{data.shape[0]}], one value "
                f"per set of {name}",
                kind="hdf5_layout", field=key,
            )
        if values.shape[0] != data.shape[0]:
            raise IngestionError(
                f"{key} has {values.shape[0]} values for {data.shape[0]} sets: expected one "
                "per set", kind="hdf5_layout", field=key,
            )


def _dataset(handle: h5py.File, key: str) -> h5py.Dataset:
    """The dataset at `key`, refusing groups, links and storage outside the file (an external
    or virtual dataset would read other files on this server).
    """
    link = handle.get(key, getlink=True)
    if not isinstance(link, h5py.HardLink):
        what = {"SoftLink": "a soft link", "ExternalLink": "an external link"}.get(
            type(link).__name__, f"a {type(link).__name__}")
        raise IngestionError(
            f"{key} is {what}: expected a dataset stored in this file",
            kind="hdf5_layout", field=key,
        )
    try:
        obj = handle[key]
    except (KeyError, OSError, ValueError) as exc:
        raise IngestionError(f"{key} cannot be opened ({exc})", kind="hdf5_corrupt",
                             field=key) from None
    if not isinstance(obj, h5py.Dataset):
        raise IngestionError(f"{key} is a {type(obj).__name__.lower()}: expected a dataset",
                             kind="hdf5_layout", field=key)
    if obj.external or obj.is_virtual:
        raise IngestionError(f"{key} keeps its values in other files: expected a dataset "
                             "stored in this file", kind="hdf5_layout", field=key)
    if obj.chunks:
        chunk_bytes = int(np.prod(obj.chunks)) * obj.dtype.itemsize
        if chunk_bytes > MAX_CHUNK_BYTES:
            raise IngestionError(
                f"{key} is stored in chunks of {list(obj.chunks)} = {chunk_bytes} bytes: at "
                f"most {MAX_CHUNK_BYTES} per chunk", kind="hdf5_layout", field=key)
    return obj


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes | np.bytes_) else str(value)


def _opt(values: np.ndarray | None, i: int) -> float | None:
    if values is None:
        return None
    v = float(values[i])
    return v if np.isfinite(v) else None


class FlowRBCWriter:
    """Append-only writer: sets arrive in chunks, so a 100,000-patient cohort never sits in
    memory. Every dataset is resizable along axis 0 and gzip-compressed.
    """

    def __init__(self, path: str | Path, *, cells_per_set: int,
                 attrs: dict[str, object] | None = None) -> None:
        self.path = Path(path)
        self.cells_per_set = cells_per_set
        self.handle = h5py.File(self.path, "w")
        for key, value in (attrs or {}).items():
            self.handle.attrs[key] = value

    def append(self, split: str, data: np.ndarray, labels: np.ndarray,
               extras: dict[str, np.ndarray] | None = None) -> None:
        """Add sets `data [n, S, 2]`, `labels [n]` and optional per-set `extras [n, ...]`."""
        if split not in SPLITS:
            raise ValueError(f"split = {split!r}: must be one of {SPLITS}")
        n = data.shape[0]
        if data.shape[1:] != (self.cells_per_set, N_FEATURES):
            raise ValueError(f"data has shape {list(data.shape)}: expected "
                             f"[n, {self.cells_per_set}, {N_FEATURES}]")
        columns = {"data": data.astype(np.float32), "labels": np.asarray(labels, np.float32)}
        for name, values in (extras or {}).items():
            columns[name] = np.asarray(values)
        for name, values in columns.items():
            if values.shape[0] != n:
                raise ValueError(f"{split}_{name} has {values.shape[0]} rows for {n} sets")
            self._append(f"{split}_{name}", values)

    def _append(self, key: str, values: np.ndarray) -> None:
        if values.dtype.kind == "U":
            values = values.astype("S")
        if key not in self.handle:
            chunks = (min(64, max(1, values.shape[0])), *values.shape[1:])
            self.handle.create_dataset(key, data=values, maxshape=(None, *values.shape[1:]),
                                       chunks=chunks, compression="gzip", compression_opts=1)
            return
        ds = self.handle[key]
        old = ds.shape[0]
        ds.resize(old + values.shape[0], axis=0)
        ds[old:] = values

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> FlowRBCWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def write_flowrbc(path: str | Path, splits: dict[str, tuple[np.ndarray, np.ndarray]],
                  *, attrs: dict[str, object] | None = None) -> None:
    """Write whole splits at once: `{"train": (data [N, S, 2], labels [N]), ...}`."""
    first = next(iter(splits.values()))[0]
    with FlowRBCWriter(path, cells_per_set=first.shape[1], attrs=attrs) as writer:
        for split, (data, labels) in splits.items():
            writer.append(split, data, labels)
