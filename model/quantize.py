"""The bundle's int8 variant: onnxruntime dynamic quantisation of the shipped `model.onnx`
(int8 weights, activations quantised per call), checked against fp32 on a held-out synthetic
cohort before the card lets the service choose it.

`python -m model.quantize --bundle models/default` writes `model.int8.onnx` beside `model.onnx`
and a `variants.int8` section in the card (file, sha256, check). The fp32 graph and its sha256
are left as they are.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from model.card import read_card, sha256_file, write_card

INT8_FILE = "model.int8.onnx"
CHECK_SEED = 9001  # held out: training used seed 0, calibration seed 7001
CHECK_PATIENTS = 1024
MAX_ABS_DIFF_PCT = 0.5  # hematocrit points, int8 vs fp32, worst patient
MAX_MSE_CHANGE = 0.01  # relative change of the test MSE against the true hematocrit


def quantize(fp32_path: str | Path, int8_path: str | Path) -> None:
    """Dynamic int8 quantisation of every MatMul/Gemm weight (per output channel).

    Weights use 7 bits (`reduce_range`): on x86 CPUs without VNNI, onnxruntime's u8 x s8 kernel
    sums pairs of products in int16 and saturates with full-range weights (predictions moved
    past the check's limit on an AVX2-only machine); with 7 bits the check below holds
    whichever CPU serves the graph.
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The exporter's stored intermediate shapes trip the quantiser's own shape inference (a
    # static batch of the trace example): drop them, the graph itself is unchanged.
    graph = onnx.load(str(fp32_path))
    del graph.graph.value_info[:]
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "model.onnx"
        onnx.save(graph, str(bare))
        quantize_dynamic(str(bare), str(int8_path), weight_type=QuantType.QInt8,
                         per_channel=True, reduce_range=True,
                         op_types_to_quantize=["MatMul", "Gemm"])


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _predict(session: Any, cells: np.ndarray, batch: int = 64) -> np.ndarray:
    out = []
    for i in range(0, cells.shape[0], batch):
        x = np.ascontiguousarray(cells[i:i + batch], dtype=np.float32)  # [b, S, 2]
        n = np.full(x.shape[0], x.shape[1], dtype=np.int64)
        out.append(session.run(["hematocrit_pct"], {"cells": x, "lengths": n})[0])
    return np.concatenate(out).astype(np.float64)  # [N]


def accuracy_check(fp32_path: Path, int8_path: Path, *, seed: int = CHECK_SEED,
                   patients: int = CHECK_PATIENTS, n_cells: int = 1000,
                   threads: int = 1) -> dict[str, Any]:
    """Max |int8 − fp32| and the test-MSE change on a held-out synthetic cohort."""
    from ingestion.synthetic.cohort import generate_patients

    blocks = list(generate_patients(seed, patients, n_cells))
    cells = np.concatenate([b.cells for b in blocks])  # [N, S, 2]
    truth = np.concatenate([b.patients.hct for b in blocks]).astype(np.float64)  # [N]
    started = time.perf_counter()
    fp32 = _predict(_session(fp32_path, threads), cells)
    int8 = _predict(_session(int8_path, threads), cells)
    mse32 = float(np.mean((fp32 - truth) ** 2))
    mse8 = float(np.mean((int8 - truth) ** 2))
    max_diff = float(np.abs(int8 - fp32).max())
    change = (mse8 - mse32) / mse32
    return {
        "cohort": {"generator": "ingestion.synthetic.cohort.generate_patients", "seed": seed,
                   "patients": int(truth.size), "cells_per_set": n_cells, "synthetic": True},
        "max_abs_diff_pct": max_diff, "mean_abs_diff_pct": float(np.abs(int8 - fp32).mean()),
        "test_mse_fp32": mse32, "test_mse_int8": mse8, "test_mse_change": change,
        "limits": {"max_abs_diff_pct": MAX_ABS_DIFF_PCT, "test_mse_change": MAX_MSE_CHANGE},
        "passed": bool(max_diff <= MAX_ABS_DIFF_PCT and change <= MAX_MSE_CHANGE),
        "seconds": round(time.perf_counter() - started, 1),
    }


def add_int8_variant(bundle_dir: str | Path, **check: Any) -> dict[str, Any]:
    """Quantise the bundle's fp32 graph, check it, and record it in the card."""
    bundle = Path(bundle_dir)
    card = read_card(bundle / "card.json")
    fp32_path, int8_path = bundle / "model.onnx", bundle / INT8_FILE
    if sha256_file(fp32_path) != card["onnx_sha256"]:
        raise RuntimeError(f"{fp32_path} does not match its card; refusing to quantise it")
    quantize(fp32_path, int8_path)
    section = {"file": INT8_FILE, "sha256": sha256_file(int8_path),
               "quantization": "onnxruntime quantize_dynamic: int8 weights in a 7-bit range "
                               "(reduce_range, no int16 saturation on CPUs without VNNI) per "
                               "output channel (MatMul, Gemm), uint8 activations quantised per "
                               "call",
               "from_onnx_sha256": card["onnx_sha256"],
               "check": accuracy_check(fp32_path, int8_path, **check)}
    card.setdefault("variants", {})["int8"] = section
    reproduce = f"python -m model.quantize --bundle {bundle_dir}"
    if reproduce not in card.get("reproduce", []):
        card.setdefault("reproduce", []).append(reproduce)
    write_card(card, bundle / "card.json")
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True, help="model bundle directory")
    parser.add_argument("--patients", type=int, default=CHECK_PATIENTS)
    args = parser.parse_args()
    section = add_int8_variant(args.bundle, patients=args.patients)
    check = section["check"]
    print(f"{section['file']} sha256 {section['sha256'][:12]}: max |Δ| "
          f"{check['max_abs_diff_pct']:.3f} points, test MSE {check['test_mse_fp32']:.4f} → "
          f"{check['test_mse_int8']:.4f} ({100 * check['test_mse_change']:+.2f} %), "
          f"{'passed' if check['passed'] else 'FAILED'}")


if __name__ == "__main__":
    main()
