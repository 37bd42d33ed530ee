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
    def open(cls, path: str | Path) -> FlowRBCFile:
        """Open and check the layout (shapes, feature count, labels per set)."""
        handle = _open(path)
        try:
            splits = [s for s in SPLITS if f"{s}_data" in handle]
            if not splits:
                raise IngestionError(
                    f"no 'train_data' or 'test_data' dataset; has {sorted(handle)}",
                    kind="hdf5_layout", field="train_data",
                )
            for split in splits:
                data = handle[f"{split}_data"]
                if data.ndim != 3 or data.shape[2] != N_FEATURES:
                    raise IngestionError(
                        f"{split}_data has shape {list(data.shape)}: expected [N, S, 2] "
                        "(feature 0 volume fL, 1 hemoglobin pg)",
                        kind="hdf5_layout", field=f"{split}_data",
                    )
                labels_name = f"{split}_labels"
                if labels_name in handle and handle[labels_name].shape[0] != data.shape[0]:
                    raise IngestionError(
                        f"{labels_name} has {handle[labels_name].shape[0]} values for "
                        f"{data.shape[0]} sets: expected one label per set",
                        kind="hdf5_layout", field=labels_name,
                    )
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
    chunk: int = 1024,
) -> Iterator[CellSet | SampleError]:
    """Yield every set as a `CellSet` (label -> measured hematocrit), or a `SampleError`.

    Ids: patient id `<split>-<index>` unless a `<split>_patient_id` dataset exists.
    """
    with FlowRBCFile.open(path) as f:
        for split in splits or tuple(f.splits):
            data = f.data(split)
            labels = f.labels(split)
            ids = f.extra(split, "patient_id")
            rbc = f.extra(split, "rbc_count_e12_per_l")
            for start in range(0, data.shape[0], chunk):
                block = data[start : start + chunk]  # [c, S, 2]
                for j in range(block.shape[0]):
                    i = start + j
                    pid = ids[i].decode() if ids is not None else f"{split}-{i}"
                    lab = LabValues(
                        measured_hematocrit_pct=_opt(labels, i),
                        rbc_count_e12_per_l=_opt(rbc, i),
                    )
                    try:
                        yield CellSet(pid, f"{split}-{i}", block[j, :, 0], block[j, :, 1],
                                      lab=lab, min_cells=min_cells)
                    except IngestionError as exc:
                        yield SampleError(pid, f"{split}-{i}", f"{split}_data[{i}]", exc.kind,
                                          exc.message)


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
