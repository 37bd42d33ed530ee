"""The inference benchmark's report files: Markdown table and JSON.

Why a module of its own: how results are presented changes independently of how they are
measured; `to_markdown` renders the report dict that `bench.inference.run` returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.results_io import write_results


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def to_markdown(report: dict[str, Any]) -> str:
    """The results table plus what it rests on (machine, FLOP formula, peak, notes)."""
    m, f, s = report["machine"], report["flops"], report["settings"]
    cfg = report["model"]["config"]
    acc = report["accuracy"]
    with_mse = acc["reference_mse"] is not None
    peaks = ", ".join(f"{t} thread{'s' if t != '1' else ''}: {g:.1f}"
                      for t, g in report["peak_gflops"]["cpu_by_threads"].items())
    lines = [
        "# Inference benchmark: torch eager vs onnxruntime",
        "",
        f"Machine: {m['cpu_model']}, {m['cpu_count']} cores; torch {m['torch']}, onnxruntime "
        f"{m['onnxruntime']}, numpy {m['numpy']}; providers used: "
        f"{', '.join(m['providers_used'])}.",
        f"Model: {report['model']['description']} (H = {cfg['hidden']}, K = {cfg['blocks']}, "
        f"decoder {cfg['decoder_layers']}, pooling {cfg['pooling']}).",
        f"Inputs: S = {s['set_size']} cells per set, all valid; up to {s['repeats']} "
        f"interleaved rounds in random order (a pair stops after {s['min_repeats']} runs once "
        f"it has used its share of a {s['time_budget_s']:.0f} s budget; runs per row in the last "
        f"column), {s['warmup']} warm-up call(s) per engine × batch. Whole run: "
        f"{report['total_wall_s']} s.",
        f"FLOPs: {f['per_set_gflop']:.4f} GFLOP per set ({f['per_cell_matmul']} matmul + "
        f"{f['per_cell_elementwise']} elementwise FLOPs per cell, {f['per_set_decoder_etc']} per "
        f"set; matmul share {100 * f['matmul_share']:.1f} %).",
        f"Measured fp32 matmul peak (GFLOP/s, best of numpy/torch sgemm on "
        f"{'/'.join(str(n) for n in s['peak_sizes'])}² at start and end of the run): {peaks}.",
        f"Accuracy Δ: |prediction − reference| in hematocrit %, max / mean, reference "
        f"{acc['reference']} (its predictions: std "
        f"{acc['by_group'][acc['reference']]['prediction_std_pct']:.3g} % across sets), on "
        f"{acc['inputs']}."
        + (f" ΔMSE vs the reference's MSE {acc['reference_mse']:.4f}." if with_mse else ""),
        "",
        "| engine / variant | batch | ms/batch median | p90 | patients/s | GFLOP/s | % of peak "
        "| accuracy Δ max / mean (%) |" + (" ΔMSE |" if with_mse else "") + " runs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if with_mse else "") + "---:|",
    ]
    for r in report["results"]:
        acc_cell = (f"{r['accuracy_max_abs_diff_pct']:.2g} / {r['accuracy_mean_abs_diff_pct']:.2g}"
                    if not r["accuracy_reference"] else "reference")
        line = (f"| {r['engine']} | {r['batch']} | {_fmt(r['ms_median'])} | {_fmt(r['ms_p90'])} "
                f"| {_fmt(r['patients_per_s'], 1)} | {_fmt(r['gflops'], 1)} "
                f"| {_fmt(r['pct_of_peak'], 1)} | {acc_cell} |")
        if with_mse:
            line += f" {_fmt(r['mse_change'], 4)} |"
        line += f" {r['runs']} |"
        lines.append(line)
    q = report["quantisation"]
    lines += ["", "Int8: onnxruntime.quantization.quantize_dynamic, MatMul weights int8, "
              "activations uint8 quantised per call; "
              + "; ".join(f"{tag}: {info['quantised_nodes']} MatMulInteger nodes, "
                          f"{info['float_matmul_nodes_left']} float MatMul/Gemm left"
                          for tag, info in q.items()) + ".",
              "", f"FLOP formula: {f['formula']}", "", "Notes:"]
    lines += [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    return write_results(out_dir, "inference", report, to_markdown(report))
