"""CBC red-cell indices computed from the cells themselves, as an analyzer reports them.

Formulas (V = cell volume in fL, H = cell hemoglobin in pg, CHC = 100·H/V in g/dL):
- MCV (fL)      = mean(V)
- MCH (pg)      = mean(H)
- MCHC (g/dL)   = 100 · MCH / MCV      (pg/fL = 100 g/dL)
- CHCM (g/dL)   = mean(CHC), the cell-by-cell mean concentration (ADVIA); close to MCHC
- RDW-CV (%)    = 100 · SD(V) / MCV    (population SD)
- RDW-SD (fL)   = width of the volume histogram (1-fL bins, 5-bin moving average) at 20 % of
                  its peak height, with linear interpolation at both crossings (the Sysmex
                  definition that the 39–46 fL reference range refers to; SD(V) itself is
                  about 12 fL in health)
- HDW (g/dL)    = SD(CHC), the hemoglobin concentration distribution width (Siemens ADVIA)
- Mentzer index = MCV / RBC count (10^12/L), only when an RBC count is known; < 13 suggests
                  thalassemia trait, > 13 iron deficiency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ingestion.batching import bucket_by_length, pad_sets
from ingestion.cells import CellSet
from ingestion.masked import masked_central_moment, masked_mean, valid_mask

INDEX_NAMES = ("mcv_fl", "mch_pg", "mchc_g_dl", "chcm_g_dl", "rdw_cv_pct", "rdw_sd_fl",
               "hdw_g_dl")
_HIST_MAX_FL = 300
_RDW_SD_LEVEL = 0.2


@dataclass(frozen=True)
class RedCellIndices:
    """The red-cell indices of one sample."""

    n_cells: int
    mcv_fl: float
    mch_pg: float
    mchc_g_dl: float
    chcm_g_dl: float
    rdw_cv_pct: float
    rdw_sd_fl: float
    hdw_g_dl: float

    def as_dict(self) -> dict[str, float]:
        # vars(), not asdict(): asdict walks and deep-copies every field, per sample, for nothing
        return dict(vars(self))

    def mentzer_index(self, rbc_count_e12_per_l: float) -> float:
        """MCV / RBC: the classic screen separating thalassemia trait from iron deficiency."""
        return self.mcv_fl / rbc_count_e12_per_l


def red_cell_indices(cells: CellSet) -> RedCellIndices:
    """Indices of one validated sample (same code path as the cohort-wide table)."""
    x = cells.cells()[None]  # [1, N, 2]
    return indices_row(indices_table(x, np.array([cells.n_cells])), 0, cells.n_cells)


def indices_row(table: dict[str, np.ndarray], i: int, n_cells: int) -> RedCellIndices:
    """Row `i` of an `indices_table`, for a sample of `n_cells` cells."""
    return RedCellIndices(n_cells=n_cells, **{k: float(v[i]) for k, v in table.items()})


def red_cell_indices_many(cellsets: Sequence[CellSet],
                          batch_size: int = 64) -> list[RedCellIndices]:
    """`red_cell_indices` for many samples, computed in padded batches of similar size (one
    vectorised pass per batch instead of a dozen small numpy calls per sample).
    """
    out: list[RedCellIndices | None] = [None] * len(cellsets)
    lengths = np.array([cs.n_cells for cs in cellsets])
    for index in bucket_by_length(lengths, batch_size):
        x, n = pad_sets([cellsets[i].cells() for i in index])  # [b, S, 2], [b]
        table = indices_table(x, n)
        for j, i in enumerate(index):
            out[i] = indices_row(table, j, int(n[j]))
    return [r for r in out if r is not None]


def indices_table(x: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """Indices for a padded batch: `x [B, S, 2]`, `lengths [B]` -> name -> `[B]` float64."""
    lengths = np.asarray(lengths)
    if np.any(lengths < 2):
        raise ValueError("every set needs at least 2 cells for a distribution width")
    volume = x[..., 0].astype(np.float64)  # [B, S]
    hemoglobin = x[..., 1].astype(np.float64)  # [B, S]
    mask = valid_mask(lengths, x.shape[1])
    n = lengths.astype(np.float64)
    mcv = masked_mean(volume, mask, n)
    mch = masked_mean(hemoglobin, mask, n)
    chc = 100.0 * hemoglobin / np.where(mask, volume, 1.0)  # [B, S] g/dL
    chc_mean = masked_mean(chc, mask, n)
    return {
        "mcv_fl": mcv,
        "mch_pg": mch,
        "mchc_g_dl": 100.0 * mch / mcv,
        "chcm_g_dl": chc_mean,
        "rdw_cv_pct": 100.0 * np.sqrt(masked_central_moment(volume, mask, n, mcv, 2)) / mcv,
        "rdw_sd_fl": rdw_sd(volume, mask),
        "hdw_g_dl": np.sqrt(masked_central_moment(chc, mask, n, chc_mean, 2)),
    }


def rdw_sd(volume: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Histogram width at 20 % of peak height, in fL, `[B, S] -> [B]`."""
    batch = volume.shape[0]
    bins = np.clip(np.floor(volume), 0, _HIST_MAX_FL - 1).astype(np.int64)  # [B, S]
    flat = (bins + _HIST_MAX_FL * np.arange(batch)[:, None])[mask]
    hist = np.bincount(flat, minlength=batch * _HIST_MAX_FL).reshape(batch, _HIST_MAX_FL)
    kernel = np.ones(5) / 5.0
    smooth = np.apply_along_axis(lambda h: np.convolve(h, kernel, mode="same"), 1, hist)
    level = _RDW_SD_LEVEL * smooth.max(axis=1, keepdims=True)  # [B, 1]
    above = smooth >= level
    first = above.argmax(axis=1)
    last = _HIST_MAX_FL - 1 - above[:, ::-1].argmax(axis=1)
    rows = np.arange(batch)
    left = _crossing(smooth, level[:, 0], rows, first, first - 1)
    right = _crossing(smooth, level[:, 0], rows, last, last + 1)
    return right - left


def _crossing(
    hist: np.ndarray, level: np.ndarray, rows: np.ndarray, inside: np.ndarray, outside: np.ndarray
) -> np.ndarray:
    """Bin-centre position where the histogram crosses `level` between two neighbouring bins."""
    outside = np.clip(outside, 0, hist.shape[1] - 1)
    h_in = hist[rows, inside]
    h_out = np.where(outside == inside, 0.0, hist[rows, outside])
    frac = np.where(h_in > h_out, (h_in - level) / np.maximum(h_in - h_out, 1e-12), 0.0)
    return inside + 0.5 + (outside - inside) * frac
