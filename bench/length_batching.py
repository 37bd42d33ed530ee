"""Length-aware model calls: a batch of samples of 200-1,000 cells padded to the longest
against the same batch called in groups of similar length (`Predictor.run_model`).

CPU time of the calling thread (onnxruntime on one intra-op thread runs there), interleaved
rounds, medians: robust to the other sessions sharing the machine.

    python -m bench.length_batching [--rounds 6] [--batch 32] [--precision fp32|int8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.results_io import write_results
from service.prediction.packing import length_groups, padded_cells
from service.prediction.predictor import Predictor
from service.runtime.bundle import load_bundle
from service.runtime.onnx_model import OnnxModel

ROOT = Path(__file__).resolve().parents[1]


def mixed_sets(batch: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for n in rng.integers(200, 1001, batch):
        volume = rng.normal(90, 12, n).clip(30, 250)
        out.append(np.stack([volume, volume * rng.normal(0.33, 0.015, n)], 1).astype(np.float32))
    return out


def run(bundle: Path, rounds: int, batch: int, precision: str) -> dict[str, Any]:
    model = OnnxModel(load_bundle(bundle), "cpu", intra_op_threads=1, precision=precision)
    predictor = Predictor.for_model(model, 1000)
    sets = [mixed_sets(batch, seed) for seed in range(rounds)]
    predictor.run_model(sets[0]), predictor.run_model(sets[0], by_length=False)  # warm-up
    cpu: dict[str, list[float]] = {"padded to the longest": [], "length groups": []}
    worst = 0.0
    for batch_sets in sets:
        for name, by_length in (("padded to the longest", False), ("length groups", True)):
            t = time.thread_time()
            out = predictor.run_model(batch_sets, by_length=by_length)
            cpu[name].append(1000 * (time.thread_time() - t) / batch)
            if by_length:
                ref = predictor.run_model(batch_sets, by_length=False)
                worst = max(worst, float(np.abs(out.values - ref.values).max()))
    lengths = np.array([s.shape[0] for s in sets[0]])
    groups = length_groups(lengths)
    rows = [{"mode": name, "cpu_ms_per_patient": statistics.median(v),
             "patients_per_s_per_core": 1000 / statistics.median(v)} for name, v in cpu.items()]
    return {"precision": model.precision, "batch": batch, "rounds": rounds,
            "cells": "uniform 200-1,000 per sample",
            "padded_cells_share_of_real": {
                "padded to the longest": float(lengths.max() * lengths.size / lengths.sum()),
                "length groups": float(padded_cells(lengths, groups) / lengths.sum())},
            "groups_per_batch": len(groups), "max_abs_diff_pct": worst,
            "gain": rows[0]["cpu_ms_per_patient"] / rows[1]["cpu_ms_per_patient"],
            "load_average_1m": os.getloadavg()[0], "rows": rows}


def to_markdown(r: dict[str, Any]) -> str:
    lines = [f"Batch {r['batch']} of samples with {r['cells']} cells, {r['precision']}, one "
             f"onnxruntime thread, median over {r['rounds']} interleaved rounds (thread CPU "
             f"time); load average {r['load_average_1m']:.1f} on a shared 2-core machine. "
             f"Length groups: {r['groups_per_batch']} calls per batch, max |Δ| vs one padded "
             f"call {r['max_abs_diff_pct']:.2g} points. Gain: {r['gain']:.2f}×.", "",
             "| mode | padded cells ÷ real cells | CPU ms/patient | patients/s per core |",
             "|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['mode']} | {r['padded_cells_share_of_real'][row['mode']]:.2f} | "
                     f"{row['cpu_ms_per_patient']:.2f} | {row['patients_per_s_per_core']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    report = run(args.bundle, args.rounds, args.batch, args.precision)
    write_results(args.out, "length_batching", report, to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
