"""Which graph of a bundle a session runs: fp32 (`model.onnx`) or the int8 variant the card
describes (`variants.int8`), by `HCT_MODEL_PRECISION`.

auto: int8 on the CPU when the bundle ships an int8 graph whose accuracy check passed (card),
which agrees with fp32 on this host too, and whose values do not depend on the other samples in
a model call; fp32 on CUDA (int8 dynamic quantisation is a CPU kernel). The host check exists
because onnxruntime picks its int8 kernels by instruction set: a graph checked on a CPU with VNNI
can saturate on one without. The batch check exists because a dynamically quantised graph
scales its activations per call: a sample's value would then depend on its batch neighbours,
and the same cells would give different numbers alone, in a bulk request and in a batch job.
An explicit choice the bundle cannot serve is refused at start-up, never silently replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.card import sha256_file
from service.runtime.bundle import BundleError, ModelBundle

PRECISIONS = ("auto", "fp32", "int8")


@dataclass(frozen=True)
class Graph:
    """The ONNX file a session loads, verified against the card."""

    path: Path
    sha256: str
    precision: str  # fp32 | int8
    why: str


def int8_section(bundle: ModelBundle) -> dict[str, Any] | None:
    return bundle.card.get("variants", {}).get("int8")


def choose_graph(bundle: ModelBundle, precision: str, device: str) -> Graph:
    """The graph for `precision` (auto | fp32 | int8) on `device` (cpu | cuda)."""
    if precision not in PRECISIONS:
        raise BundleError(f"HCT_MODEL_PRECISION={precision!r}: expected one of {PRECISIONS}")
    section = int8_section(bundle)
    if precision == "fp32":
        return Graph(bundle.onnx_path, bundle.sha256, "fp32", "HCT_MODEL_PRECISION=fp32")
    if precision == "auto":
        if device == "cuda":
            return Graph(bundle.onnx_path, bundle.sha256, "fp32",
                         "HCT_MODEL_PRECISION=auto on CUDA")
        if section is None:
            return Graph(bundle.onnx_path, bundle.sha256, "fp32",
                         "HCT_MODEL_PRECISION=auto, the bundle has no int8 variant")
        if not section.get("check", {}).get("passed"):
            return Graph(bundle.onnx_path, bundle.sha256, "fp32",
                         "HCT_MODEL_PRECISION=auto, the int8 variant failed its accuracy check")
    if section is None:
        raise BundleError(f"HCT_MODEL_PRECISION=int8 but bundle {bundle.directory} has no int8 "
                          "variant (card.json variants.int8); run python -m model.quantize")
    path = bundle.directory / str(section.get("file", ""))
    if not path.is_file():
        raise BundleError(f"model bundle {bundle.directory}: int8 graph {path.name} is missing")
    actual, expected = sha256_file(path), str(section.get("sha256", ""))
    if actual != expected:
        raise BundleError(f"model bundle {bundle.directory}: {path.name} sha256 {actual} does "
                          f"not match card.json variants.int8.sha256 {expected or '(missing)'}; "
                          "refusing to serve an unverified model")
    return Graph(path, actual, "int8", f"HCT_MODEL_PRECISION={precision}, accuracy check "
                 f"{'passed' if section.get('check', {}).get('passed') else 'not passed'}")


HOST_CHECK_SEED = 9301
HOST_CHECK_PATIENTS = 16
# A sample scored alone and inside a batch may differ by fp32 rounding in the GEMM blocking
# (about one float32 ulp at 40 %, 4e-6); a graph that moves a value by more than this between
# batch compositions is batch-dependent.
BATCH_TOLERANCE_PCT = 1e-4


def _probe_batch() -> dict[str, np.ndarray]:
    """16 plausible samples of 1,000 cells (a spread of MCV, MCHC and RDW), fixed by seed."""
    rng = np.random.default_rng(HOST_CHECK_SEED)
    n, cells = HOST_CHECK_PATIENTS, 1000
    mcv = rng.uniform(70.0, 110.0, (n, 1))  # [16, 1] fL
    mchc = rng.uniform(0.30, 0.36, (n, 1))  # [16, 1] pg per fL
    volume = mcv * rng.lognormal(0.0, rng.uniform(0.10, 0.20, (n, 1)), (n, cells))  # [16, 1000]
    hemoglobin = volume * mchc * rng.normal(1.0, 0.05, (n, cells))  # [16, 1000]
    return {"cells": np.stack([volume, hemoglobin], axis=-1).astype(np.float32),  # [16, 1000, 2]
            "lengths": np.full(n, cells, dtype=np.int64)}


def host_check(fp32: Any, int8: Any, limit: float) -> dict[str, Any]:
    """The int8 session against fp32 on this host, on a fixed batch of plausible samples:
    max |int8 − fp32| (`passed` when within the card's own limit), and max |batch − alone|,
    each sample scored inside the batch and in a call of its own (`batch_independent` when
    within `BATCH_TOLERANCE_PCT`)."""
    feed = _probe_batch()
    a = fp32.run(["hematocrit_pct"], feed)[0]  # [16]
    b = int8.run(["hematocrit_pct"], feed)[0]  # [16]
    alone = np.array([int8.run(["hematocrit_pct"], {"cells": feed["cells"][i:i + 1],
                                                    "lengths": feed["lengths"][i:i + 1]})[0][0]
                      for i in range(HOST_CHECK_PATIENTS)])  # [16]
    worst = float(np.abs(a.astype(np.float64) - b).max())
    batch = float(np.abs(b.astype(np.float64) - alone).max())
    return {"max_abs_diff_pct": worst, "limit": limit, "patients": HOST_CHECK_PATIENTS,
            "passed": bool(worst <= limit), "batch_max_abs_diff_pct": batch,
            "batch_tolerance": BATCH_TOLERANCE_PCT,
            "batch_independent": bool(batch <= BATCH_TOLERANCE_PCT)}
