"""Builders and comparisons shared by the tabular (CSV/Parquet) ingestion tests."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from ingestion.cells import CellSet, LabValues
from ingestion.errors import SampleError

HEADER = "patient_id,sample_id,volume_fl,hemoglobin_pg"


def make_cellset(
    patient: str, sample: str, n: int = 250, *, seed: int = 0, lab: LabValues | None = None
) -> CellSet:
    rng = np.random.default_rng(seed)
    return CellSet(
        patient,
        sample,
        rng.uniform(60.0, 120.0, n),
        rng.uniform(20.0, 40.0, n),
        lab=lab or LabValues(),
        min_cells=1,
    )


def csv_rows(samples: list[tuple[str, str, int]], *, seed: int = 0) -> list[str]:
    """Data lines for (patient, sample, n_cells) blocks, in order."""
    rng = np.random.default_rng(seed)
    lines = []
    for patient, sample, n in samples:
        for v, h in zip(rng.uniform(60, 120, n), rng.uniform(20, 40, n), strict=True):
            lines.append(f"{patient},{sample},{v:.3f},{h:.3f}")
    return lines


def write_csv(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def summary(item: CellSet | SampleError) -> tuple[Any, ...]:
    """A comparable form of one reader output."""
    if isinstance(item, SampleError):
        return ("error", item)
    return (
        "ok",
        item.patient_id,
        item.sample_id,
        item.volume_fl.tobytes(),
        item.hemoglobin_pg.tobytes(),
        item.lab,
    )


def assert_same_cellsets(expected: list[CellSet], got: list[CellSet | SampleError]) -> None:
    assert [type(g) for g in got] == [CellSet] * len(expected)
    for want, have in zip(expected, got, strict=True):
        assert isinstance(have, CellSet)
        assert (have.patient_id, have.sample_id) == (want.patient_id, want.sample_id)
        np.testing.assert_array_equal(have.volume_fl, want.volume_fl)
        np.testing.assert_array_equal(have.hemoglobin_pg, want.hemoglobin_pg)
        assert have.lab == want.lab


def errors(items: list[CellSet | SampleError]) -> list[SampleError]:
    return [i for i in items if isinstance(i, SampleError)]


def good(items: list[CellSet | SampleError]) -> list[CellSet]:
    return [i for i in items if isinstance(i, CellSet)]


class OneWay(io.RawIOBase):
    """A non-seekable stream that counts the bytes handed out."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        self.consumed += len(chunk)
        return len(chunk)
