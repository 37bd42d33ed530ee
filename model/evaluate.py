"""`hct evaluate`: the test-split report a clinician and an ML engineer both read.

The network (any architecture) against every baseline and the oracle floor (MSE / MAE / R² with
paired bootstrap 95 % CIs), % MSE reduction vs `cbc_indices`, the share of the cbc→oracle gap it
closes, error by
condition, cell-count stability, and the agreement plots (predicted vs measured, Bland–Altman).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from model.baseline_report import DESCRIPTIONS, ordered
from model.baselines import BaselineSet
from model.data import SetData, load_split
from model.factory import LABELS, architecture_of
from model.plots import bland_altman, predicted_vs_measured
from model.progress import progress_bar
from model.scoring import METRICS, REDUCTION, bootstrap_scores
from model.set_regressor import SetRegressor
from model.stability import cell_count_stability

MODEL = "deepsets_pp"  # the report's key for the network when it names none
REFERENCE = "cbc_indices"


def _condition_names() -> list[str]:
    from ingestion.synthetic.conditions import condition_names

    return condition_names()


def evaluate(model: SetRegressor, data_path: str | Path, baselines: BaselineSet,
             out_dir: str | Path, *, eval_set_size: int | None = None, n_boot: int = 1000,
             seed: int = 0, limit: int | None = None,
             name: str | None = None) -> dict[str, Any]:
    """Score on the test split, write `report.json`, `report.md` and PNG plots to `out_dir`.

    `name` is the network's key in the report (its architecture name when None).
    """
    from model.train import predict

    net = name or architecture_of(model)["name"]
    label = LABELS.get(net, net)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    test = load_split(data_path, "test", limit)
    rbc = _rbc(data_path, len(test))
    with progress_bar(len(test), "evaluating", unit="patients") as bar:
        preds = {net: predict(model, test.cells, set_size=eval_set_size,
                              progress=bar.advance)}
    preds |= baselines.predict(test.cells, rbc=rbc)
    if test.oracle is not None:
        preds["oracle_hct"] = test.oracle.astype(np.float64)
    scores = bootstrap_scores(test.labels, preds, reference=REFERENCE, n_boot=n_boot, seed=seed)
    report: dict[str, Any] = {
        "model": net, "data": str(data_path), "n_test": len(test), "n_boot": n_boot, "seed": seed,
        "eval_set_size": eval_set_size or int(test.cells.shape[1]),
        "scores": {k: {m: e.as_dict() for m, e in v.items()} for k, v in scores.items()},
    }
    if "oracle_hct" in scores:
        cbc, ds, floor = (scores[k]["mse"].value for k in (REFERENCE, net, "oracle_hct"))
        report["gap_closed"] = (cbc - ds) / (cbc - floor) if cbc > floor else None
        report["excess_over_floor"] = ds - floor
    report["by_condition"] = _by_condition(test, preds, net)
    report["stability"] = cell_count_stability(model, test.cells, seed=seed)
    measured, predicted = test.labels.astype(np.float64), preds[net]
    predicted_vs_measured(measured, predicted, out / "predicted_vs_measured.png",
                          f"{label} on the synthetic test split")
    report["bland_altman"] = bland_altman(measured, predicted, out / "bland_altman.png",
                                          f"{label} vs measured")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(to_markdown(report))
    return report


def _rbc(data_path: str | Path, n: int) -> np.ndarray | None:
    from ingestion.flowrbc import FlowRBCFile

    with FlowRBCFile.open(data_path) as f:
        rbc = f.extra("test", "rbc_count_e12_per_l")
    return None if rbc is None else rbc[:n].astype(np.float64)


def _by_condition(test: SetData, preds: dict[str, np.ndarray],
                  net: str = MODEL) -> list[dict[str, Any]]:
    if test.condition is None:
        return []
    names = _condition_names()
    rows = []
    for code in np.unique(test.condition):
        sel = test.condition == code
        y = test.labels[sel].astype(np.float64)
        row: dict[str, Any] = {"condition": names[int(code)], "n": int(sel.sum()),
                               "label_mean": float(y.mean())}
        for name in (net, REFERENCE, "moments", "oracle_hct"):
            if name in preds:
                row[f"{name}_mse"] = float(np.mean((preds[name][sel] - y) ** 2))
        row[f"{net}_bias"] = float(np.mean(preds[net][sel] - y))
        rows.append(row)
    return rows


def _fmt(e: dict[str, float], digits: int) -> str:
    return f"{e['value']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables (what the README and the model card quote)."""
    scores = report["scores"]
    net = report.get("model", MODEL)
    short = {"deepsets": "DS", "deepsets_pp": "DS++", "set_transformer": "ST",
             "set_transformer_pp": "ST++"}.get(net, net)
    lines = [
        "**Synthetic data.** This evaluation uses the project's synthetic cohort; it says "
        "nothing about accuracy on patients. Not for clinical use.", "",
        f"Test split of `{Path(report['data']).name}`: {report['n_test']:,} patients, "
        f"{report['eval_set_size']} cells per set; 95 % CIs from {report['n_boot']:,} paired "
        "bootstrap resamples.", "",
        f"| model | MSE | MAE | R² | MSE reduction vs {REFERENCE} (%) |", "|---|---|---|---|---|"]
    for name in [net, *[k for k in ordered(scores) if k != net]]:
        s = scores[name]
        cells = [_fmt(s[m], 3 if m == "r2" else 2) for m in METRICS]
        lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {_fmt(s[REDUCTION], 1)} |")
    lines += ["", *[f"- `{k}`: {DESCRIPTIONS[k]}" for k in ordered(scores) if k in DESCRIPTIONS]]
    if report.get("gap_closed") is not None:
        lines += ["", f"{short} closes **{100 * report['gap_closed']:.1f} %** of the gap between "
                  f"`{REFERENCE}` and the oracle floor; it stands "
                  f"{report['excess_over_floor']:.2f} MSE above the floor."]
    ba = report["bland_altman"]
    lines += ["", f"Bland–Altman ({short} − measured): bias {ba['bias']:+.2f} %, 95 % limits of "
              f"agreement [{ba['loa_low']:.2f}, {ba['loa_high']:.2f}] %."]
    if report["by_condition"]:
        lines += ["", f"| condition | n | mean Hct | {short} MSE | cbc_indices MSE | moments MSE"
                  f" | oracle MSE | {short} bias |", "|---|---|---|---|---|---|---|---|"]
        for r in report["by_condition"]:
            lines.append(f"| {r['condition']} | {r['n']} | {r['label_mean']:.1f} | "
                         f"{r[f'{net}_mse']:.2f} | {r.get('cbc_indices_mse', float('nan')):.2f}"
                         f" | {r.get('moments_mse', float('nan')):.2f} | "
                         f"{r.get('oracle_hct_mse', float('nan')):.2f} | "
                         f"{r[f'{net}_bias']:+.2f} |")
    st = report["stability"]
    lines += ["", f"Cell-count stability ({st['patients']} test patients, {st['repeats']} random "
              "subsets each): mean prediction by subset size vs the 1,000-cell prediction.", "",
              "| cells | mean |Δ| vs full (%) | resampling SD (%) |", "|---|---|---|"]
    for row in st["rows"]:
        lines.append(f"| {row['cells']} | {row['mean_abs_shift']:.3f} | "
                     f"{row['resampling_sd']:.3f} |")
    return "\n".join(lines) + "\n"
