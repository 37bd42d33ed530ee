"""Pooling ablation for cell-count stability: masked mean (the product's choice) vs the paper's
masked sum, same preset, data, seed and budget, in one run.

Sum pooling's output grows with the number of valid cells, so a sample with 300 cells reads as
different blood than the same sample with 1,000; mean pooling reads the empirical distribution.
Both are trained on random 256-cell subsets; each is scored at its training count (256) and at
300 / 500 / 1,000 cells, with the resampling spread at each count.

    python -m bench.pooling_ablation --data data/cohort20k.h5 [--minutes 10] [--limit 8000]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.results_io import write_results
from model.data import load_split, random_subsets
from model.deepsets import ModelConfig
from model.train import TRAIN_PRESETS, load_trained, predict, train

ROOT = Path(__file__).resolve().parents[1]
COUNTS = (256, 300, 500, 1000)


def score_counts(model: torch.nn.Module, cells: np.ndarray, labels: np.ndarray,
                 repeats: int = 4, seed: int = 0) -> list[dict[str, float]]:
    """Test MSE and mean per-patient resampling SD at each cell count."""
    rng = np.random.default_rng(seed)
    rows = []
    for count in COUNTS:
        draws = np.stack([predict(model, random_subsets(cells, count, rng))
                          for _ in range(repeats if count < cells.shape[1] else 1)])  # [R, N]
        mean = draws.mean(axis=0)
        rows.append({"cells": count, "mse": float(np.mean((draws - labels) ** 2)),
                     "mean_prediction": float(mean.mean()),
                     "resampling_sd": float(draws.std(axis=0, ddof=1).mean())
                     if draws.shape[0] > 1 else 0.0})
    return rows


def run(data: Path, out_dir: Path, minutes: float, limit: int, test_limit: int,
        seed: int) -> dict[str, Any]:
    torch.set_num_threads(1)  # measured: one thread is faster on the shared 2-core machine
    test = load_split(data, "test", test_limit)
    results: dict[str, Any] = {"data": str(data), "train_limit": limit, "test_sets": len(test),
                               "minutes_each": minutes, "seed": seed, "models": {}}
    base = TRAIN_PRESETS["cpu"]
    for pooling in ("mean", "sum"):
        config = replace(base, model=ModelConfig(**{**base.model.as_dict(), "pooling": pooling}),
                         limit=limit, max_minutes=minutes, epochs=200, patience=200, seed=seed,
                         eval_set_size=base.set_size)
        run_dir = out_dir / f"pool_{pooling}"
        start = time.monotonic()
        history = train(data, run_dir, config, progress=False)
        model, _ = load_trained(run_dir / "best.pt")
        results["models"][pooling] = {
            "epochs": len(history), "train_seconds": time.monotonic() - start,
            "best_val_mse_at_256": min(r.val_mse for r in history),
            "counts": score_counts(model, test.cells, test.labels.astype(np.float64))}
    return results


def to_markdown(results: dict[str, Any]) -> str:
    lines = [f"Pooling ablation on `{Path(results['data']).name}`: cpu preset, trained on "
             f"{results['train_limit']:,} patients (random 256-cell subsets) for "
             f"{results['minutes_each']:.0f} min each; {results['test_sets']:,} test patients.",
             "", "| pooling | epochs | cells fed | test MSE | mean prediction (%) | "
             "resampling SD (%) |", "|---|---|---|---|---|---|"]
    for pooling, m in results["models"].items():
        for row in m["counts"]:
            lines.append(f"| {pooling} | {m['epochs']} | {row['cells']} | {row['mse']:.2f} | "
                         f"{row['mean_prediction']:.2f} | {row['resampling_sd']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "cohort20k.h5")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--limit", type=int, default=8000)
    parser.add_argument("--test-limit", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--run-dir", type=Path, default=Path("/tmp/hct-pooling-ablation"))
    args = parser.parse_args()
    results = run(args.data, args.run_dir, args.minutes, args.limit, args.test_limit, args.seed)
    markdown = to_markdown(results)
    write_results(args.out, "pooling_ablation", results, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
