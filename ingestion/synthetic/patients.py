"""Patient-level latents of the synthetic cohort: condition, red-cell mass, kinetics, plasma.

The label is built in two steps so its invisible part is explicit:
1. `hct_red_cell` (%): the hematocrit the red-cell mass gives at the patient's usual plasma
   volume; it drives the erythropoietic feedback that shapes the cells (see synthetic/cells.py).
2. `hct = hct_red_cell · exp(plasma_log)`: hemodilution / hemoconcentration. No cell sees it.
`oracle_hct = E[hct | every latent but plasma_log] = hct_red_cell · exp(μ_c + σ_c²/2)`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ingestion.synthetic.conditions import Condition, prevalence, spec_column


@dataclass(frozen=True)
class Physiology:
    """Global kinetic and measurement constants (healthy adult unless named otherwise)."""

    volume_mature_fl: float = 98.0  # newborn volume once the reticulocyte phase is over
    volume_patient_cv: float = 0.045  # between-patient spread of that volume
    chc_mature_g_dl: float = 31.4  # newborn hemoglobin concentration
    chc_patient_cv: float = 0.025  # between-patient spread of that concentration
    cell_volume_cv: float = 0.07  # within-patient spread of newborn volumes
    cell_volume_cv_patient_sd: float = 0.06  # log-SD of that spread between patients
    cell_chc_cv: float = 0.02  # within-patient spread of newborn concentrations
    lifespan_days: float = 120.0  # days from birth to the clearance threshold
    lifespan_patient_sd: float = 0.08  # log-SD between patients
    clearance_loss: float = 0.18  # volume fraction a cell has lost when it is cleared
    clearance_patient_sd: float = 0.15  # log-SD between patients
    clearance_cell_sd: float = 0.15  # log-SD between cells
    hb_loss_ratio: float = 0.35  # hemoglobin lost per unit volume lost while ageing
    hb_loss_ratio_sd: float = 0.06  # between patients (absolute)
    drive_reference_hct: float = 45.0  # hematocrit at which the anemia drive is ~0
    drive_softness: float = 0.06  # width of the soft ramp of the drive
    delay_gain: float = 2.5  # dwell time at the clearance threshold / lifespan, per unit drive
    delay_gain_patient_sd: float = 0.12  # log-SD between patients
    dwell_loss: float = 0.09  # water (not hemoglobin) lost while a cell waits: dehydration
    dwell_loss_patient_sd: float = 0.2  # log-SD between patients
    dwell_loss_cell_sd: float = 0.35  # log-SD between cells: the dense tail is a smear, not a spot
    acceleration_gain: float = 1.5  # earlier clearance per unit of excess red-cell mass
    erythrocytosis_retic_days: float = 2.5  # extra young-cell days from autonomous production
    retic_volume_excess: float = 0.20  # reticulocytes are this much larger at birth
    retic_hb_excess: float = 0.05  # ... and carry this much more hemoglobin (lower CHC)
    retic_days: float = 1.2  # circulating reticulocyte maturation time
    stress_retic_days: float = 6.0  # extra maturation days per unit drive (shift cells)
    stress_volume_excess: float = 0.6  # extra reticulocyte volume per unit drive
    debris_fraction: float = 0.001  # platelet clumps, fragments and noise events
    coincidence_fraction: float = 0.001  # two cells read as one
    measurement_cv: float = 0.02  # per-cell volume and hemoglobin measurement noise
    storage_max_hours: float = 24.0  # EDTA sample age at analysis, uniform up to this
    swelling_per_hour: float = 0.002  # cells swell in stored EDTA blood (volume up, CHC down)
    rbc_count_cv: float = 0.025  # analyzer counting error
    donor_survival_24h: float = 0.9  # share of transfused cells alive after a day
    transfusion_unit_hct: float = 3.0  # hematocrit points one unit adds


LATENT_NAMES = (
    "hct_red_cell", "plasma_log", "plasma_log_mean", "plasma_log_sd", "drive",
    "volume_mature_fl", "chc_mature_g_dl", "cell_volume_cv", "clearance_loss", "hb_loss_ratio",
    "lifespan_days", "dwell_fraction", "dwell_loss", "retic_days", "retic_volume_excess",
    "hemolysis_kappa", "spherocyte_fraction", "fragment_fraction", "new_fraction", "new_days",
    "donor_fraction", "donor_progress0", "donor_volume_fl", "donor_chc_g_dl", "own_hct", "units",
    "days_since_event", "storage_hours", "swelling",
)
"""Columns of `<split>_latents`, in order (also stored in the file's `latent_names` attr)."""


@dataclass
class Patients:
    """One block of patients: per-patient arrays `[B]` (the latents plus label and oracle)."""

    sex_male: np.ndarray  # [B] bool
    age_years: np.ndarray  # [B]
    condition: np.ndarray  # [B] int8, `Condition` codes
    is_test: np.ndarray  # [B] bool
    hct: np.ndarray  # [B] the label (%)
    oracle_hct: np.ndarray  # [B]
    hct_red_cell: np.ndarray
    plasma_log: np.ndarray
    plasma_log_mean: np.ndarray
    plasma_log_sd: np.ndarray
    drive: np.ndarray
    volume_mature_fl: np.ndarray
    chc_mature_g_dl: np.ndarray
    cell_volume_cv: np.ndarray
    clearance_loss: np.ndarray
    hb_loss_ratio: np.ndarray
    lifespan_days: np.ndarray
    dwell_fraction: np.ndarray
    dwell_loss: np.ndarray
    retic_days: np.ndarray
    retic_volume_excess: np.ndarray
    hemolysis_kappa: np.ndarray
    spherocyte_fraction: np.ndarray
    fragment_fraction: np.ndarray
    new_fraction: np.ndarray
    new_days: np.ndarray
    donor_fraction: np.ndarray
    donor_progress0: np.ndarray
    donor_volume_fl: np.ndarray
    donor_chc_g_dl: np.ndarray
    own_hct: np.ndarray
    units: np.ndarray
    days_since_event: np.ndarray
    storage_hours: np.ndarray
    swelling: np.ndarray  # volume factor from sample storage, applied at measurement

    def latent_matrix(self) -> np.ndarray:
        """`[B, len(LATENT_NAMES)]` float32, for the cohort file."""
        return np.stack([getattr(self, n) for n in LATENT_NAMES], axis=1).astype(np.float32)

    def take(self, index: np.ndarray) -> Patients:
        """The same patients, subset along axis 0."""
        return Patients(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def soft_ramp(x: np.ndarray, width: float) -> np.ndarray:
    """Smooth max(x, 0): the erythropoietin response has no hard threshold."""
    return width * np.logaddexp(0.0, x / width)


def draw_patients(rng: np.random.Generator, n: int, test_fraction: float,
                  phys: Physiology) -> Patients:
    """Draw `n` patients; the draw order is fixed, so the same stream gives the same patients.

    Columns of u: 0 sex, 1 condition, 2 split, 3-6 condition mechanisms, 7 sample age.
    Columns of z: 0 age, 1 hematocrit, 2 plasma, 3-8 cell parameters, 9-10 mechanisms,
    11 unused, 12 delay gain, 13 severity, 14-15 donor cells, 16 dehydration, 17 swelling.
    """
    u = rng.random((n, 8))  # uniforms
    z = rng.standard_normal((n, 18))  # normals
    male = u[:, 0] < 0.5
    age = np.clip(58.0 + 18.0 * z[:, 0], 18.0, 95.0)
    condition = np.searchsorted(np.cumsum(prevalence()), u[:, 1], side="right")
    condition = np.minimum(condition, len(Condition) - 1).astype(np.int8)
    is_test = u[:, 2] < test_fraction

    # Red-cell hematocrit from condition, sex and age (older men run a little lower).
    base = np.where(male, spec_column("hct_male")[condition], spec_column("hct_female")[condition])
    healthy = np.where(male, spec_column("hct_male")[0], spec_column("hct_female")[0])
    h = base + spec_column("hct_sd")[condition] * z[:, 1]
    h -= np.where(male, 0.05 * np.maximum(age - 50.0, 0.0), 0.0)

    out = _defaults(n, phys, condition, age, u, z)
    _blood_loss(out, condition == Condition.BLOOD_LOSS, healthy, u, z, phys)
    _hemolysis(out, condition == Condition.HEMOLYSIS, healthy, u, z, phys)
    _transfusion(out, condition == Condition.TRANSFUSION, u, z, phys)
    h = np.clip(_mechanism_hct(out, condition, h), 12.0, 68.0)
    out["hct_red_cell"] = h
    _feedback(out, condition, healthy, h, z, phys)

    mean = spec_column("plasma_log_mean")[condition]
    sd = spec_column("plasma_log_sd")[condition]
    plasma = mean + sd * z[:, 2]
    hct = np.clip(h * np.exp(plasma), 10.0, 75.0)
    oracle = h * np.exp(mean + 0.5 * sd**2)
    out.update(plasma_log=plasma, plasma_log_mean=mean, plasma_log_sd=sd)
    return Patients(sex_male=male, age_years=age, condition=condition, is_test=is_test, hct=hct,
                    oracle_hct=oracle, **out)


def _mechanism_hct(out: dict[str, np.ndarray], condition: np.ndarray,
                   h: np.ndarray) -> np.ndarray:
    own = np.isin(condition, (Condition.BLOOD_LOSS, Condition.HEMOLYSIS, Condition.TRANSFUSION))
    return np.where(own, out["hct_red_cell"], h)


def _defaults(n: int, phys: Physiology, condition: np.ndarray, age: np.ndarray, u: np.ndarray,
              z: np.ndarray) -> dict[str, np.ndarray]:
    """Per-patient cell parameters before any condition-specific mechanism."""
    hours = phys.storage_max_hours * u[:, 7]
    zero = np.zeros(n)
    volume = (phys.volume_mature_fl * spec_column("volume_scale")[condition]
              * np.exp(phys.volume_patient_cv * z[:, 3]) * (1.0 + 0.0008 * (age - 58.0)))
    chc = phys.chc_mature_g_dl * spec_column("chc_scale")[condition] * np.exp(
        phys.chc_patient_cv * z[:, 4])
    cv = (phys.cell_volume_cv * spec_column("volume_cv_scale")[condition]
          * np.exp(phys.cell_volume_cv_patient_sd * z[:, 5]))
    return {
        "hct_red_cell": zero.copy(), "drive": zero.copy(), "volume_mature_fl": volume,
        "chc_mature_g_dl": chc, "cell_volume_cv": cv,
        "clearance_loss": phys.clearance_loss * np.exp(phys.clearance_patient_sd * z[:, 6]),
        "hb_loss_ratio": np.clip(phys.hb_loss_ratio + phys.hb_loss_ratio_sd * z[:, 7], 0.1, 0.6),
        "lifespan_days": phys.lifespan_days * np.exp(phys.lifespan_patient_sd * z[:, 8]),
        "dwell_fraction": zero.copy(),
        "dwell_loss": phys.dwell_loss * np.exp(phys.dwell_loss_patient_sd * z[:, 16]),
        "retic_days": np.full(n, phys.retic_days),
        "retic_volume_excess": np.full(n, phys.retic_volume_excess),
        "hemolysis_kappa": zero.copy(), "spherocyte_fraction": zero.copy(),
        "fragment_fraction": spec_column("fragment_fraction")[condition],
        "new_fraction": zero.copy(), "new_days": zero.copy(), "donor_fraction": zero.copy(),
        "donor_progress0": zero.copy(), "donor_volume_fl": zero.copy(),
        "donor_chc_g_dl": zero.copy(), "own_hct": zero.copy(), "units": zero.copy(),
        "days_since_event": zero.copy(), "storage_hours": hours,
        "swelling": 1.0 + phys.swelling_per_hour * hours * np.exp(0.3 * z[:, 17]),
    }


def _blood_loss(out: dict[str, np.ndarray], sel: np.ndarray, healthy: np.ndarray, u: np.ndarray,
                z: np.ndarray, phys: Physiology) -> None:
    """A bleed `days` ago removed a fraction of the cells; the marrow regenerates after ~3 days."""
    pre = healthy + 2.8 * z[:, 9]
    lost = 0.06 + 0.22 * u[:, 3]
    days = 1.0 + 20.0 * u[:, 4]
    boost = 3.0 * lost * np.exp(0.3 * z[:, 10])  # extra production, x normal
    regen = np.maximum(days - 3.0, 0.0)
    hct = pre * (1.0 - lost) + pre * boost * regen / phys.lifespan_days
    new = (1.0 + boost) * regen / phys.lifespan_days * pre / hct
    out["hct_red_cell"] = np.where(sel, hct, out["hct_red_cell"])
    out["new_fraction"] = np.where(sel, np.clip(new, 0.0, 0.6), out["new_fraction"])
    out["new_days"] = np.where(sel, regen, out["new_days"])
    out["own_hct"] = np.where(sel, pre, out["own_hct"])
    out["days_since_event"] = np.where(sel, days, out["days_since_event"])


def _hemolysis(out: dict[str, np.ndarray], sel: np.ndarray, healthy: np.ndarray, u: np.ndarray,
               z: np.ndarray, phys: Physiology) -> None:
    """Cells are destroyed at random (rate κ/lifespan); the marrow makes up part of the loss."""
    hct = np.clip(34.5 + 3.2 * z[:, 9], 20.0, 44.0)
    drive = soft_ramp((phys.drive_reference_hct - hct) / phys.drive_reference_hct,
                      phys.drive_softness)
    marrow = 1.0 + np.minimum(10.0 * drive * np.exp(0.3 * z[:, 10]), 4.0)  # production, x normal
    survival = np.clip(hct / (healthy * marrow), 0.06, 0.98)  # mean lifespan / normal lifespan
    kappa = _kappa_for_survival(survival)
    sphero = np.where(u[:, 3] < 0.5, 0.3 * u[:, 4], 0.0)
    out["hct_red_cell"] = np.where(sel, hct, out["hct_red_cell"])
    out["hemolysis_kappa"] = np.where(sel, kappa, 0.0)
    out["spherocyte_fraction"] = np.where(sel, sphero, 0.0)


def _kappa_for_survival(ratio: np.ndarray) -> np.ndarray:
    """Solve (1 - e^-κ)/κ = ratio for κ > 0 (mean survival under random destruction)."""
    lo, hi = np.full_like(ratio, 1e-6), np.full_like(ratio, 60.0)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        too_long = -np.expm1(-mid) / mid > ratio
        lo, hi = np.where(too_long, mid, lo), np.where(too_long, hi, mid)
    return 0.5 * (lo + hi)


def _transfusion(out: dict[str, np.ndarray], sel: np.ndarray, u: np.ndarray, z: np.ndarray,
                 phys: Physiology) -> None:
    """Own anemic cells plus 1-3 donor units given `days` ago (donor cells age and are cleared)."""
    own = np.clip(28.5 + 2.5 * z[:, 9], 20.0, 34.0)
    units = 1.0 + (u[:, 3] > 0.45) + (u[:, 3] > 0.85)
    days = 1.0 + 27.0 * u[:, 4]
    progress0 = days / phys.lifespan_days
    donor_hct = (units * phys.transfusion_unit_hct * np.exp(0.15 * z[:, 10])
                 * phys.donor_survival_24h * (1.0 - progress0))
    donor_volume = phys.volume_mature_fl * np.exp(0.04 * z[:, 14])
    donor_chc = phys.chc_mature_g_dl * np.exp(0.02 * z[:, 15])
    # Own cells come from an underlying anemia: microcytic, macrocytic or normocytic.
    micro = u[:, 5] < 0.45
    macro = u[:, 5] > 0.85
    scale = np.where(micro, 0.78 + 0.08 * u[:, 6], np.where(macro, 1.12 + 0.08 * u[:, 6],
                                                            0.97 + 0.06 * u[:, 6]))
    out["volume_mature_fl"] = np.where(sel, out["volume_mature_fl"] * scale,
                                       out["volume_mature_fl"])
    out["chc_mature_g_dl"] = np.where(sel & micro, out["chc_mature_g_dl"] * 0.94,
                                      out["chc_mature_g_dl"])
    hct = own + donor_hct
    # Number fraction: cells per volume of blood ~ hematocrit / mean cell volume.
    own_cells = own / (out["volume_mature_fl"] * (1.0 - 0.5 * out["clearance_loss"]))
    donor_cells = donor_hct / (donor_volume * (1.0 - 0.5 * phys.clearance_loss))
    out["hct_red_cell"] = np.where(sel, hct, out["hct_red_cell"])
    out["own_hct"] = np.where(sel, own, out["own_hct"])
    out["units"] = np.where(sel, units, 0.0)
    out["days_since_event"] = np.where(sel, days, out["days_since_event"])
    out["donor_fraction"] = np.where(sel, donor_cells / (own_cells + donor_cells), 0.0)
    out["donor_progress0"] = np.where(sel, progress0, 0.0)
    out["donor_volume_fl"] = np.where(sel, donor_volume, 0.0)
    out["donor_chc_g_dl"] = np.where(sel, donor_chc, 0.0)


def _feedback(out: dict[str, np.ndarray], condition: np.ndarray, healthy: np.ndarray,
              h: np.ndarray, z: np.ndarray, phys: Physiology) -> None:
    """Anemia drive: delayed clearance of old cells, longer-lived and larger stress reticulocytes,
    and newborn cells that are more abnormal the deeper the anemia."""
    # The cells remember the red-cell mass they were made under: before the bleed or transfusion.
    felt = np.where(out["own_hct"] > 0, out["own_hct"], h)
    excess = (phys.drive_reference_hct - felt) / phys.drive_reference_hct
    drive = soft_ramp(excess, phys.drive_softness)
    surplus = soft_ramp(-excess, phys.drive_softness)
    gain = phys.delay_gain * np.exp(phys.delay_gain_patient_sd * z[:, 12] - 0.5
                                    * phys.delay_gain_patient_sd**2)
    hemolytic = condition == Condition.HEMOLYSIS
    delay = np.where(hemolytic, 0.0, gain * drive)  # hemolysis: cells die young instead
    out["dwell_fraction"] = delay / (1.0 + delay)  # share of the steady cells that are waiting
    factor = np.maximum(1.0 - phys.acceleration_gain * surplus, 0.5)  # surplus: earlier clearance
    out["clearance_loss"] = out["clearance_loss"] * factor
    out["lifespan_days"] = out["lifespan_days"] * factor
    out["drive"] = drive
    regen = (condition != Condition.MACROCYTIC) & (condition != Condition.TRANSFUSION)
    current = soft_ramp((phys.drive_reference_hct - h) / phys.drive_reference_hct,
                        phys.drive_softness)
    out["retic_days"] = phys.retic_days + np.where(regen, phys.stress_retic_days * current, 0.0)
    # Autonomous (or hypoxia-driven) production in erythrocytosis: a larger young-cell pool.
    erythrocytosis = condition == Condition.ERYTHROCYTOSIS
    out["retic_days"] += np.where(erythrocytosis, phys.erythrocytosis_retic_days, 0.0)
    out["retic_volume_excess"] = phys.retic_volume_excess + phys.stress_volume_excess * current
    # Deeper nutritional / inflammatory anemia, more abnormal newborn cells (condition table).
    severity = np.clip((healthy - h) / 14.0 + 0.15 * z[:, 13], 0.0, 1.3)
    for key, column in (("volume_mature_fl", "severity_volume"),
                        ("chc_mature_g_dl", "severity_chc"), ("cell_volume_cv", "severity_cv")):
        out[key] = out[key] * (1.0 + spec_column(column)[condition] * severity)
