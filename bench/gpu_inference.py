"""GPU inference benchmark: onnxruntime CUDA execution provider against the CPU provider.

Why: the service can run the ONNX bundle on `HCT_EXECUTION_PROVIDER=cuda`, but a session asked
for CUDA silently falls back to CPU when the CUDA libraries do not load. This script loads the
bundle through the service's own `service.runtime.OnnxModel` (so it measures exactly what the
service would run), refuses to report CUDA figures unless `session.get_providers()` says CUDA,
checks CUDA-vs-CPU prediction parity on synthetic sets, and times both providers per batch size
(median ms per call and patients/s). `cuda` is the service's own path (`OnnxModel.predict`,
IO binding on: inputs copied to the GPU once, the output copied back once); unless
`--no-iobinding`, also `cuda_run` (plain `session.run`, for comparison) and `cuda_resident`
(inputs already on the GPU, output left there: the model's compute without host copies).

No torch import: numpy + onnxruntime only, like the service.

    python -m bench.gpu_inference --bundle models/default --out bench/results/gpu
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.results_io import write_results
from service.runtime.bundle import load_bundle
from service.runtime.onnx_model import CUDA, OnnxModel

ROOT = Path(__file__).resolve().parents[1]


def synthetic_sets(n: int, cells: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` sets of `cells` cells: volume ~ N(90, 12) fL in [30, 250], Hb = volume × N(.33, .015)."""
    rng = np.random.default_rng(seed)
    volume = rng.normal(90.0, 12.0, (n, cells)).clip(30.0, 250.0)
    hemoglobin = volume * rng.normal(0.33, 0.015, (n, cells))
    x = np.stack([volume, hemoglobin], axis=-1).astype(np.float32)
    return x, np.full(n, cells, dtype=np.int64)


def predict_all(model: OnnxModel, x: np.ndarray, lengths: np.ndarray,
                batch: int = 64) -> np.ndarray:
    return np.concatenate([model.predict(x[i:i + batch], lengths[i:i + batch])
                           for i in range(0, len(x), batch)])


