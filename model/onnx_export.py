"""ONNX export with a parity gate: a graph that disagrees with torch is never written.

The graph takes raw cells `cells [B, S, 2]` float32 (fL, pg) and `lengths [B]` int64, and
returns `hematocrit_pct [B]`; batch and set size are dynamic.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from model.card import sha256_file
from model.set_regressor import SetRegressor

__all__ = ["ParityError", "export_onnx", "max_parity_error", "parity_batch", "sha256_file"]

INPUT_NAMES = ("cells", "lengths")
OUTPUT_NAME = "hematocrit_pct"
OPSET = 18
PARITY_TOLERANCE = 1e-4


class ParityError(RuntimeError):
    """The exported graph's outputs differ from torch's beyond tolerance."""


def parity_batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A mixed-length batch of plausible cells (padding filled with junk, which must not
    matter): `cells [5, 1200, 2]`, `lengths [5]`.
    """
    rng = np.random.default_rng(seed)
    lengths = np.array([1200, 1000, 640, 313, 200], dtype=np.int64)
    volume = rng.normal(90, 14, (5, 1200)).clip(30, 200)
    hemoglobin = volume * rng.normal(0.33, 0.02, (5, 1200))
    cells = np.stack([volume, hemoglobin], axis=-1).astype(np.float32)
    for b, n in enumerate(lengths):
        cells[b, n:] = rng.uniform(0, 300, (1200 - n, 2))
    return cells, lengths


def max_parity_error(model: SetRegressor, onnx_path: str | Path) -> float:
    """Max |torch − onnxruntime| over a mixed-length batch and a batch of one."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    model = model.eval()
    worst = 0.0
    cells, lengths = parity_batch()
    for x, n in ((cells, lengths), (cells[3:4, :313], lengths[3:4])):
        got = session.run([OUTPUT_NAME], {"cells": x, "lengths": n})[0]
        with torch.no_grad():
            want = model(torch.from_numpy(x), torch.from_numpy(n)).numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def export_onnx(model: SetRegressor, path: str | Path,
                tolerance: float = PARITY_TOLERANCE) -> float:
    """Export to `path` only if parity holds; returns the measured max abs difference."""
    path = Path(path)
    model = model.float().eval().cpu()
    cells, lengths = parity_batch()
    batch, size = torch.export.Dim("batch"), torch.export.Dim("cells")
    fd, tmp_name = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(
            model, (torch.from_numpy(cells[:2]), torch.from_numpy(lengths[:2])), str(tmp),
            input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
            dynamic_shapes={"cells": {0: batch, 1: size}, "lengths": {0: batch}},
            opset_version=OPSET, dynamo=True, external_data=False, verbose=False,
        )
        error = max_parity_error(model, tmp)
        if not error < tolerance:
            raise ParityError(f"ONNX parity failed: max |torch - onnx| = {error:.3g} "
                              f">= {tolerance:g}; model not written")
        tmp.chmod(0o644)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return error
