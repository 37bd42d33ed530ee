"""The first synthetic patient as the JSON body of `POST /v1/predictions`: a sample input a
newcomer can send as it is (`curl --data @examples/sample.json`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ingestion.flowrbc import FlowRBCFile
from ingestion.synthetic.export import _short, first_patients


def json_body(cohort: FlowRBCFile) -> dict[str, object]:
    """Ids, lab values and per-cell arrays of the cohort's lowest patient id."""
    ((split, i),) = first_patients(cohort, 1)
    cells = np.asarray(cohort.data(split)[i])  # [S, 2]

    def extra(name: str) -> object:
        return cohort.extra(split, name)[i]

    return {
        "patient_id": extra("patient_id").decode(), "sample_id": f"{split}-{i}",
        "sex": extra("sex").decode(), "age_years": float(_short(extra("age_years"))),
        "rbc_count_e12_per_l": float(_short(extra("rbc_count_e12_per_l"))),
        "measured_hematocrit_pct": float(_short(cohort.labels(split)[i])),
        "volume_fl": [float(_short(v)) for v in cells[:, 0]],
        "hemoglobin_pg": [float(_short(v)) for v in cells[:, 1]],
    }


def export_json_body(cohort_path: str | Path, out_path: str | Path) -> dict[str, object]:
    """Write the first patient's request body to `out_path`; returns it."""
    with FlowRBCFile.open(cohort_path) as cohort:
        body = json_body(cohort)
    Path(out_path).write_text(json.dumps(body, separators=(",", ":")) + "\n")
    return body