def time_calls(call: Callable[[], object], repeats: int, min_seconds: float,
               max_calls: int = 1000, warmup: int = 3) -> list[float]:
    """Wall-clock seconds of each call after `warmup` calls: at least `repeats` calls, more
    (up to `max_calls`) while under `min_seconds` in total."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < min_seconds
                                   and len(times) < max_calls):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


def resident_call(model: OnnxModel, x: np.ndarray,
                  lengths: np.ndarray) -> Callable[[], object]:
    """A call with `cells` already on the GPU and the output left there (compute only)."""
    import onnxruntime as ort

    session = model.session
    cells = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x), "cuda", 0)
    binding = session.io_binding()
    binding.bind_ortvalue_input("cells", cells)
    binding.bind_cpu_input("lengths", np.ascontiguousarray(lengths))
    binding.bind_output("hematocrit_pct", "cuda", 0)

    def call() -> object:
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return binding

    return call


def gpu_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20, check=False)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "no nvidia-smi"


def run(bundle_dir: Path, batches: list[int], cells: int, repeats: int, min_seconds: float,
        parity_sets: int, iobinding: bool, threads: int) -> dict[str, Any]:
    import onnxruntime as ort

    bundle = load_bundle(bundle_dir)
    cpu = OnnxModel(bundle, "cpu", intra_op_threads=threads)
    cuda = OnnxModel(bundle, "cuda")  # raises unless the CUDA provider really loaded
    assert cuda.provider == CUDA and cuda.io_binding, cuda.session.get_providers()
    report: dict[str, Any] = {
        "bundle": str(bundle_dir), "model_sha256": bundle.sha256,
        "onnxruntime": ort.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "gpu": gpu_name(),
        "cpu_count": os.cpu_count(), "cpu_intra_op_threads": threads or "default (all cores)",
        "cells_per_set": cells, "providers": {"cpu": cpu.session.get_providers(),
                                              "cuda": cuda.session.get_providers()},
    }
    x, lengths = synthetic_sets(parity_sets, cells, seed=0)
    p_cpu, p_cuda = predict_all(cpu, x, lengths), predict_all(cuda, x, lengths)
    diff = np.abs(p_cuda - p_cpu)
    report["parity"] = {"sets": parity_sets, "max_abs_diff_pct_points": float(diff.max()),
                        "mean_abs_diff_pct_points": float(diff.mean()),
                        "mean_prediction_cpu": float(p_cpu.mean()),
                        "mean_prediction_cuda": float(p_cuda.mean())}
    print(f"parity over {parity_sets} sets: max {diff.max():.2e}, mean {diff.mean():.2e} "
          "percentage points", flush=True)
    engines: dict[str, OnnxModel] = {"cpu": cpu, "cuda": cuda}
    if iobinding:
        engines["cuda_run"] = OnnxModel(bundle, "cuda", io_binding=False)
        bound_vs_run = np.abs(predict_all(engines["cuda_run"], x, lengths) - p_cuda).max()
        report["parity"]["cuda_bound_vs_run_max_abs_diff"] = float(bound_vs_run)
        print(f"CUDA io binding vs session.run: max {bound_vs_run:.2e}", flush=True)
    rows: list[dict[str, Any]] = []
    for batch in batches:
        xb, lb = synthetic_sets(batch, cells, seed=batch)
        calls: dict[str, Callable[[], object]] = {
            name: (lambda m=m, xb=xb, lb=lb: m.predict(xb, lb)) for name, m in engines.items()}
        if iobinding:
            calls["cuda_resident"] = resident_call(cuda, xb, lb)
        for name, call in calls.items():
            times = time_calls(call, repeats, min_seconds)
            median = statistics.median(times)
            row = {"engine": name, "batch": batch, "calls": len(times),
                   "median_ms": 1e3 * median,
                   "p90_ms": 1e3 * float(np.percentile(times, 90)),
                   "patients_per_s": batch / median}
            rows.append(row)
            print(f"{name:>15} batch {batch:>5}: {row['median_ms']:9.3f} ms  "
                  f"{row['patients_per_s']:10.0f} patients/s  ({len(times)} calls)", flush=True)
    report["timings"] = rows
    return report


def to_markdown(report: dict[str, Any]) -> str:
    engines = sorted({r["engine"] for r in report["timings"]},
                     key=["cpu", "cuda_run", "cuda", "cuda_resident"].index)
    batches = sorted({r["batch"] for r in report["timings"]})
    by = {(r["engine"], r["batch"]): r for r in report["timings"]}
    par = report["parity"]
    lines = [
        "# GPU inference: onnxruntime CUDA EP vs CPU EP",
        "",
        f"GPU {report['gpu']}; onnxruntime {report['onnxruntime']}; {report['cpu_count']} CPU "
        f"cores (CPU EP intra-op threads: {report['cpu_intra_op_threads']}); "
        f"{report['cells_per_set']} cells per set; model sha256 {report['model_sha256'][:12]}.",
        f"Providers: CPU session {report['providers']['cpu']}, CUDA session "
        f"{report['providers']['cuda']}.",
        "",
        f"Parity (CUDA vs CPU, {par['sets']} synthetic sets): max |diff| "
        f"{par['max_abs_diff_pct_points']:.2e}, mean |diff| {par['mean_abs_diff_pct_points']:.2e}"
        " percentage points of hematocrit"
        + (f"; CUDA with IO binding vs plain run: max |diff| "
           f"{par['cuda_bound_vs_run_max_abs_diff']:.2e}."
           if "cuda_bound_vs_run_max_abs_diff" in par else "."),
        "",
        "Median ms per call (patients/s); `cuda` = the service's `OnnxModel.predict` (IO "
        "binding: inputs copied to the GPU once, output copied back once), `cuda_run` = plain "
        "`session.run`, `cuda_resident` = input already on the GPU, output left there.",
        "",
        "| batch | " + " | ".join(engines) + " | CUDA speed-up |",
        "| ---: | " + " | ".join("---:" for _ in engines) + " | ---: |",
    ]
    for b in batches:
        cells = [f"{by[(e, b)]['median_ms']:.2f} ({by[(e, b)]['patients_per_s']:,.0f}/s)"
                 for e in engines]
        speedup = by[("cpu", b)]["median_ms"] / by[("cuda", b)]["median_ms"]
        lines.append(f"| {b} | " + " | ".join(cells) + f" | {speedup:.1f}× |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu")
    parser.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")],
                        default=[1, 8, 32, 64, 256, 1024])
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=20, help="fewest timed calls per cell")
    parser.add_argument("--min-seconds", type=float, default=1.0,
                        help="keep timing a (engine, batch) pair at least this long")
    parser.add_argument("--parity-sets", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0, help="CPU EP intra-op threads")
    parser.add_argument("--no-iobinding", action="store_true")
    args = parser.parse_args()
    report = run(args.bundle, args.batches, args.cells, args.repeats, args.min_seconds,
                 args.parity_sets, not args.no_iobinding, args.threads)
    markdown = to_markdown(report)
    write_results(args.out, "gpu_inference", report, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
