"""Trust benchmark on the shipped bundle (ONNX via onnxruntime, shipped card) and synthetic
cohorts from seeds the model never saw (trained on 0, calibrated on 7001):

- interval coverage by measured band and sex: the shipped interval vs two constant-width
  intervals (same overall coverage; narrowest with every band >= 0.85), mean widths;
- sample-quality detection per fault family, and false warn / withheld rates in distribution;
- monitoring: drift-alarm delay (samples) after a volume-calibration shift, bias-alarm delay
  (paired samples) after an agreement bias, and false alarms over in-distribution streams.

Every monitoring figure comes from feeding `service.monitoring.Monitor` one record at a time,
as the service would. SYNTHETIC data; research use only.

    python -m bench.trust [--patients 5000] [--trials 20]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.results_io import write_results
from ingestion.indices import indices_table
from ingestion.synthetic.cohort import generate_patients
from ingestion.synthetic.faults import (
    FAULT_FAMILY,
    SAMPLE_FAULTS,
    faulty_samples,
    volume_calibration,
)
from model.conformal import band_of, coverage_table, interval
from model.quality import assess
from model.trust_calibration import onnx_predict
from service.monitoring import Monitor

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "models" / "default"
SEEDS = {"in_distribution": 9601, "faults": 9602, "shift": 9603}
BAND_FLOOR = 0.85


def cohort(seed: int, n: int) -> dict[str, np.ndarray]:
    blocks = list(generate_patients(seed, n, 1000))
    return {"cells": np.concatenate([b.cells for b in blocks]),  # [n, 1000, 2]
            "hct": np.concatenate([b.patients.hct for b in blocks]),
            "male": np.concatenate([b.patients.sex_male for b in blocks])}


def records(cells: np.ndarray, card: dict[str, Any], measured: np.ndarray | None = None,
            predicted: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Monitor records of samples `cells [N, S, 2]`, as the service stores them."""
    table = indices_table(cells, np.full(cells.shape[0], cells.shape[1]))
    verdicts = assess(list(cells), card["quality"])
    n = cells.shape[0]
    lower, upper = interval(predicted, card["conformal"]) if predicted is not None else (
        [None] * n, [None] * n)
    return [{"model_version": str(card["version"]), "mcv_fl": float(table["mcv_fl"][i]),
             "mchc_g_dl": float(table["mchc_g_dl"][i]),
             "rdw_cv_pct": float(table["rdw_cv_pct"][i]),
             "quality_score": verdicts[i]["score"], "quality_status": verdicts[i]["status"],
             "hematocrit_pct": None if predicted is None else float(predicted[i]),
             "lower_pct": None if predicted is None else float(lower[i]),
             "upper_pct": None if predicted is None else float(upper[i]),
             "measured_hematocrit_pct": None if measured is None else float(measured[i])}
            for i in range(n)]


# ---- intervals ----

def constant_radius(measured: np.ndarray, predicted: np.ndarray, target: float) -> float:
    """Smallest r whose interval p ± r covers at least `target` of the patients."""
    err = np.sort(np.abs(measured - predicted))
    return float(err[min(int(np.ceil(target * err.size)) - 1, err.size - 1)])


def band_floor_radius(measured: np.ndarray, predicted: np.ndarray, floor: float) -> float:
    """Smallest constant r with coverage >= `floor` in every measured band."""
    band = band_of(measured)
    return max(constant_radius(measured[band == b], predicted[band == b], floor)
               for b in np.unique(band))


def coverage_report(measured: np.ndarray, predicted: np.ndarray, male: np.ndarray,
                    conformal: dict[str, Any]) -> dict[str, Any]:
    lower, upper = interval(predicted, conformal)
    shipped = coverage_table(measured, lower, upper, male)
    r_same = constant_radius(measured, predicted, shipped["coverage"])
    r_floor = band_floor_radius(measured, predicted, BAND_FLOOR)
    rows = {"shipped (Mondrian by measured band)": shipped}
    for name, r in ((f"constant ±{r_same:.2f} (same overall coverage)", r_same),
                    (f"constant ±{r_floor:.2f} (every band >= {BAND_FLOOR})", r_floor)):
        rows[name] = {**coverage_table(measured, predicted - r, predicted + r, male), "radius": r}
    return {"n": int(measured.size), "mse": float(np.mean((predicted - measured) ** 2)),
            "bias": float(np.mean(predicted - measured)), "intervals": rows}


# ---- quality ----

