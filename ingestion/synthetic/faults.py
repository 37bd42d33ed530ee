"""Valid-looking but wrong samples: the faults a laboratory actually sends, made from good ones.

Each fault takes one sample's cells `[n, 2]` (volume fL, hemoglobin pg) and returns the cells
the analyzer or the interface would have delivered instead. They exist to test and measure the
sample-quality verdict and the drift monitor (docs/trust.md); SYNTHETIC, like the cohort.

Families (the verdict must catch every one; `volume_calibration` is a population drift that
the monitor, not the per-sample verdict, is meant to notice):
- unit mistakes: hemoglobin in fmol (SI labs: 1 pg of hemoglobin = 0.0621 fmol of heme
  monomer, MCH 29 pg reads 1.8), or the hemoglobin *concentration* channel (g/dL) mapped as
  the per-cell content (pg);
- swapped channels: volume and hemoglobin exchanged by the channel map;
- contamination by non-red-cell events: platelet-sized debris (clotted sample, lysis), or
  white cells (large, almost no hemoglobin signal);
- extra measurement noise: a dirty flow cell or a failing laser widens every cell's reading;
- too few cells after gating;
- an analyzer volume-calibration shift (every volume scaled by a few %).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

PG_PER_FMOL = 16.11  # hemoglobin monomer, 16.1 kDa: 1 fmol weighs 16.11 pg
VOLUME_MAX_FL = 300.0  # CellSet's upper bound: events beyond it would be refused, not faulty
HEMOGLOBIN_MAX_PG = 100.0

Fault = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def hemoglobin_fmol(cells: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hemoglobin sent in fmol instead of pg (about 16 times too small)."""
    out = _copy(cells)
    out[:, 1] /= PG_PER_FMOL
    return out


def hemoglobin_concentration(cells: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The per-cell concentration channel (CHC, g/dL) mapped as hemoglobin content (pg)."""
    out = _copy(cells)
    out[:, 1] = 100.0 * cells[:, 1] / cells[:, 0]
    return out


def swapped_channels(cells: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Volume and hemoglobin exchanged."""
    return _copy(cells)[:, ::-1].copy()


def platelet_debris(cells: np.ndarray, rng: np.random.Generator,
                    fraction: tuple[float, float] = (0.05, 0.15)) -> np.ndarray:
    """A share of events replaced by platelet clumps / debris: 2-30 fL, 5-15 g/dL."""
    out = _copy(cells)
    pick = _events(out.shape[0], rng.uniform(*fraction), rng)
    volume = np.exp(rng.normal(np.log(8.0), 0.5, pick.size)).clip(2.0, 30.0)
    out[pick, 0] = volume
    out[pick, 1] = volume * rng.uniform(0.05, 0.15, pick.size)
    return out


def white_cells(cells: np.ndarray, rng: np.random.Generator,
                fraction: tuple[float, float] = (0.03, 0.10)) -> np.ndarray:
    """A share of events replaced by white cells: large (about 200 fL), 2-8 g/dL signal."""
    out = _copy(cells)
    pick = _events(out.shape[0], rng.uniform(*fraction), rng)
    volume = np.exp(rng.normal(np.log(210.0), 0.15, pick.size)).clip(120.0, VOLUME_MAX_FL)
    out[pick, 0] = volume
    out[pick, 1] = volume * rng.uniform(0.02, 0.08, pick.size)
    return out


def extra_noise(cells: np.ndarray, rng: np.random.Generator,
                cv: tuple[float, float] = (0.08, 0.15)) -> np.ndarray:
    """Every reading multiplied by independent log-normal noise of CV `cv` (the cohort's own
    measurement CV is 0.02; the verdict's detection falls off below 0.08, docs/trust.md)."""
    out = _copy(cells)
    size = rng.uniform(*cv)
    out *= np.exp(size * rng.standard_normal(out.shape)).astype(np.float32)
    return _clip(out)


def too_few_cells(cells: np.ndarray, rng: np.random.Generator,
                  kept: tuple[int, int] = (50, 400)) -> np.ndarray:
    """Only a few hundred events left after gating (a random subset)."""
    n = min(int(rng.integers(kept[0], kept[1] + 1)), cells.shape[0])
    return _copy(cells)[np.sort(rng.choice(cells.shape[0], n, replace=False))]


def volume_calibration(cells: np.ndarray, rng: np.random.Generator,
                       factor: float = 1.05) -> np.ndarray:
    """Every volume scaled by `factor` (analyzer calibration drift; hemoglobin unchanged)."""
    out = _copy(cells)
    out[:, 0] *= factor
    return _clip(out)


# Per-sample faults the quality verdict must catch, by family.
SAMPLE_FAULTS: dict[str, Fault] = {
    "hemoglobin_fmol": hemoglobin_fmol,
    "hemoglobin_concentration": hemoglobin_concentration,
    "swapped_channels": swapped_channels,
    "platelet_debris": platelet_debris,
    "white_cells": white_cells,
    "extra_noise": extra_noise,
    "too_few_cells": too_few_cells,
}
FAULT_FAMILY: dict[str, str] = {
    "hemoglobin_fmol": "unit mistake",
    "hemoglobin_concentration": "unit mistake",
    "swapped_channels": "swapped channels",
    "platelet_debris": "non-red-cell events",
    "white_cells": "non-red-cell events",
    "extra_noise": "measurement noise",
    "too_few_cells": "too few cells",
}
DRIFTS: dict[str, Fault] = {"volume_calibration": volume_calibration}


def faulty_samples(cells: np.ndarray, fault: str, seed: int) -> list[np.ndarray]:
    """`fault` applied to every sample of `cells [N, S, 2]`, seeded: N arrays `[n_i, 2]`."""
    known = {**SAMPLE_FAULTS, **DRIFTS}
    make = known.get(fault)
    if make is None:
        raise ValueError(f"fault = {fault!r}: expected one of {sorted(known)}")
    rng = np.random.default_rng(seed)
    return [make(np.asarray(c), rng) for c in cells]


def _copy(cells: np.ndarray) -> np.ndarray:
    cells = np.asarray(cells)
    if cells.ndim != 2 or cells.shape[1] != 2:
        raise ValueError(f"cells have shape {list(cells.shape)}: expected [n, 2]")
    return cells.astype(np.float32, copy=True)


def _events(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(n, max(1, round(n * fraction)), replace=False)


def _clip(cells: np.ndarray) -> np.ndarray:
    """Keep readings inside what validation accepts, as an analyzer's range limits would."""
    cells[:, 0] = cells[:, 0].clip(1e-3, VOLUME_MAX_FL)
    cells[:, 1] = cells[:, 1].clip(1e-3, HEMOGLOBIN_MAX_PG)
    return cells
