"""Two model bundles on the same cohort's test split, through onnxruntime (what the service
runs): paired-bootstrap MSE of each and of their difference, and CPU cost per prediction.

Why: the bundled-default decision is accuracy per cost on a CPU host, measured on the graphs
that would be served rather than on their torch sources.

    python -m bench.bundle_compare --data runs/cohort20k.h5 \\
        models/default models/set_transformer_pp      # the first bundle is the reference
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.results_io import write_results
from model.card import architecture_label
from model.data import load_split
from model.scoring import REDUCTION, bootstrap_scores


def _session(bundle: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one prediction stream per core, as the service runs it
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(bundle / "model.onnx"), options,
                                providers=["CPUExecutionProvider"])


def _predict(session: ort.InferenceSession, cells: np.ndarray, batch: int = 64) -> np.ndarray:
    out = []
    for lo in range(0, cells.shape[0], batch):
        x = np.ascontiguousarray(cells[lo:lo + batch], dtype=np.float32)  # [b, S, 2]
        n = np.full(x.shape[0], x.shape[1], dtype=np.int64)  # [b]
        out.append(session.run(None, {"cells": x, "lengths": n})[0])
    return np.concatenate(out).astype(np.float64)


def _timings(sessions: list[ort.InferenceSession], cells: np.ndarray,
             repeats: int) -> list[dict[str, float]]:
    """Median ms per call at batch 1 and batch 64 (1,000 cells each), interleaved repeats."""
    shapes = {"batch1_ms": cells[:1], "batch64_ms": cells[:64]}
    times: list[dict[str, list[float]]] = [{k: [] for k in shapes} for _ in sessions]
    for _ in range(repeats):
        for i, session in enumerate(sessions):
            for key, x in shapes.items():
                n = np.full(x.shape[0], x.shape[1], dtype=np.int64)
                t0 = time.perf_counter()
                session.run(None, {"cells": np.ascontiguousarray(x, np.float32), "lengths": n})
                times[i][key].append(1000 * (time.perf_counter() - t0))
    return [{k: float(np.median(v)) for k, v in t.items()} for t in times]


def run(data: Path, bundles: list[Path], repeats: int = 15) -> dict[str, Any]:
    test = load_split(data, "test")
    cards = [json.loads((b / "card.json").read_text()) for b in bundles]
    sessions = [_session(b) for b in bundles]
    names = [f"{c['name']} {c['version']}" for c in cards]
    preds = {name: _predict(s, test.cells) for name, s in zip(names, sessions, strict=True)}
    scores = bootstrap_scores(test.labels, preds, reference=names[0], n_boot=1000, seed=0)
    timing = _timings(sessions, test.cells, repeats)
    rows = []
    for name, card, t in zip(names, cards, timing, strict=True):
        err = preds[name] - test.labels
        rows.append({"bundle": name, "architecture": architecture_label(card["name"]),
                     "config": card["architecture"], "mse": scores[name]["mse"].as_dict(),
                     "mse_reduction_vs_reference_pct": scores[name][REDUCTION].as_dict(),
                     "mae": float(np.mean(np.abs(err))), **t})
    return {"data": str(data), "n_test": len(test), "cells": int(test.cells.shape[1]),
            "reference": names[0], "repeats": repeats, "rows": rows}


def to_markdown(report: dict[str, Any]) -> str:
    lines = ["# Bundles compared on one test split", "",
             f"`{report['data']}`, {report['n_test']:,} test patients × {report['cells']} cells; "
             "onnxruntime CPU, 1 thread; MSE with 1,000 paired bootstrap resamples; the MSE "
             f"change is against `{report['reference']}` (positive = lower MSE); ms are medians "
             f"of {report['repeats']} interleaved calls on the shared 2-core machine.", "",
             "| bundle | architecture | MSE [95 % CI] | MSE change vs reference (%) [95 % CI] |"
             " ms, 1 sample | ms, 64 samples |", "|---|---|---|---|---:|---:|"]
    for r in report["rows"]:
        m, d = r["mse"], r["mse_reduction_vs_reference_pct"]
        lines.append(f"| `{r['bundle']}` | {r['architecture']} | {m['value']:.2f} "
                     f"[{m['low']:.2f}, {m['high']:.2f}] | {d['value']:+.1f} "
                     f"[{d['low']:+.1f}, {d['high']:+.1f}] | {r['batch1_ms']:.1f} | "
                     f"{r['batch64_ms']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundles", type=Path, nargs="+", help="bundle folders; the first is the "
                   "reference")
    p.add_argument("--data", type=Path, required=True, help="cohort with a test split")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--out", type=Path, default=Path("bench/results"))
    args = p.parse_args(argv)
    report = run(args.data, args.bundles, args.repeats)
    _, md = write_results(args.out, "bundle_compare", report, to_markdown(report))
    print(md.read_text())


if __name__ == "__main__":
    main()
