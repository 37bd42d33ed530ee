"""Per-sample summary of an input file for `hct ingest`: proof that a file reads, and the
indices a lab person checks first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ingestion.cells import CellSet
from ingestion.errors import SampleError
from ingestion.indices import red_cell_indices
from ingestion.sources import iter_source

COLUMNS = ("patient_id", "sample_id", "cells", "mcv_fl", "mch_pg", "mchc_g_dl", "rdw_cv_pct",
           "rdw_sd_fl", "hdw_g_dl", "measured_hct_pct")


@dataclass
class IngestSummary:
    """Rows for the samples shown, errors for samples that failed, and how many were seen."""

    rows: list[dict[str, object]] = field(default_factory=list)
    errors: list[SampleError] = field(default_factory=list)
    samples_seen: int = 0
    truncated: bool = False


def summary_row(cs: CellSet) -> dict[str, object]:
    """One table row: ids, cell count and the red-cell indices of a sample."""
    idx = red_cell_indices(cs)
    return {
        "patient_id": cs.patient_id,
        "sample_id": cs.sample_id,
        "cells": cs.n_cells,
        "mcv_fl": round(idx.mcv_fl, 1),
        "mch_pg": round(idx.mch_pg, 1),
        "mchc_g_dl": round(idx.mchc_g_dl, 1),
        "rdw_cv_pct": round(idx.rdw_cv_pct, 1),
        "rdw_sd_fl": round(idx.rdw_sd_fl, 1),
        "hdw_g_dl": round(idx.hdw_g_dl, 2),
        "measured_hct_pct": (None if cs.lab.measured_hematocrit_pct is None
                             else round(cs.lab.measured_hematocrit_pct, 2)),
    }


def summarise(path: Path, *, min_cells: int, limit: int) -> IngestSummary:
    """Read every sample of `path`; keep rows for the first `limit` (0 = all), all errors."""
    summary = IngestSummary()
    for item in iter_source(path, min_cells=min_cells):
        summary.samples_seen += 1
        if isinstance(item, SampleError):
            summary.errors.append(item)
        elif limit == 0 or len(summary.rows) < limit:
            summary.rows.append(summary_row(item))
        else:
            summary.truncated = True
    return summary


def write_table(summary: IngestSummary, out: TextIO) -> None:
    """Fixed-width text table (no colours: it is read in logs and pasted in tickets)."""
    cells = [[("" if r[c] is None else str(r[c])) for c in COLUMNS] for r in summary.rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(COLUMNS)]
    out.write("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)) + "\n")
    for row in cells:
        out.write("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) + "\n")
    shown = len(summary.rows)
    ok = summary.samples_seen - len(summary.errors)
    tail = " (use --limit 0 to show all)" if summary.truncated else ""
    out.write(f"{ok} samples read, {len(summary.errors)} errors, {shown} shown{tail}\n")


def write_json_lines(summary: IngestSummary, out: TextIO) -> None:
    """One JSON object per sample shown, then one per error."""
    for row in summary.rows:
        out.write(json.dumps(row) + "\n")
    for err in summary.errors:
        out.write(json.dumps({"error": err.message, "location": err.location,
                              "kind": err.kind, "sample_id": err.sample_id}) + "\n")
