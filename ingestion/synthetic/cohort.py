"""Synthetic Flow-RBC cohort: a mechanistic stand-in for the real data set, which cannot be
downloaded here. SYNTHETIC: physiologically plausible, not clinical data (docs/cohort.md).

Patients come in fixed blocks of `BLOCK_PATIENTS`, each seeded by
`SeedSequence(seed, spawn_key=(block,))`, so patient i is the same in every cohort made with the
same seed, whatever its size or how it is written. The file has the Flow-RBC layout plus what
the generator knows: latents, `oracle_hct` (the irreducible-error floor), condition, sex, age,
the analyzer's RBC count and patient ids.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ingestion.flowrbc import FlowRBCWriter
from ingestion.synthetic.cells import draw_cells
from ingestion.synthetic.conditions import condition_names, table_as_dicts
from ingestion.synthetic.patients import LATENT_NAMES, Patients, Physiology, draw_patients

GENERATOR_VERSION = "1.0"
BLOCK_PATIENTS = 256
TEST_FRACTION = 0.19  # the paper's 23,104 / 121,344
_STREAM_PATIENTS, _STREAM_CELLS, _STREAM_COUNT = 0, 1, 2


@dataclass(frozen=True)
class CohortBlock:
    """Consecutive patients with their cells, `[B, S, 2]`, and per-patient values `[B]`."""

    patient_index: np.ndarray  # [B] int64, position in the cohort
    cells: np.ndarray  # [B, S, 2] float32: volume fL, hemoglobin pg
    patients: Patients
    rbc_count_e12_per_l: np.ndarray  # [B]

    @property
    def patient_ids(self) -> np.ndarray:
        return np.array([f"P{i:07d}" for i in self.patient_index])

    def take(self, index: np.ndarray) -> CohortBlock:
        return CohortBlock(self.patient_index[index], self.cells[index],
                           self.patients.take(index), self.rbc_count_e12_per_l[index])


@dataclass(frozen=True)
class CohortSummary:
    """What `simulate_cohort` wrote and how fast."""

    path: str
    n_train: int
    n_test: int
    cells_per_set: int
    seconds: float
    label_mean: float
    label_sd: float
    oracle_mse: float  # mean (hct - oracle_hct)^2 over all patients: the irreducible floor

    @property
    def patients_per_second(self) -> float:
        return (self.n_train + self.n_test) / max(self.seconds, 1e-9)


def generate_block(seed: int, block: int, n_cells: int, phys: Physiology | None = None,
                   test_fraction: float = TEST_FRACTION) -> CohortBlock:
    """The `block`-th run of `BLOCK_PATIENTS` patients; a pure function of its arguments."""
    phys = phys or Physiology()
    streams = [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block, s)))
               for s in (_STREAM_PATIENTS, _STREAM_CELLS, _STREAM_COUNT)]
    patients = draw_patients(streams[0], BLOCK_PATIENTS, test_fraction, phys)
    cells = draw_cells(streams[1], patients, n_cells, phys)
    rbc = rbc_count(patients.hct, cells, streams[2], phys.rbc_count_cv)
    index = block * BLOCK_PATIENTS + np.arange(BLOCK_PATIENTS, dtype=np.int64)
    return CohortBlock(index, cells, patients, rbc)


def rbc_count(hct: np.ndarray, cells: np.ndarray, rng: np.random.Generator,
              cv: float) -> np.ndarray:
    """Analyzer RBC count (10^12/L): cells per litre = Hct / MCV, plus counting error, so
    RBC x MCV / 10 recovers Hct up to that error."""
    mcv = cells[..., 0].mean(axis=1, dtype=np.float64)  # [B] fL
    return hct * 10.0 / mcv * np.exp(cv * rng.standard_normal(hct.shape[0]))


def generate_patients(seed: int, n_patients: int, n_cells: int, phys: Physiology | None = None,
                      test_fraction: float = TEST_FRACTION) -> Iterator[CohortBlock]:
    """Patients 0..n-1 block by block (the last block is cut, never drawn smaller)."""
    for block in range(-(-n_patients // BLOCK_PATIENTS)):
        out = generate_block(seed, block, n_cells, phys, test_fraction)
        keep = n_patients - block * BLOCK_PATIENTS
        yield out if keep >= BLOCK_PATIENTS else out.take(np.arange(keep))


def cohort_attrs(seed: int, n_patients: int, n_cells: int, phys: Physiology,
                 test_fraction: float) -> dict[str, object]:
    """File attrs: enough to regenerate the cohort and to know it is synthetic."""
    parameters = {"physiology": asdict(phys), "conditions": table_as_dicts(),
                  "block_patients": BLOCK_PATIENTS, "test_fraction": test_fraction}
    return {
        "synthetic": True,
        "generator": "hct.ingestion.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "n_patients": n_patients,
        "cells_per_set": n_cells,
        "parameters": json.dumps(parameters),
        "latent_names": json.dumps(list(LATENT_NAMES)),
        "condition_names": json.dumps(condition_names()),
        "description": "Synthetic red-cell cohort (docs/cohort.md); not patient data.",
    }


def block_extras(block: CohortBlock) -> dict[str, np.ndarray]:
    """The per-patient datasets written beside data and labels (`<split>_<name>`)."""
    p = block.patients
    return {
        "patient_id": block.patient_ids,
        "oracle_hct": p.oracle_hct.astype(np.float32),
        "condition": p.condition.astype(np.int8),
        "sex": np.where(p.sex_male, "M", "F"),
        "age_years": p.age_years.astype(np.float32),
        "rbc_count_e12_per_l": block.rbc_count_e12_per_l.astype(np.float32),
        "latents": p.latent_matrix(),
    }


def simulate_cohort(path: str | Path, n_patients: int, n_cells: int = 1000, seed: int = 0,
                    test_fraction: float = TEST_FRACTION, phys: Physiology | None = None,
                    progress: Callable[[int], None] | None = None) -> CohortSummary:
    """Write a cohort in the Flow-RBC layout, block by block; `progress(n)` after each block."""
    if n_patients < 1 or n_cells < 2:
        raise ValueError(f"n_patients = {n_patients}, n_cells = {n_cells}: need >= 1 and >= 2")
    phys = phys or Physiology()
    start = time.perf_counter()
    counts = {"train": 0, "test": 0}
    total, total_sq, floor = 0.0, 0.0, 0.0
    attrs = cohort_attrs(seed, n_patients, n_cells, phys, test_fraction)
    with FlowRBCWriter(path, cells_per_set=n_cells, attrs=attrs) as writer:
        for block in generate_patients(seed, n_patients, n_cells, phys, test_fraction):
            for split, rows in (("train", ~block.patients.is_test),
                                ("test", block.patients.is_test)):
                if rows.any():
                    part = block.take(np.flatnonzero(rows))
                    writer.append(split, part.cells, part.patients.hct, block_extras(part))
                    counts[split] += int(rows.sum())
            hct = block.patients.hct
            total += float(hct.sum())
            total_sq += float((hct**2).sum())
            floor += float(((hct - block.patients.oracle_hct) ** 2).sum())
            if progress is not None:
                progress(hct.shape[0])
    mean = total / n_patients
    return CohortSummary(path=str(path), n_train=counts["train"], n_test=counts["test"],
                         cells_per_set=n_cells, seconds=time.perf_counter() - start,
                         label_mean=mean, label_sd=float(np.sqrt(total_sq / n_patients - mean**2)),
                         oracle_mse=floor / n_patients)
