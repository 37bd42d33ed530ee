"""Red cells from an age-structured maturation model (after Higgins & Mahadevan, PNAS 2010).

A cell is born as a reticulocyte: larger and with a lower hemoglobin concentration than a
mature cell. Over its first days it sheds the excess (`exp(-age / retic_days)`); afterwards it
loses volume faster than hemoglobin (`hb_loss_ratio` < 1), so it gets smaller and denser, until
it has lost `clearance_loss` of its volume and reaches the clearance threshold. Anemia delays
clearance (Patel et al. 2015): cells then wait at the threshold, losing water but not
hemoglobin, and form a small, dense tail whose size (`dwell_fraction`) tracks the red-cell mass.

In a steady state every age is equally represented; random destruction (hemolysis) makes the
age distribution a truncated exponential. Non-steady populations get their own ages: cells
regenerated after a bleed, and donor cells ageing in the recipient.
"""

from __future__ import annotations

import numpy as np

from ingestion.synthetic.patients import Patients, Physiology

VOLUME_CLIP_FL = (1.0, 300.0)  # inside CellSet's (0, 300]
HEMOGLOBIN_CLIP_PG = (0.1, 100.0)  # inside CellSet's (0, 100]
_SPHEROCYTE_VOLUME = 0.78  # membrane loss: same hemoglobin, smaller volume
_FRAGMENT_SIZE = 0.45
_DONOR_AGE_DAYS = 1e3  # stored donor cells carry no reticulocytes


def draw_cells(rng: np.random.Generator, patients: Patients, n_cells: int,
               phys: Physiology) -> np.ndarray:
    """Cells for every patient, `[B, S, 2]` float32: volume (fL), hemoglobin (pg)."""
    b = patients.hct.shape[0]
    u = rng.random((2, b, n_cells))  # population, progress
    z = rng.standard_normal((5, b, n_cells))  # birth volume, CHC, clearance, 2x measurement
    col = _columns(patients)

    # Which population each cell belongs to, by cumulative fractions of u[0].
    c_debris = np.full((b, 1), phys.debris_fraction)
    c_fragment = c_debris + col["fragment_fraction"]
    c_donor = c_fragment + col["donor_fraction"]
    c_new = c_donor + col["new_fraction"]
    is_debris = u[0] < c_debris
    is_fragment = (u[0] >= c_debris) & (u[0] < c_fragment)
    is_donor = (u[0] >= c_fragment) & (u[0] < c_donor)
    is_new = (u[0] >= c_donor) & (u[0] < c_new)
    rest = (u[0] - c_new) / np.maximum(1.0 - c_new, 1e-9)  # uniform in [0, 1) on steady cells
    is_spherocyte = (rest >= 0) & (rest < col["spherocyte_fraction"])
    is_coincidence = rest > 1.0 - phys.coincidence_fraction

    progress, dwell, age_days = _progress(u[1], col, is_donor, is_new)
    volume0 = np.where(is_donor, col["donor_volume_fl"], col["volume_mature_fl"])  # [B, S]
    chc0 = np.where(is_donor, col["donor_chc_g_dl"], col["chc_mature_g_dl"])
    spread = np.where(is_donor, phys.cell_volume_cv, col["cell_volume_cv"])
    birth_volume = volume0 * np.exp(spread * z[0])
    birth_hb = birth_volume * chc0 * np.exp(phys.cell_chc_cv * z[1]) / 100.0
    clearance = np.where(is_donor, phys.clearance_loss, col["clearance_loss"])
    loss = clearance * np.exp(phys.clearance_cell_sd * z[2]) * progress  # ageing: V and Hb
    # Waiting at the threshold costs water, not hemoglobin, so CHC climbs; cells that lost more
    # membrane dehydrate more (same draw as the clearance loss).
    water = col["dwell_loss"] * np.exp(phys.dwell_loss_cell_sd * z[2]) * dwell
    keep = np.maximum(1.0 - loss - water, 0.15)
    young = np.exp(-age_days / col["retic_days"])  # 1 at birth -> 0 once mature
    hb_ratio = np.where(is_donor, phys.hb_loss_ratio, col["hb_loss_ratio"])
    volume = birth_volume * (1.0 + col["retic_volume_excess"] * young) * keep
    hemoglobin = birth_hb * (1.0 + phys.retic_hb_excess * young) * (1.0 - hb_ratio * loss)

    volume = np.where(is_spherocyte, volume * _SPHEROCYTE_VOLUME, volume)
    volume = np.where(is_fragment, volume * _FRAGMENT_SIZE, volume)
    hemoglobin = np.where(is_fragment, hemoglobin * _FRAGMENT_SIZE * 1.05, hemoglobin)
    debris_volume = 2.0 + 30.0 * u[1] ** 2
    volume = np.where(is_debris, debris_volume, volume)
    hemoglobin = np.where(is_debris, debris_volume * (0.1 + 0.1 * np.abs(z[1])), hemoglobin)
    # Coincidence: the next cell in the (random) order passes the aperture at the same time.
    volume = np.where(is_coincidence, volume + np.roll(volume, 1, axis=1), volume)
    hemoglobin = np.where(is_coincidence, hemoglobin + np.roll(hemoglobin, 1, axis=1), hemoglobin)

    volume = volume * col["swelling"] * np.exp(phys.measurement_cv * z[3])
    hemoglobin = hemoglobin * np.exp(phys.measurement_cv * z[4])
    out = np.empty((b, n_cells, 2), dtype=np.float32)
    out[..., 0] = np.clip(volume, *VOLUME_CLIP_FL)
    out[..., 1] = np.clip(hemoglobin, *HEMOGLOBIN_CLIP_PG)
    return out


