"""The baseline evaluation table: fit on the train split, score on the test split, write
`baselines.json` (the fitted coefficients the service loads), `report.json` and `report.md`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ingestion.flowrbc import FlowRBCFile
from model.baselines import BASELINE_NAMES, BASELINES, FEATURE_CHUNK, BaselineSet, set_features
from model.scoring import METRICS, REDUCTION, Estimate, bootstrap_scores

REFERENCE = "cbc_indices"
ROW_ORDER = (*BASELINE_NAMES, "oracle_hct")
DESCRIPTIONS = {b.name: b.description for b in BASELINES} | {
    "oracle_hct": "E[Hct | all latents but plasma volume]: the floor for any cell-only model"}


@dataclass
class BaselineReport:
    """Test-split scores of every baseline, with the facts needed to reproduce them."""

    data: str
    n_train: int
    n_test: int
    n_boot: int
    seed: int
    cohort: dict[str, Any]
    alphas: dict[str, float]
    scores: dict[str, dict[str, Estimate]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data, "n_train": self.n_train, "n_test": self.n_test,
            "n_boot": self.n_boot, "seed": self.seed, "reference": REFERENCE,
            "cohort": self.cohort, "alphas": self.alphas,
            "scores": {k: {m: e.as_dict() for m, e in v.items()} for k, v in self.scores.items()},
        }

    def to_markdown(self) -> str:
        lines = [
            f"Test split of `{Path(self.data).name}`: {self.n_test:,} patients "
            f"(fit on {self.n_train:,}); 95 % CIs from {self.n_boot:,} paired bootstrap "
            f"resamples (seed {self.seed}).",
            "",
            f"| baseline | MSE | MAE | R² | MSE reduction vs {REFERENCE} (%) |",
            "|---|---|---|---|---|",
        ]
        for name in ordered(self.scores):
            s = self.scores[name]
            cells = [_fmt(s[m], 2 if m != "r2" else 3) for m in METRICS]
            lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {_fmt(s[REDUCTION], 1)} |")
        lines += ["", *[f"- `{k}`: {DESCRIPTIONS[k]}" for k in ordered(self.scores)
                        if k in DESCRIPTIONS]]
        return "\n".join(lines) + "\n"


def ordered(names: Any) -> list[str]:
    """Known rows in table order, then any others alphabetically."""
    names = list(names)
    return [k for k in ROW_ORDER if k in names] + sorted(k for k in names if k not in ROW_ORDER)


def _fmt(e: Estimate, digits: int) -> str:
    return f"{e.value:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"


def evaluate_baselines(data: str | Path, out_dir: str | Path | None = None, n_boot: int = 1000,
                       seed: int = 0, chunk: int = FEATURE_CHUNK) -> BaselineReport:
    """Fit the baselines on `train`, score them (and `oracle_hct` if present) on `test`."""
    with FlowRBCFile.open(data) as f:
        for split in ("train", "test"):
            if split not in f.splits or f.labels(split) is None:
                raise ValueError(f"{data}: needs {split}_data and {split}_labels")
        baselines = BaselineSet.fit_features(set_features(f.data("train"), chunk=chunk),
                                             f.labels("train"))
        y = f.labels("test")
        rbc = f.extra("test", "rbc_count_e12_per_l")
        preds = baselines.predict_features(set_features(f.data("test"), chunk=chunk),
                                           None if rbc is None else rbc.astype(np.float64))
        oracle = f.extra("test", "oracle_hct")
        if oracle is not None:
            preds["oracle_hct"] = oracle.astype(np.float64)
        cohort = {k: _plain(v) for k, v in f.attrs.items()
                  if k in ("synthetic", "generator", "generator_version", "seed", "n_patients",
                           "cells_per_set")}
    report = BaselineReport(
        data=str(data), n_train=baselines.n_train, n_test=int(y.shape[0]), n_boot=n_boot,
        seed=seed, cohort=cohort,
        alphas={"cbc_indices": baselines.cbc_indices.alpha, "moments": baselines.moments.alpha},
        scores=bootstrap_scores(y, preds, reference=REFERENCE, n_boot=n_boot, seed=seed),
    )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "baselines.json").write_text(baselines.to_json())
        (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2))
        (out / "report.md").write_text(report.to_markdown())
    return report


def _plain(value: object) -> object:
    """HDF5 attrs arrive as numpy scalars; JSON wants Python ones."""
    return value.item() if isinstance(value, np.generic) else value
