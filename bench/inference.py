"""Inference benchmark: torch eager against onnxruntime for the Deep Sets++ hematocrit model.

Why: the service runs the ONNX graph on onnxruntime; this measures what that costs per patient,
how close it gets to the machine's own fp32 matmul peak, and which runtime knobs (graph
optimisation level, intra-op threads, dynamic int8 quantisation) are worth having — a faster
variant is only kept in the table together with its accuracy change against the fp32 torch
model, so nobody adopts int8 without seeing what it does to the predictions.

Everything compared is measured in one run, interleaved: each timing round visits every
(engine, batch) pair in a fresh random order, with a short pause between calls so one engine's
spinning worker threads do not eat into the next one's time. Medians and p90 over the rounds;
a pair stops early once it has its minimum samples and its share of the time budget, which
keeps the default run within a few minutes on the 2-core dev machine.

    python -m bench.inference                                  # random-init "cpu" preset
    python -m bench.inference --checkpoint runs/x/best.pt --data cohort.h5
    python -m bench.inference --bundle models/default          # ORT only (no torch weights)
    python -m bench.inference --omp-passive                    # torch's OpenMP workers sleep
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.flops import cuda_peak, flop_count, measure_peak, peak_by_threads
from bench.inference_inputs import ModelSource, load_source, load_test_sets, realistic_sets
from bench.inference_report import to_markdown, write_report
from bench.inference_settings import BenchSettings
from bench.inference_variants import Engine, build_engines, captured_stderr, cuda_status

# --------------------------------------------------------------------------- measuring


def time_engines(engines: list[Engine], cells: np.ndarray, settings: BenchSettings,
                 progress: bool) -> dict[tuple[str, int], list[float]]:
    """Seconds per call for every (engine, batch), interleaved in random order per round.

    A pair drops out of later rounds once it has `min_repeats` samples and has used its share
    of the time budget, so one pathological variant cannot stretch the run past minutes.
    """
    rng = np.random.default_rng(settings.seed + 1)
    inputs = {b: (np.ascontiguousarray(cells[:b]), np.full(b, settings.set_size, np.int64))
              for b in settings.batches}
    pairs = [(e, b) for e in engines for b in settings.batches]
    for e, b in pairs:
        for _ in range(settings.warmup):
            e.run(*inputs[b])
    times: dict[tuple[str, int], list[float]] = {(e.name, b): [] for e, b in pairs}
    share = settings.time_budget_s / len(pairs)
    for r in range(settings.repeats):
        active = [i for i, (e, b) in enumerate(pairs)
                  if len(times[(e.name, b)]) < settings.min_repeats
                  or sum(times[(e.name, b)]) < share]
        if not active:
            break
        for i in rng.permutation(active):
            e, b = pairs[i]
            time.sleep(settings.settle_s)
            start = time.perf_counter()
            e.run(*inputs[b])
            times[(e.name, b)].append(time.perf_counter() - start)
        if progress:
            print(f"  timing round {r + 1}/{settings.repeats}: {len(active)}/{len(pairs)} pairs",
                  file=sys.stderr, flush=True)
    return times


def predict_all(engine: Engine, cells: np.ndarray, batch: int = 64) -> np.ndarray:
    lengths = np.full(batch, cells.shape[1], np.int64)
    out = [engine.run(np.ascontiguousarray(cells[i:i + batch]), lengths[: len(cells[i:i + batch])])
           for i in range(0, len(cells), batch)]
    return np.concatenate(out).astype(np.float64)


def accuracy(engines: list[Engine], cells: np.ndarray, labels: np.ndarray | None,
             seconds: dict[str, float]) -> tuple[str, dict[str, dict[str, float | None]]]:
    """Per accuracy group: max/mean |Δ prediction| (% HCT) against the reference (fp32 torch,
    else fp32 ORT without graph optimisation), and MSE against labels when given. Thread
    count does not change the math, so each group is predicted by its fastest variant
    (`seconds`: measured median at the largest batch).
    """
    groups: dict[str, Engine] = {}
    for e in engines:
        best = groups.get(e.accuracy_group)
        if best is None or seconds[e.name] < seconds[best.name]:
            groups[e.accuracy_group] = e
    reference = "torch-fp32" if "torch-fp32" in groups else "ort-fp32-DISABLE_ALL"
    preds = {g: predict_all(e, cells) for g, e in groups.items()}
    ref = preds[reference]
    ref_mse = float(np.mean((ref - labels) ** 2)) if labels is not None else None
    spread = float(ref.std())
    result: dict[str, dict[str, float | None]] = {}
    for g, p in preds.items():
        diff = np.abs(p - ref)
        mse = float(np.mean((p - labels) ** 2)) if labels is not None else None
        result[g] = {"max_abs_diff_pct": float(diff.max()), "mean_abs_diff_pct": float(diff.mean()),
                     "mse": mse,
                     "mse_change": None if mse is None or ref_mse is None else mse - ref_mse,
                     "max_abs_diff_over_reference_spread": float(diff.max()) / spread
                     if spread > 0 else None,
                     "prediction_std_pct": float(p.std())}
    return reference, result


def summarise(engines: list[Engine], times: dict[tuple[str, int], list[float]],
              flops: dict[str, Any], peaks: dict[str, dict[int, float] | float | None],
              acc: dict[str, dict[str, float | None]], reference: str,
              settings: BenchSettings) -> list[dict[str, Any]]:
    """One row per (engine, batch): latency percentiles, throughput, GFLOP/s, share of peak."""
    rows = []
    for e in engines:
        for b in settings.batches:
            t = np.array(times[(e.name, b)])
            med, p90 = float(np.median(t)), float(np.percentile(t, 90))
            gflops = flops["per_set"] * b / med / 1e9
            if e.device == "cuda":
                peak = peaks["cuda"]
            else:
                cpu = peaks["cpu"]
                assert isinstance(cpu, dict)
                peak = cpu.get(e.threads or max(cpu), max(cpu.values()))
            a = acc[e.accuracy_group]
            rows.append({"engine": e.name, "batch": b, "runs": len(t),
                         "ms_median": med * 1e3, "ms_p90": p90 * 1e3,
                         "patients_per_s": b / med, "gflops": gflops,
                         "pct_of_peak": None if not peak else 100 * gflops / float(peak),
                         "peak_gflops_used": peak, "provider": e.provider,
                         "accuracy_reference": e.accuracy_group == reference,
                         "accuracy_max_abs_diff_pct": a["max_abs_diff_pct"],
                         "accuracy_mean_abs_diff_pct": a["mean_abs_diff_pct"],
                         "mse_change": a["mse_change"]})
    return rows


def thread_notes(rows: list[dict[str, Any]], settings: BenchSettings) -> list[str]:
    """Flag torch's multi-thread rows when they lose badly to one thread: libgomp workers
    spin between parallel regions, the scheduler then deprioritises them, and every region
    waits for a descheduled worker. OMP_WAIT_POLICY=PASSIVE avoids it.
    """
    lo, hi = min(settings.threads), max(settings.threads)
    ms = {(r["engine"], r["batch"]): r["ms_median"] for r in rows}
    b = max(settings.batches)
    one = ms.get((f"torch eager fp32, {lo} thr", b))
    many = ms.get((f"torch eager fp32, {hi} thr", b))
    if lo == hi or one is None or many is None or many < 2 * one:
        return []
    policy = os.environ.get("OMP_WAIT_POLICY")
    return [f"torch eager with {hi} threads is {many / one:.1f}× slower than with {lo} at batch "
            f"{b} (OMP_WAIT_POLICY={policy or 'unset'}): busy-waiting OpenMP workers on a "
            "loaded machine. Rerun with --omp-passive to see torch without that effect."]


# --------------------------------------------------------------------------- run


def machine_info() -> dict[str, Any]:
    import onnxruntime as ort
    import torch

    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "ort_available_providers": ort.get_available_providers(),
        "torch_cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }


def run(source: ModelSource, settings: BenchSettings, data: Path | None = None,
        progress: bool = True) -> dict[str, Any]:
    """Export/quantise, measure peak, time every variant interleaved, check accuracy; the report
    (not yet written).
    """
    import torch

    from model.onnx_export import export_onnx
    from model.runtime_tuning import tune_malloc

    started = time.perf_counter()
    load_start = os.getloadavg()
    torch_threads = torch.get_num_threads()  # torch engines change it per call; restored below
    malloc_tuned = tune_malloc()
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda _: None)
    rng = np.random.default_rng(settings.seed)
    with tempfile.TemporaryDirectory(prefix="hct-bench-") as tmp:
        work = Path(tmp)
        onnx_path = source.onnx_path
        parity = None
        if onnx_path is None:
            say("exporting ONNX (parity-gated)…")
            with warnings.catch_warnings(), captured_stderr():
                warnings.simplefilter("ignore")
                parity = export_onnx(source.torch_model, work / "model.onnx")
            onnx_path = work / "model.onnx"
        say("checking the CUDA execution provider…")
        cuda_ok, cuda_note = cuda_status(onnx_path)
        engines, quant_info = build_engines(source, onnx_path, work, settings, cuda_ok)
        say("measuring fp32 matmul peak…")
        peak_rows = measure_peak(settings.peak_sizes, settings.peak_tries, settings.threads)
        peak_rows["measurements"] = [{**r, "when": "start"} for r in peak_rows["measurements"]]
        timing_cells = realistic_sets(max(settings.batches), settings.set_size, rng)
        say(f"timing {len(engines)} engines × batches {list(settings.batches)}, "
            f"S = {settings.set_size}, {settings.repeats} rounds…")
        times = time_engines(engines, timing_cells, settings, progress)
        end_rows = measure_peak(settings.peak_sizes, settings.peak_tries, settings.threads)
        peak_rows["measurements"] += [{**r, "when": "end"} for r in end_rows["measurements"]]
        labels = None
        if data is not None:
            acc_cells, labels = load_test_sets(data, settings.data_sets)
            acc_inputs = f"first {len(acc_cells)} test sets of {data}"
        else:
            acc_cells = realistic_sets(settings.accuracy_sets, settings.set_size, rng)
            acc_inputs = (f"{settings.accuracy_sets} synthetic realistic sets (per-patient MCV, "
                          f"MCHC, RDW spread), S = {settings.set_size}")
        say(f"accuracy on {acc_inputs}…")
        largest = max(settings.batches)
        seconds = {e.name: float(np.median(times[(e.name, largest)])) for e in engines}
        reference, acc = accuracy(engines, acc_cells, labels, seconds)
    torch.set_num_threads(torch_threads)
    cpu_peaks = peak_by_threads(peak_rows["measurements"])
    peaks: dict[str, Any] = {"cpu": cpu_peaks, "cuda": cuda_peak() if cuda_ok else None}
    flops = flop_count(source.config, settings.set_size)
    rows = summarise(engines, times, flops, peaks, acc, reference, settings)
    notes = list(source.notes)
    if source.random_init:
        notes.append("Randomly initialised weights (no checkpoint/bundle given): latency does "
                     "not depend on the weights; accuracy deltas of a random model are only "
                     "indicative of int8 error, not of a trained model's.")
        spread = acc[reference]["prediction_std_pct"]
        worst = max((a["max_abs_diff_pct"] or 0.0) for a in acc.values())
        if spread is not None and worst > 0.05 * spread:
            notes.append(f"Random weights barely separate patients (reference predictions vary "
                         f"by std {spread:.3g} % across sets), so the largest Δ ({worst:.2g} %) "
                         f"is {100 * worst / spread:.0f} % of that spread: judge int8 on a "
                         "trained checkpoint (--checkpoint, --data).")
    if source.torch_model is None:
        notes.append("Only a bundle was given: torch rows skipped (they need the checkpoint); "
                     "accuracy reference is ORT fp32 with graph optimisation disabled.")
    notes.append(cuda_note)
    load_end = os.getloadavg()
    cores = os.cpu_count() or 1
    if max(load_start[0], load_end[0]) > 0.5 * cores:
        notes.append(f"The machine was shared and busy (1-min load average {load_start[0]:.1f} "
                     f"at start, {load_end[0]:.1f} at end, on {cores} cores): rows needing "
                     "every core suffer most, since a multi-thread op waits for its slowest "
                     "thread.")
    notes += thread_notes(rows, settings)
    notes.append("% of peak compares with the best fp32 square matmul at up to the same thread "
                 "count, measured in this run (start and end); CUDA rows against torch's GPU "
                 "sgemm (— when torch has no GPU).")
    notes.append("ORT timings include the numpy → ORT input binding; torch timings include "
                 "torch.from_numpy and .numpy() (zero-copy on CPU).")
    return {
        "benchmark": "inference",
        "model": {"description": source.description, "config": source.config.as_dict(),
                  "random_init": source.random_init, "onnx_parity_max_abs_diff": parity},
        "settings": settings.as_dict(),
        "flops": flops,
        "peak_gflops": {"cpu_by_threads": {str(k): v for k, v in cpu_peaks.items()},
                        "cuda": peaks["cuda"], "measurements": peak_rows["measurements"]},
        "cuda": {"available": cuda_ok, "note": cuda_note},
        "engines": [e.describe() for e in engines],
        "quantisation": quant_info,
        "accuracy": {"reference": reference, "inputs": acc_inputs,
                     "sets": len(acc_cells), "by_group": acc,
                     "reference_mse": None if labels is None else acc[reference]["mse"]},
        "results": rows,
        "machine": {**machine_info(), "providers_used": sorted({e.provider for e in engines}),
                    "malloc_tuned": malloc_tuned, "loadavg_start": load_start,
                    "loadavg_end": load_end, "torch_threads_default": torch_threads},
        "notes": notes,
        "total_wall_s": round(time.perf_counter() - started, 1),
    }



# --------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Torch-free, so `--omp-passive` can still take effect before torch loads."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, help="best.pt from training (torch side)")
    p.add_argument("--bundle", type=Path, help="model bundle dir; its model.onnx for ORT")
    p.add_argument("--preset",
                   help="model.deepsets.PRESETS name (cpu, paper, tiny) for the random-init "
                        "model when no checkpoint/bundle is given; default cpu")
    p.add_argument("--data", type=Path, help="Flow-RBC HDF5; MSE change on its test sets")
    p.add_argument("--data-sets", type=int, default=BenchSettings.data_sets)
    p.add_argument("--repeats", type=int, default=BenchSettings.repeats,
                   help="most timing rounds per engine × batch")
    p.add_argument("--time-budget", type=float, default=BenchSettings.time_budget_s,
                   help="seconds of timing shared by all engine × batch pairs")
    p.add_argument("--batches", type=int, nargs="+", default=list(BenchSettings.batches))
    p.add_argument("--set-size", type=int, default=BenchSettings.set_size)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--omp-passive", action="store_true",
                   help="set OMP_WAIT_POLICY=PASSIVE before torch loads (idle OpenMP workers "
                        "sleep instead of spinning)")
    p.add_argument("--out", type=Path, default=Path("bench/results"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.omp_passive:
        if "torch" in sys.modules:
            print("warning: torch already loaded; --omp-passive has no effect", file=sys.stderr)
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    settings = replace(BenchSettings(), repeats=args.repeats, time_budget_s=args.time_budget,
                       min_repeats=min(BenchSettings.min_repeats, args.repeats),
                       batches=tuple(args.batches),
                       set_size=args.set_size, data_sets=args.data_sets, seed=args.seed)
    source = load_source(args.checkpoint, args.bundle, args.preset, args.seed)
    report = run(source, settings, data=args.data)
    json_path, md_path = write_report(report, args.out)
    print(to_markdown(report))
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
