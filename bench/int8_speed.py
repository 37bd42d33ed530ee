"""fp32 against the bundle's int8 variant on the CPU: patients/s per core at batch 8-64
(1,000 cells), thread CPU time of one-thread calls, interleaved, medians; plus where the fp32
graph's time goes by operator (onnxruntime profile), which bounds what int8 MatMuls can gain.

    python -m bench.int8_speed [--rounds 6]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.results_io import write_results
from service.runtime.bundle import load_bundle
from service.runtime.onnx_model import OnnxModel

ROOT = Path(__file__).resolve().parents[1]


def _batch(b: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(b)
    volume = rng.normal(90, 12, (b, 1000)).clip(30, 250)
    cells = np.stack([volume, volume * 0.33], axis=-1).astype(np.float32)
    return cells, np.full(b, 1000, dtype=np.int64)


def op_shares(path: Path, runs: int = 2) -> dict[str, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x, n = _batch(32)
    for _ in range(runs):
        session.run(None, {"cells": x, "lengths": n})
    profile = Path(session.end_profiling())
    totals: collections.Counter[str] = collections.Counter()
    for event in json.loads(profile.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"]
    profile.unlink()
    whole = sum(totals.values())
    return {op: round(v / whole, 3) for op, v in totals.most_common(8)}


def int8_isa() -> str:
    """The CPU's int8 dot-product extensions: without VNNI, onnxruntime's u8 x s8 kernel runs on
    AVX2 multiply-adds, which gain little over sgemm."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in
                      Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return "unknown"
    found = [f for f in ("avx512_vnni", "avx_vnni", "amx_int8", "avx512f", "avx2") if f in flags]
    return ", ".join(found) or "none of avx2/avx512/vnni"


def run(bundle_dir: Path, rounds: int) -> dict[str, Any]:
    bundle = load_bundle(bundle_dir)
    models = {p: OnnxModel(bundle, "cpu", intra_op_threads=1, precision=p)
              for p in ("fp32", "int8")}
    rows = []
    for b in (8, 32, 64):
        x, n = _batch(b)
        cpu: dict[str, list[float]] = {p: [] for p in models}
        for m in models.values():
            m.predict(x, n)
        for _ in range(rounds):
            for p, m in models.items():
                t = time.thread_time()
                m.predict(x, n)
                cpu[p].append(time.thread_time() - t)
        per = {p: b / statistics.median(v) for p, v in cpu.items()}
        rows.append({"batch": b, "fp32_patients_per_s_per_core": per["fp32"],
                     "int8_patients_per_s_per_core": per["int8"],
                     "speedup": per["int8"] / per["fp32"]})
    return {"rounds": rounds, "load_average_1m": os.getloadavg()[0], "cpu_int8_isa": int8_isa(),
            "rows": rows,
            "check": bundle.card["variants"]["int8"]["check"],
            "fp32_op_shares": op_shares(bundle.onnx_path)}


def to_markdown(r: dict[str, Any]) -> str:
    c = r["check"]
    lines = [f"One onnxruntime thread, 1,000 cells per patient, median thread CPU time over "
             f"{r['rounds']} interleaved rounds; load average {r['load_average_1m']:.1f} on a "
             f"shared 2-core machine; CPU int8 extensions: {r.get('cpu_int8_isa', 'unknown')}. "
             f"Card check: max |Δ| {c['max_abs_diff_pct']:.3f} points, "
             f"test MSE {100 * c['test_mse_change']:+.2f} % ({c['cohort']['patients']} synthetic "
             f"patients, seed {c['cohort']['seed']}). fp32 time by operator at batch 32: "
             f"{r['fp32_op_shares']}.", "",
             "| batch | fp32 patients/s/core | int8 patients/s/core | int8 ÷ fp32 |",
             "|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['batch']} | {row['fp32_patients_per_s_per_core']:.1f} | "
                     f"{row['int8_patients_per_s_per_core']:.1f} | {row['speedup']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    report = run(args.bundle, args.rounds)
    write_results(args.out, "int8_speed", report, to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