def quality_report(good_cells: np.ndarray, fault_cells: np.ndarray,
                   quality: dict[str, Any], seed: int) -> dict[str, Any]:
    good = assess(list(good_cells), quality)
    status = np.array([v["status"] for v in good])
    out: dict[str, Any] = {"in_distribution": {"n": int(status.size),
                                               "warn": float(np.mean(status == "warn")),
                                               "withheld": float(np.mean(status == "withheld"))},
                           "faults": {}}
    for fault in SAMPLE_FAULTS:
        verdicts = assess(faulty_samples(fault_cells, fault, seed), quality)
        s = np.array([v["status"] for v in verdicts])
        out["faults"][fault] = {"family": FAULT_FAMILY[fault], "n": int(s.size),
                                "caught": float(np.mean(s != "ok")),
                                "withheld": float(np.mean(s == "withheld"))}
    return out


# ---- monitoring ----

def first_alarm(monitor: Monitor, rows: list[dict[str, Any]], kind: str) -> int | None:
    """Feed `rows` one at a time; how many were fed when the `kind` alarm first came up."""
    for k, row in enumerate(rows, start=1):
        monitor.observe(row)
        if monitor.snapshot()["models"][0][kind]["alarm"]:
            return k
    return None


def alarm_delays(card: dict[str, Any], before: list[dict[str, Any]],
                 after: list[dict[str, Any]], kind: str, trials: int, lead_in: int,
                 rng: np.random.Generator) -> dict[str, Any]:
    """Samples after the change until the `kind` alarm, over `trials` random orderings, with
    `lead_in` in-distribution samples before the change (0: a fresh monitor)."""
    delays, false_before = [], []
    for _ in range(trials):
        monitor = Monitor.from_card(card)
        if lead_in:
            lead = [before[i] for i in rng.choice(len(before), lead_in, replace=False)]
            early = first_alarm(monitor, lead, kind)
            if early is not None:  # a false alarm: finish the lead-in, then count the delay
                false_before.append(early)
                for row in lead[early:]:
                    monitor.observe(row)
        changed = [after[i] for i in rng.permutation(len(after))]
        delays.append(first_alarm(monitor, changed, kind))
    found = [d for d in delays if d is not None]
    return {"trials": trials, "lead_in": lead_in, "missed": len(delays) - len(found),
            "alarms_during_lead_in": len(false_before), "lead_in_alarm_at": false_before,
            "median": float(np.median(found)) if found else None,
            "p90": float(np.quantile(found, 0.9)) if found else None,
            "max": max(found) if found else None, "max_samples": len(after)}


def false_alarms(card: dict[str, Any], rows: list[dict[str, Any]], orderings: int,
                 rng: np.random.Generator) -> dict[str, Any]:
    """Alarms over the in-distribution stream as given and in random re-orderings of it."""
    out = {"n": len(rows), "orderings": orderings, "drift": 0, "agreement": 0,
           "largest_drift_ratio": 0.0, "largest_bias_ratio": 0.0}
    for k in range(orderings):
        order = np.arange(len(rows)) if k == 0 else rng.permutation(len(rows))
        monitor = Monitor.from_card(card)
        drift = bias = False
        for i in order:
            monitor.observe(rows[i])
            model = monitor.snapshot()["models"][0]
            d, a = model["drift"], model["agreement"]
            known = [v for v in d["statistic"].values() if v is not None]
            if known:
                out["largest_drift_ratio"] = max(out["largest_drift_ratio"],
                                                 max(known) / d["threshold"])
            if a["bias_statistic"] is not None:
                out["largest_bias_ratio"] = max(out["largest_bias_ratio"],
                                                abs(a["bias_statistic"]) / a["threshold"])
            drift |= d["alarm"]
            bias |= a["alarm"]
        out["drift"] += int(drift)
        out["agreement"] += int(bias)
    return out


def run(patients: int, fault_patients: int, shift_patients: int, trials: int,
        orderings: int, threads: int) -> dict[str, Any]:
    card = json.loads((BUNDLE / "card.json").read_text())
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    good = cohort(SEEDS["in_distribution"], patients)
    predicted = onnx_predict(BUNDLE / "model.onnx", good["cells"], threads=threads)
    report: dict[str, Any] = {
        "synthetic": True, "model_version": card["version"], "seeds": SEEDS,
        "coverage": coverage_report(good["hct"], predicted, good["male"], card["conformal"])}

    faults = cohort(SEEDS["faults"], fault_patients)
    report["quality"] = quality_report(good["cells"], faults["cells"], card["quality"],
                                       SEEDS["faults"])

    rows = records(good["cells"], card, good["hct"], predicted)
    shift = cohort(SEEDS["shift"], shift_patients)
    monitoring: dict[str, Any] = {"thresholds": {k: card["monitoring"][k]
                                                 for k in ("drift", "agreement")},
                                  "false_alarms": false_alarms(card, rows, orderings, rng),
                                  "drift_delay": {}, "bias_delay": {}}
    for factor in (1.05, 1.03, 1.02):
        cells = np.stack([volume_calibration(c, rng, factor) for c in shift["cells"]])
        shifted = records(cells, card)
        monitoring["drift_delay"][f"volume x{factor:g}"] = {
            "after 1000 in-distribution": alarm_delays(card, rows, shifted, "drift", trials,
                                                       1000, rng),
            "fresh monitor": alarm_delays(card, rows, shifted, "drift", trials, 0, rng)}
    biases = {"+2 points": lambda m: m - 2.0, "-2 points": lambda m: m + 2.0,
              "+2 % relative": lambda m: m / 1.02}
    for name, change in biases.items():
        half = len(rows) // 2  # lead-in from one half, the biased samples from the other
        biased = [{**r, "measured_hematocrit_pct": change(r["measured_hematocrit_pct"])}
                  for r in rows[half:]]
        monitoring["bias_delay"][name] = {
            "after 1000 in-distribution": alarm_delays(card, rows[:half], biased, "agreement",
                                                       trials, 1000, rng),
            "fresh monitor": alarm_delays(card, rows[:half], biased, "agreement", trials, 0,
                                          rng)}
    report["monitoring"] = monitoring
    report["seconds"] = time.perf_counter() - started
    return report


