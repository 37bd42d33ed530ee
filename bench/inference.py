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
import copy
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
OPT_LEVELS = ("DISABLE_ALL", "BASIC", "ALL")  # onnxruntime GraphOptimizationLevel.ORT_ENABLE_*
NORM_FLOPS_PER_ELEMENT = 8  # set norm: mask, mean, centre, square, variance, scale, affine (~8)
# Plausible training-set statistics for a random-init model, so raw fL/pg inputs land in the
# range the layers expect and outputs read as hematocrit %.
RANDOM_INIT_NORMALISATION = {"input_mean": (90.0, 29.7), "input_scale": (13.0, 4.5),
                             "label_mean": 42.0, "label_scale": 4.5}


@dataclass(frozen=True)
class BenchSettings:
    """What to measure; the defaults are the issue's (S = 1000, batch 1/8/64) sized to ~3 min."""

    batches: tuple[int, ...] = (1, 8, 64)
    set_size: int = 1000
    repeats: int = 20  # most timing rounds
    min_repeats: int = 5  # fewest samples per (engine, batch), whatever the budget
    time_budget_s: float = 120.0  # timing budget, shared equally by the (engine, batch) pairs
    warmup: int = 1
    settle_s: float = 0.004  # pause before each timed call (lets spinning threads go idle)
    threads: tuple[int, ...] = (1, 2)
    accuracy_sets: int = 128  # synthetic realistic sets for the accuracy check without --data
    data_sets: int = 1000  # first N test sets from --data
    peak_sizes: tuple[int, ...] = (1024, 2048)
    peak_tries: int = 4
    seed: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class ModelSource:
    """What is benchmarked: an optional torch model and an ONNX file for the ORT side."""

    config: Any  # model.deepsets.ModelConfig
    torch_model: Any | None  # DeepSetsPP or None (bundle only)
    onnx_path: Path | None  # exported from torch when None
    description: str
    random_init: bool
    notes: list[str] = field(default_factory=list)


@dataclass
class Engine:
    """One runnable variant; `accuracy_group` is shared by variants computing the same math."""

    name: str
    engine: str  # "torch" | "onnxruntime"
    device: str  # "cpu" | "cuda"
    provider: str
    threads: int | None
    graph_opt: str | None
    precision: str
    accuracy_group: str
    run: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def describe(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k != "run"}


# --------------------------------------------------------------------------- FLOPs


def flop_count(config: Any, set_size: int) -> dict[str, Any]:
    """Analytic FLOPs of one forward pass over one set of `set_size` cells (padding counted:
    it is computed). One multiply-add = 2 FLOPs. Returns the per-cell and per-set parts.
    """
    h, f, k, layers = config.hidden, config.in_features, config.blocks, config.decoder_layers
    norm = NORM_FLOPS_PER_ELEMENT * h if config.norm else 0
    per_cell_matmul = 2 * f * h + k * 2 * (2 * h * h) + 2 * h * h
    # input standardise+mask 3F; per block: 2 biases, 2 norms, 2 ReLUs, skip add + mask;
    # encoder tail: out norm, ReLU, out bias, mask, pooling sum.
    skip = 2 * h if config.residual else h
    per_cell_other = 3 * f + k * (2 * h + 2 * norm + 2 * h + skip) + (norm + 4 * h)
    per_set_matmul = layers * 2 * h * h + 2 * h
    per_set_other = layers * 2 * h + 1 + h + 2  # biases+ReLU, out bias, mean scale, de-standardise
    total = set_size * (per_cell_matmul + per_cell_other) + per_set_matmul + per_set_other
    matmul = set_size * per_cell_matmul + per_set_matmul
    return {
        "set_size": set_size,
        "per_cell_matmul": per_cell_matmul,
        "per_cell_elementwise": per_cell_other,
        "per_set_decoder_etc": per_set_matmul + per_set_other,
        "per_set": total,
        "per_set_gflop": total / 1e9,
        "matmul_share": matmul / total,
        "formula": FLOP_FORMULA,
    }


