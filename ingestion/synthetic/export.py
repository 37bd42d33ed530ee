"""Long-format export of a synthetic cohort's first patients, one row per cell, for demos of
the CSV / Parquet lab-export path (the shape a laboratory system would send).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ingestion.flowrbc import FlowRBCFile

LONG_COLUMNS = ("patient_id", "sample_id", "volume_fl", "hemoglobin_pg",
                "measured_hematocrit_pct", "rbc_count_e12_per_l", "sex", "age_years")


def first_patients(cohort: FlowRBCFile, n_patients: int) -> list[tuple[str, int]]:
    """`(split, row)` of the `n_patients` lowest patient ids, across both splits, in id order."""
    found: list[tuple[str, str, int]] = []
    for split in cohort.splits:
        ids = cohort.extra(split, "patient_id")
        if ids is None:
            raise ValueError(f"{split}_patient_id is missing: not a synthetic cohort file")
        found += [(pid.decode(), split, i) for i, pid in enumerate(ids)]
    found.sort()
    return [(split, i) for _, split, i in found[:n_patients]]


def long_rows(cohort: FlowRBCFile, n_patients: int) -> dict[str, list[object]]:
    """Columns of the long table (`LONG_COLUMNS`), one entry per cell."""
    columns: dict[str, list[object]] = {c: [] for c in LONG_COLUMNS}
    extras = {s: {n: cohort.extra(s, n) for n in ("patient_id", "rbc_count_e12_per_l", "sex",
                                                  "age_years")} for s in cohort.splits}
    labels = {s: cohort.labels(s) for s in cohort.splits}
    for split, i in first_patients(cohort, n_patients):
        cells = np.asarray(cohort.data(split)[i])  # [S, 2]
        n = cells.shape[0]
        lab = extras[split]
        per_patient = {
            "patient_id": lab["patient_id"][i].decode(),
            "sample_id": f"{split}-{i}",
            "measured_hematocrit_pct": _short(labels[split][i]),
            "rbc_count_e12_per_l": _short(lab["rbc_count_e12_per_l"][i]),
            "sex": lab["sex"][i].decode(),
            "age_years": _short(lab["age_years"][i]),
        }
        for name, value in per_patient.items():
            columns[name] += [value] * n
        columns["volume_fl"] += [_short(v) for v in cells[:, 0]]
        columns["hemoglobin_pg"] += [_short(v) for v in cells[:, 1]]
    return columns


def export_long(cohort_path: str | Path, out_path: str | Path, n_patients: int = 50) -> int:
    """Write the first `n_patients` as `.csv` or `.parquet` (by suffix); returns rows written."""
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"{out_path}: suffix must be .csv or .parquet")
    with FlowRBCFile.open(cohort_path) as cohort:
        columns = long_rows(cohort, n_patients)
    if suffix == ".csv":
        with out_path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(LONG_COLUMNS)
            writer.writerows(zip(*(columns[c] for c in LONG_COLUMNS), strict=True))
    else:
        _write_parquet(columns, out_path)
    return len(columns["patient_id"])


def _write_parquet(columns: dict[str, list[object]], out_path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # e.g. a pyarrow built for another numpy
        raise RuntimeError(f"Parquet export needs a working pyarrow ({exc}); use .csv") from None
    numeric = {"volume_fl", "hemoglobin_pg", "measured_hematocrit_pct", "rbc_count_e12_per_l",
               "age_years"}
    table = pa.table({c: pa.array([float(v) for v in columns[c]], pa.float32()) if c in numeric
                      else pa.array(columns[c], pa.string()) for c in LONG_COLUMNS})
    pq.write_table(table, out_path)


def _short(value: object) -> str:
    """Shortest text that reads back as the same float32 (no 87.12345123 noise in demos)."""
    return np.format_float_positional(np.float32(value), unique=True, trim="-")


def export_fcs(cohort_path: str | Path, out_dir: str | Path, n_patients: int = 5) -> list[Path]:
    """Write the first `n_patients` as one FCS 3.1 file each (`<sample_id>.fcs`, channels `V`
    volume fL and `CH` hemoglobin content pg, with the patient and sample ids), the shape an
    analyzer exports.
    """
    from ingestion.fcs.writer import write_fcs

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with FlowRBCFile.open(cohort_path) as cohort:
        for split, i in first_patients(cohort, n_patients):
            cells = np.asarray(cohort.data(split)[i], dtype=np.float32)  # [S, 2]
            patient = cohort.extra(split, "patient_id")[i].decode()
            sample = f"{split}-{i}"
            path = out / f"{sample}.fcs"
            write_fcs(path, {"V": cells[:, 0], "CH": cells[:, 1]},
                      long_names={"V": "RBC volume fL", "CH": "RBC hemoglobin content pg"},
                      patient_id=patient, sample_id=sample)
            written.append(path)
    return written
