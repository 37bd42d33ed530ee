"""Cost per prediction of every Table 4 family at each preset size: parameters, matmul FLOPs
and CPU milliseconds for one sample of 1,000 cells (batch 1, 1 thread, torch eager, fp32).

Why: the bundled-default decision is accuracy per cost on a CPU host; the accuracy figures live
in the evaluation reports, this table is the cost side. The weights are untrained (cost does not
depend on them). Medians of interleaved repeats, since the shared machine's speed drifts.

    python -m bench.arch_cost            # about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.results_io import write_results
from model.factory import ARCHITECTURES, LABELS, build_network, describe, network_config, preset

# Sizes beyond the presets that the README's decision compares.
EXTRA: dict[str, dict[str, Any]] = {
    "small": {"name": "set_transformer_pp", "hidden": 32, "blocks": 2, "heads": 4,
              "inducing": 16},
}


def _models() -> list[tuple[str, str, dict[str, Any]]]:
    out = [(name, size, describe(preset(name, size), name))
           for size in ("cpu", "paper") for name in ARCHITECTURES]
    out += [(arch["name"], size, describe(network_config(arch), arch["name"]))
            for size, arch in EXTRA.items()]
    return out


def measure(cells: int = 1000, repeats: int = 9) -> list[dict[str, Any]]:
    from torch.utils.flop_counter import FlopCounterMode

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    x = 90 + 10 * torch.rand(1, cells, 2)  # [1, S, 2]
    n = torch.tensor([cells])
    built = []
    try:
        for name, size, arch in _models():
            torch.manual_seed(0)
            model = build_network(arch).eval()
            with FlopCounterMode(display=False) as counter:
                model(x, n)
            built.append((name, size, arch, model, counter.get_total_flops()))
        times: list[list[float]] = [[] for _ in built]
        with torch.no_grad():
            for _ in range(repeats):  # interleaved: drift hits every model alike
                for i, (*_, model, _) in enumerate(built):
                    t0 = time.perf_counter()
                    model(x, n)
                    times[i].append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(previous)
    return [{"arch": name, "model": LABELS[name], "size": size,
             "layers": arch["blocks"] * (1 if name.startswith("set_transformer") else 2),
             "hidden": arch["hidden"], "inducing": arch.get("inducing"),
             "parameters": sum(p.numel() for p in model.parameters()),
             "mflop": flops / 1e6, "cpu_ms": 1000 * float(np.median(t)),
             "cpu_ms_range": [1000 * min(t), 1000 * max(t)]}
            for (name, size, arch, model, flops), t in zip(built, times, strict=True)]


def to_markdown(rows: list[dict[str, Any]], cells: int) -> str:
    lines = ["# Cost per prediction by architecture and size", "",
             f"One sample of {cells:,} cells, batch 1, torch eager fp32 on 1 CPU thread of the "
             "shared 2-core machine (median of interleaved repeats, range beside it); matmul "
             "FLOPs counted by torch's FlopCounterMode; untrained weights.", "",
             "| model | size | layers | H | inducing | parameters | MFLOP | CPU ms (range) |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lo, hi = r["cpu_ms_range"]
        lines.append(f"| {r['model']} | {r['size']} | {r['layers']} | {r['hidden']} | "
                     f"{r['inducing'] if r['inducing'] is not None else ''} | "
                     f"{r['parameters']:,} | {r['mflop']:.1f} | {r['cpu_ms']:.1f} "
                     f"({lo:.1f}–{hi:.1f}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--out", type=Path, default=Path("bench/results"))
    args = p.parse_args(argv)
    rows = measure(args.cells, args.repeats)
    report = {"cells": args.cells, "repeats": args.repeats, "rows": rows}
    _, md_path = write_results(args.out, "arch_cost", report,
                               to_markdown(rows, args.cells))
    print(md_path.read_text())


if __name__ == "__main__":
    main()