def _columns(patients: Patients) -> dict[str, np.ndarray]:
    """Per-patient latents as `[B, 1]` columns that broadcast over cells."""
    names = ("fragment_fraction", "donor_fraction", "new_fraction", "spherocyte_fraction",
             "donor_volume_fl", "donor_chc_g_dl", "volume_mature_fl", "chc_mature_g_dl",
             "cell_volume_cv", "clearance_loss", "hb_loss_ratio", "retic_days",
             "retic_volume_excess", "lifespan_days", "hemolysis_kappa", "new_days",
             "donor_progress0", "dwell_fraction", "dwell_loss", "swelling")
    return {n: getattr(patients, n)[:, None] for n in names}


def _progress(u: np.ndarray, col: dict[str, np.ndarray], is_donor: np.ndarray,
              is_new: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Progress to the clearance threshold `p` in [0, 1], progress through the wait at the
    threshold `q` in [0, 1), and age in days, `[B, S]` each."""
    life = col["lifespan_days"]
    kappa = np.maximum(col["hemolysis_kappa"], 1e-6)
    # Steady cells: time since birth as a share of lifespan + wait, uniform in a steady state
    # (a truncated exponential under random destruction), starting after the regenerated cells.
    start = col["new_days"] / life
    t = -np.log1p(u * np.expm1(-kappa)) / kappa
    t = start + (1.0 - start) * t
    waiting = 1.0 - col["dwell_fraction"]  # share of the steady cells not yet at the threshold
    steady = np.minimum(t / waiting, 1.0)
    dwell = np.maximum(t - waiting, 0.0) / np.maximum(col["dwell_fraction"], 1e-9)
    donor = col["donor_progress0"] + (1.0 - col["donor_progress0"]) * u
    new_age = u * col["new_days"]
    progress = np.where(is_donor, donor, np.where(is_new, new_age / life, steady))
    dwell = np.where(is_donor | is_new, 0.0, dwell)
    age_days = np.where(is_donor, _DONOR_AGE_DAYS, progress * life)
    return progress, dwell, age_days