def markdown(report: dict[str, Any]) -> str:
    cov = report["coverage"]
    band_names = list(next(iter(cov["intervals"].values()))["bands"])
    lines = ["# Trust benchmark (SYNTHETIC data; research use only, not for clinical use)", "",
             f"Model {report['model_version']}; unseen seeds {report['seeds']}. "
             f"`python -m bench.trust`.", "",
             f"## Interval coverage ({cov['n']} patients, MSE {cov['mse']:.2f}, "
             f"bias {cov['bias']:+.2f})", "",
             "| interval | overall | " + " | ".join(band_names) + " | F | M | mean width |",
             "|---" * (len(band_names) + 5) + "|"]
    for name, t in cov["intervals"].items():
        bands = " | ".join(f"{t['bands'][b]['coverage']:.3f}" for b in band_names)
        lines.append(f"| {name} | {t['coverage']:.3f} | {bands} | {t['sex']['F']['coverage']:.3f}"
                     f" | {t['sex']['M']['coverage']:.3f} | {t['mean_width']:.2f} |")
    q = report["quality"]
    lines += ["", "## Sample quality", "",
              f"In distribution ({q['in_distribution']['n']} samples): "
              f"{q['in_distribution']['warn']:.2%} warn, "
              f"{q['in_distribution']['withheld']:.2%} withheld.", "",
              "| fault | family | n | caught (warn or withheld) | withheld |",
              "|---|---|---|---|---|"]
    for name, f in q["faults"].items():
        lines.append(f"| {name} | {f['family']} | {f['n']} | {f['caught']:.3f} | "
                     f"{f['withheld']:.3f} |")
    m = report["monitoring"]
    fa, th = m["false_alarms"], m["thresholds"]
    lines += ["", "## Monitoring", "",
              f"Thresholds (card): drift {th['drift']['threshold']:.3f} over a "
              f"{th['drift']['window']}-sample window, bias |t| {th['agreement']['threshold']:.3f}"
              f" over {th['agreement']['window']} paired samples; each set for a false-alarm "
              f"probability of {th['drift']['false_alarm']:.0%} per {th['drift']['horizon']} "
              "samples.", "",
              f"False alarms over {fa['n']} in-distribution samples (the stream as drawn and "
              f"{fa['orderings'] - 1} re-orderings, every sample checked): drift "
              f"{fa['drift']}/{fa['orderings']}, bias {fa['agreement']}/{fa['orderings']}; "
              f"largest statistic / threshold: drift {fa['largest_drift_ratio']:.2f}, bias "
              f"{fa['largest_bias_ratio']:.2f}.", "",
              "| change | start | trials | false alarms in lead-in | missed | median | p90 | "
              "max (samples to alarm) |",
              "|---|---|---|---|---|---|---|---|"]
    for group in ("drift_delay", "bias_delay"):
        for change, starts in m[group].items():
            for start, d in starts.items():
                lead = d["alarms_during_lead_in"] if d["lead_in"] else "-"
                lines.append(f"| {change} | {start} | {d['trials']} | {lead} | {d['missed']} | "
                             f"{_n(d['median'])} | {_n(d['p90'])} | {_n(d['max'])} |")
    lines += ["", "Bias is predicted minus measured hematocrit: '+2 points' means the measured "
              "value reads 2 percentage points low; '+2 % relative' means it reads 2 % low "
              "(about 0.8 points).", ""]
    return "\n".join(lines)


def _n(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--fault-patients", type=int, default=1000)
    parser.add_argument("--shift-patients", type=int, default=2000)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--orderings", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    report = run(args.patients, args.fault_patients, args.shift_patients, args.trials,
                 args.orderings, args.threads)
    text = markdown(report)
    print(text)
    write_results(args.out, "trust", report, text)


if __name__ == "__main__":
    main()
