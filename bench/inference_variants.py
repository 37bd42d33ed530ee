"""The engine variants the inference benchmark times: torch eager and onnxruntime sessions.

Why a module of its own: building the variants (graph optimisation levels, intra-op threads,
worker spinning off, dynamic int8 quantisation incl. stripping the exporter's shape
annotations, CUDA when it really loads) is one job, separate from timing and reporting them.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from bench.inference_inputs import ModelSource
    from bench.inference_settings import BenchSettings

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
OPT_LEVELS = ("DISABLE_ALL", "BASIC", "ALL")  # onnxruntime GraphOptimizationLevel.ORT_ENABLE_*


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
        # reduce_range: 7-bit weights, as the shipped variant (model/quantize.py): full-range
        # weights saturate onnxruntime's u8 x s8 kernel on x86 CPUs without VNNI
        quantize_dynamic(str(stripped), str(out_path), op_types_to_quantize=["MatMul"],
                         per_channel=per_channel, weight_type=QuantType.QInt8,
                         reduce_range=True)
    ops = [n.op_type for n in onnx.load(str(out_path)).graph.node]
    return {"per_channel": per_channel, "weight_type": "int8 (7-bit range)",
            "activation_type": "uint8",
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