FLOP_FORMULA = (
    "per set = S·[3F + 2FH + K·(2·2H² + 2H + 2·8H + 2H + 2H) + (8H + 2H² + 4H)] "
    "+ L·(2H² + 2H) + 2H + 1 + H + 2; "
    "F input features (2), H hidden, K residual blocks (2 H×H linears each), L decoder layers, "
    "S cells (padding included: it is computed). Terms: input standardise+mask 3F; embed 2FH; "
    "per block 2 linears 2·2H², their biases 2H, 2 set norms at ~8 FLOPs per element (mask, "
    "mean, centre, square, variance, scale, affine; an approximation), 2 ReLUs 2H, skip add + "
    "mask 2H; encoder tail set norm 8H, ReLU, out linear 2H² + bias, mask, pooling sum; per set "
    "decoder L linears 2H² + bias + ReLU, output linear 2H + 1, mean scale H, label "
    "de-standardise 2. One multiply-add = 2 FLOPs."
)


# --------------------------------------------------------------------------- inputs


def realistic_sets(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """`[n, size, 2]` float32 cells (volume fL, hemoglobin pg) with per-patient MCV, MCHC and
    RDW spread, so predictions vary across sets as they would on real samples.
    """
    mcv = rng.normal(90.0, 6.0, (n, 1)).clip(65.0, 115.0)
    mchc = rng.normal(0.335, 0.012, (n, 1)).clip(0.28, 0.38)  # pg per fL
    rdw = rng.normal(0.13, 0.015, (n, 1)).clip(0.10, 0.20)
    volume = rng.normal(mcv, mcv * rdw, (n, size)).clip(30.0, 200.0)
    hemoglobin = volume * rng.normal(mchc, 0.02, (n, size)).clip(0.15, 0.5)
    return np.stack([volume, hemoglobin], axis=-1).astype(np.float32)


def load_test_sets(path: Path, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """First `limit` test sets and labels of a Flow-RBC file."""
    from ingestion.flowrbc import FlowRBCFile

    with FlowRBCFile.open(path) as f:
        if "test" not in f.splits:
            raise SystemExit(f"error: {path} has no test_data")
        labels = f.labels("test")
        if labels is None:
            raise SystemExit(f"error: {path} has no test_labels")
        cells = np.asarray(f.data("test")[:limit], dtype=np.float32)
    return cells, labels[: cells.shape[0]]


# --------------------------------------------------------------------------- peak


def measure_peak(sizes: tuple[int, ...], tries: int, threads: tuple[int, ...]) -> dict[str, Any]:
    """Best fp32 square-matmul GFLOP/s: numpy (its BLAS, all threads) and torch at each thread
    count. The peak at N threads is the best of everything measured with N threads.
    """
    import torch

    rng = np.random.default_rng(1)
    all_threads = max(threads)
    saved = torch.get_num_threads()
    rows: list[dict[str, Any]] = []
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        candidates: list[tuple[str, int, Callable[[], object]]] = [
            ("numpy", all_threads, lambda a=a, b=b: a @ b)]
        candidates += [(f"torch/{t}", t, lambda ta=ta, tb=tb: torch.mm(ta, tb)) for t in threads]
        for label, t, fn in candidates:
            torch.set_num_threads(t)
            fn()  # warm
            best = min(_timed(fn) for _ in range(tries))
            rows.append({"lib": label.split("/")[0], "threads": t, "n": n,
                         "gflops": 2 * n**3 / best / 1e9})
    torch.set_num_threads(saved)
    return {"measurements": rows}


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def peak_by_threads(peaks: list[dict[str, Any]]) -> dict[int, float]:
    """Best GFLOP/s at up to N threads over every measurement (start and end of the run): a
    variant allowed N threads could also have used fewer, so its peak is never below theirs.
    """
    best: dict[int, float] = {}
    for row in peaks:
        best[row["threads"]] = max(best.get(row["threads"], 0.0), row["gflops"])
    running = 0.0
    for t in sorted(best):
        running = best[t] = max(best[t], running)
    return best


def cuda_peak() -> float | None:
    """fp32 (TF32 off) matmul GFLOP/s on the GPU via torch, when torch sees one."""
    import torch

    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(4096, 4096, device="cuda")
    best = float("inf")
    for _ in range(5):
        torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, a)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * 4096**3 / best / 1e9


# --------------------------------------------------------------------------- engines


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Capture fd 2 (onnxruntime's C++ logger writes there directly) into a list of lines."""
    sink: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield sink
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.extend(tmp.read().decode(errors="replace").splitlines())


def ort_session(path: Path, level: str, threads: int, providers: list[str],
                spinning: bool = True) -> Any:
    """A session as the service makes one, with the knobs under test exposed. `spinning=False`
    makes idle intra-op workers block instead of busy-wait (matters on a shared machine).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{level}"
                                               if level != "DISABLE_ALL" else "ORT_DISABLE_ALL")
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=providers)


def ort_runner(session: Any) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def run(cells: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return session.run(["hematocrit_pct"], {"cells": cells, "lengths": lengths})[0]
    return run


def torch_runner(model: Any, threads: int | None,
                 device: str = "cpu") -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Eager forward under inference_mode; host→device copy and result copy back included."""
    import torch

    def run(cells: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        if threads is not None:
            torch.set_num_threads(threads)
        with torch.inference_mode():
            out = model(torch.from_numpy(cells).to(device), torch.from_numpy(lengths).to(device))
            return out.cpu().numpy()
    return run


def cuda_status(onnx_path: Path) -> tuple[bool, str]:
    """Whether onnxruntime's CUDA provider really runs a session here (get_providers()[0];
    get_available_providers() lists CUDA on machines where it cannot load).
    """
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return False, "CUDA not available on this machine (onnxruntime build has no CUDA EP)"
    with captured_stderr() as log:
        session = ort_session(onnx_path, "ALL", 1, [CUDA, CPU])
    provider = session.get_providers()[0]
    if provider == CUDA:
        return True, "CUDAExecutionProvider loaded"
    reason = next((line for line in log if "Failed to load" in line or "error" in line.lower()),
                  "")
    reason = reason[reason.find("with error:"):].strip() if "with error:" in reason else ""
    return False, ("CUDA not available on this machine (CUDAExecutionProvider listed but did "
                   f"not load; session ran on {provider}{'; ' + reason if reason else ''})")


def quantise(onnx_path: Path, out_path: Path, per_channel: bool) -> dict[str, Any]:
    """Dynamic int8 (weights int8, activations uint8 quantised per call) of MatMul weights.

    The torch exporter's graph carries value_info that onnx's strict shape inference (run by
    the quantiser) rejects; the shapes are re-inferred anyway, so they are dropped first.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(onnx_path))
    del model.graph.value_info[:]
    stripped = out_path.with_suffix(".fp32.onnx")
    onnx.save(model, str(stripped))
    with warnings.catch_warnings(), captured_stderr():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(stripped), str(out_path), op_types_to_quantize=["MatMul"],
                         per_channel=per_channel, weight_type=QuantType.QInt8)
    ops = [n.op_type for n in onnx.load(str(out_path)).graph.node]
    return {"per_channel": per_channel, "weight_type": "int8", "activation_type": "uint8",
            "op_types_to_quantize": ["MatMul"], "quantised_nodes": ops.count("MatMulInteger"),
            "float_matmul_nodes_left": ops.count("MatMul") + ops.count("Gemm"),
            "size_bytes": out_path.stat().st_size}


def build_engines(source: ModelSource, onnx_path: Path, work: Path, settings: BenchSettings,
                  cuda_ok: bool) -> tuple[list[Engine], dict[str, Any]]:
    """Every variant: torch eager per thread count, ORT fp32 per optimisation level × threads
    (plus ORT_ENABLE_ALL at most threads with worker spinning off), ORT int8 (per-tensor,
    per-channel) at ORT_ENABLE_ALL × threads, CUDA rows when loadable.
    """
    import torch

    engines: list[Engine] = []
    if source.torch_model is not None:
        for t in settings.threads:
            engines.append(Engine(f"torch eager fp32, {t} thr", "torch", "cpu", "torch-cpu", t,
                                  None, "fp32", "torch-fp32", torch_runner(source.torch_model, t)))
    for level in OPT_LEVELS:
        for t in settings.threads:
            session = ort_session(onnx_path, level, t, [CPU])
            engines.append(Engine(f"ORT fp32 {level}, {t} thr", "onnxruntime", "cpu",
                                  session.get_providers()[0], t, level, "fp32", f"ort-fp32-{level}",
                                  ort_runner(session)))
    if max(settings.threads) > 1:
        t = max(settings.threads)
        session = ort_session(onnx_path, "ALL", t, [CPU], spinning=False)
        engines.append(Engine(f"ORT fp32 ALL, {t} thr, no spin", "onnxruntime", "cpu",
                              session.get_providers()[0], t, "ALL", "fp32", "ort-fp32-ALL",
                              ort_runner(session)))
    quant_info: dict[str, Any] = {}
    for per_channel in (False, True):
        tag = "per-channel" if per_channel else "per-tensor"
        qpath = work / f"model.int8.{tag}.onnx"
        quant_info[tag] = quantise(onnx_path, qpath, per_channel)
        for t in settings.threads:
            session = ort_session(qpath, "ALL", t, [CPU])
            engines.append(Engine(f"ORT int8 {tag} ALL, {t} thr", "onnxruntime", "cpu",
                                  session.get_providers()[0], t, "ALL", f"int8 dynamic {tag}",
                                  f"ort-int8-{tag}", ort_runner(session)))
    if cuda_ok:
        session = ort_session(onnx_path, "ALL", max(settings.threads), [CUDA, CPU])
        engines.append(Engine("ORT CUDA fp32 ALL", "onnxruntime", "cuda",
                              session.get_providers()[0], None, "ALL", "fp32", "ort-cuda-fp32",
                              ort_runner(session)))
    if source.torch_model is not None and torch.cuda.is_available():
        gpu_model = copy.deepcopy(source.torch_model).cuda().eval()
        engines.append(Engine("torch eager CUDA fp32", "torch", "cuda", "torch-cuda", None, None,
                              "fp32", "torch-cuda-fp32", _synced(torch_runner(gpu_model, None,
                                                                              "cuda"))))
    return engines, quant_info


def _synced(run: Callable[[np.ndarray, np.ndarray], np.ndarray]
            ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    import torch

    def wrapped(cells: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        out = run(cells, lengths)
        torch.cuda.synchronize()
        return out
    return wrapped


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


# --------------------------------------------------------------------------- report


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
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "inference.json", out_dir / "inference.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(to_markdown(report))
    return json_path, md_path


# --------------------------------------------------------------------------- CLI


def random_model(config: Any, seed: int = 0) -> Any:
    """A random-init DeepSetsPP with plausible normalisation buffers (see the constant)."""
    import torch

    from model.deepsets import DeepSetsPP

    torch.manual_seed(seed)
    model = DeepSetsPP(config)
    n = RANDOM_INIT_NORMALISATION
    model.set_normalisation(torch.tensor(n["input_mean"]), torch.tensor(n["input_scale"]),
                            float(n["label_mean"]), float(n["label_scale"]))  # type: ignore[arg-type]
    return model.eval()


def load_source(checkpoint: Path | None, bundle: Path | None, preset: str | None,
                seed: int = 0) -> ModelSource:
    """Torch model from the checkpoint (or random init), ORT graph from the bundle if given."""
    from model.deepsets import PRESETS, ModelConfig

    notes: list[str] = []
    onnx_path = None
    bundle_config = None
    if bundle is not None:
        from service.runtime import load_bundle

        b = load_bundle(bundle)
        onnx_path = b.onnx_path
        arch = {k: v for k, v in b.card.get("architecture", {}).items() if k != "name"}
        bundle_config = ModelConfig(**arch) if arch else None
        notes.append(f"ORT side: {b.onnx_path} (bundle {b.name} {b.version}, sha256 "
                     f"{b.sha256[:12]}).")
    if checkpoint is not None:
        from model.train import load_trained

        model, train_config = load_trained(checkpoint)
        if bundle_config is not None and bundle_config != model.config:
            notes.append("Warning: the bundle's architecture differs from the checkpoint's; "
                         "accuracy deltas then compare different models.")
        desc = f"checkpoint {checkpoint} (trained preset {train_config.preset})"
        if preset is not None and preset != train_config.preset:
            notes.append(f"--preset {preset} ignored: the checkpoint defines the architecture.")
        return ModelSource(model.config, model.eval(), onnx_path, desc, False, notes)
    if bundle is not None:
        if bundle_config is None:
            raise SystemExit(f"error: {bundle}/card.json has no architecture; cannot count FLOPs")
        return ModelSource(bundle_config, None, onnx_path, f"bundle {bundle}", False, notes)
    preset = preset or "cpu"
    if preset not in PRESETS:
        raise SystemExit(f"error: --preset {preset!r}: choose from {sorted(PRESETS)}")
    return random_source(PRESETS[preset], f"random-init preset '{preset}'", seed, notes)


def random_source(config: Any, description: str, seed: int = 0,
                  notes: list[str] | None = None) -> ModelSource:
    """A random-init model as the benchmark's subject (latency does not depend on weights)."""
    return ModelSource(config, random_model(config, seed), None, description, True,
                       list(notes or []))


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
