"""The ONNX session in the running service: execution provider choice that reports what
actually runs, and one `predict` for every code path.

No torch here: numpy + onnxruntime only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any, Literal

import numpy as np

from service import metrics
from service.runtime.bundle import BundleError, ModelBundle
from service.runtime.gpu import nvidia_gpu_evidence
from service.runtime.precision import choose_graph, host_check, int8_section

log = logging.getLogger("hct.runtime")

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
DEFAULT_INT8_LIMIT = 0.5  # hematocrit points, for a card whose check does not state its limit
# int8 graph sha256, fp32 graph sha256, providers -> the host check's result in this process
_HOST_CHECKS: dict[tuple[str, str, tuple[str, ...]], dict[str, Any]] = {}


class OnnxModel:
    """An onnxruntime session over a verified bundle; `provider` is what really runs."""

    def __init__(self, bundle: ModelBundle,
                 preference: Literal["auto", "cuda", "cpu"] = "auto",
                 intra_op_threads: int = 0, precision: str = "fp32",
                 io_binding: bool | None = None) -> None:
        import onnxruntime as ort

        self.bundle = bundle
        self.intra_op_threads = intra_op_threads  # 0: onnxruntime's default
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = intra_op_threads
        # Idle intra-op threads sleep instead of spinning: measured on the shared 2-core machine
        # (bench/results/inference.md), spinning threads starve the event loop and each other.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # a failed CUDA load is reported by us, below
        wanted, why = self._wanted_providers(ort, preference)
        self.graph = choose_graph(bundle, precision, "cuda" if CUDA in wanted else "cpu")
        self.precision_setting = precision
        self.session = ort.InferenceSession(str(self.graph.path), options, providers=wanted)
        self.host_check: dict[str, Any] | None = None
        if self.graph.precision == "int8":
            self._check_int8_on_this_host(ort, options, wanted, precision)
        # get_available_providers() lists CUDA on machines without a GPU, and a session asked
        # for CUDA silently runs on CPU when the CUDA libraries fail to load: trust only this.
        self.provider: str = self.session.get_providers()[0]
        if CUDA in wanted and self.provider != CUDA:
            log.warning("CUDA execution provider requested but could not be loaded; "
                        "running on %s", self.provider)
        if preference == "cuda" and self.provider != CUDA:
            raise BundleError("HCT_EXECUTION_PROVIDER=cuda but the CUDA execution provider "
                              f"could not be loaded (session runs on {self.provider})")
        # On CUDA, binding copies each input to the device once and the output back once; on
        # the CPU the session reads numpy memory directly, so binding buys nothing there.
        self.io_binding: bool = self.provider == CUDA if io_binding is None else io_binding
        log.info("model %s %s loaded on %s, %s (sha256 %s): %s; %s", bundle.name,
                 bundle.version, self.provider, self.graph.precision, self.graph.sha256[:12],
                 why, self.graph.why)

    def _check_int8_on_this_host(self, ort: Any, options: Any, wanted: list[str],
                                 precision: str) -> None:
        """The int8 graph against fp32 here: auto falls back to fp32 when they disagree beyond
        the card's limit, an explicit int8 is refused."""
        fp32_graph = choose_graph(self.bundle, "fp32", "cpu")
        key = (self.graph.sha256, fp32_graph.sha256, tuple(wanted))
        if key not in _HOST_CHECKS:  # once per process: the API builds two sessions of a graph
            fp32 = ort.InferenceSession(str(fp32_graph.path), options, providers=wanted)
            check = (int8_section(self.bundle) or {}).get("check", {})
            limit = float(check.get("limits", {}).get("max_abs_diff_pct", DEFAULT_INT8_LIMIT))
            _HOST_CHECKS[key] = host_check(fp32, self.session, limit)
        self.host_check = dict(_HOST_CHECKS[key])
        limit = self.host_check["limit"]
        worst = self.host_check["max_abs_diff_pct"]
        batch = self.host_check["batch_max_abs_diff_pct"]
        if not self.host_check["passed"]:
            if precision == "int8":
                raise BundleError(f"HCT_MODEL_PRECISION=int8 but on this host the int8 graph "
                                  f"differs from fp32 by {worst:.2f} hematocrit points (limit "
                                  f"{limit:g}); use fp32 or auto")
            why = (f"HCT_MODEL_PRECISION=auto, int8 differs from fp32 on this host by "
                   f"{worst:.2f} points (limit {limit:g})")
        elif not self.host_check["batch_independent"]:
            if precision == "int8":
                log.warning("HCT_MODEL_PRECISION=int8: a sample's value depends on the other "
                            "samples in its model call (up to %.3g points here); auto serves "
                            "fp32", batch)
                return
            why = (f"HCT_MODEL_PRECISION=auto, int8 values depend on the other samples in a "
                   f"model call (up to {batch:.3g} points on this host)")
        else:
            return
        (log.warning if not self.host_check["passed"] else log.info)("%s: serving fp32", why)
        self.graph = replace(fp32_graph, why=why)
        self.session = ort.InferenceSession(str(fp32_graph.path), options, providers=wanted)

    @staticmethod
    def _wanted_providers(ort: Any, preference: str) -> tuple[list[str], str]:
        """The providers to ask for, and why (for the one start-up line saying what runs)."""
        if preference == "cpu":
            return [CPU], "HCT_EXECUTION_PROVIDER=cpu"
        if CUDA not in ort.get_available_providers():
            return [CPU], f"HCT_EXECUTION_PROVIDER={preference}, onnxruntime has no CUDA build"
        if preference == "cuda":
            return [CUDA, CPU], "HCT_EXECUTION_PROVIDER=cuda"
        gpu = nvidia_gpu_evidence()
        if gpu is None:
            return [CPU], ("HCT_EXECUTION_PROVIDER=auto, no NVIDIA GPU on this host "
                           "(no /dev/nvidia*, no /proc/driver/nvidia/gpus)")
        return [CUDA, CPU], f"HCT_EXECUTION_PROVIDER=auto, NVIDIA GPU present ({gpu})"

    @property
    def precision(self) -> str:
        """fp32 | int8: the graph this session runs."""
        return self.graph.precision

    @property
    def recorded_provider(self) -> str:
        """What a stored prediction records as its provider: the execution provider, with
        the precision appended when it is not fp32 (`CPUExecutionProvider int8`)."""
        return self.provider if self.precision == "fp32" else f"{self.provider} {self.precision}"

    @property
    def device(self) -> str:
        return "cuda" if self.provider == CUDA else "cpu"

    def predict(self, cells: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Hematocrit % for a padded batch: `cells [B, S, 2]` float32, `lengths [B]` int64."""
        started = time.perf_counter()
        inputs = {"cells": np.ascontiguousarray(cells, dtype=np.float32),  # [B, S, 2]
                  "lengths": np.ascontiguousarray(lengths, dtype=np.int64)}  # [B]
        if self.io_binding:
            out = self._run_bound(inputs)
        else:
            out = self.session.run(["hematocrit_pct"], inputs)[0]
        metrics.INFERENCE_SECONDS.labels(self.provider).observe(time.perf_counter() - started)
        return out.astype(np.float64)  # [B]

    def _run_bound(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """`session.run` through an IO binding: inputs copied to the session's device once,
        the output bound there and copied back once. A binding per call: calls may overlap."""
        import onnxruntime as ort

        device = self.device
        binding = self.session.io_binding()
        for name, array in inputs.items():
            binding.bind_ortvalue_input(
                name, ort.OrtValue.ortvalue_from_numpy(array, device, 0))
        binding.bind_output("hematocrit_pct", device, 0)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]  # [B]
