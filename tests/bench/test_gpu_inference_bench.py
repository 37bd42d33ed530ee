"""The GPU benchmark must never report CPU timings under a CUDA label."""

from pathlib import Path

import numpy as np
import pytest

from bench import gpu_inference
from service.runtime.bundle import BundleError, load_bundle
from service.runtime.onnx_model import OnnxModel

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "default"


def test_refuses_to_run_without_a_working_cuda_provider():
    try:
        OnnxModel(load_bundle(BUNDLE), "cuda")
    except BundleError:
        pass
    else:
        pytest.skip("CUDA really loads here: the refusal path cannot be exercised")
    with pytest.raises(BundleError, match="CUDA execution provider could not be loaded"):
        gpu_inference.run(BUNDLE, [1], cells=100, repeats=1, min_seconds=0.0, parity_sets=2,
                          iobinding=False, threads=1)


def test_synthetic_sets_are_valid_model_input():
    x, lengths = gpu_inference.synthetic_sets(4, 50, seed=1)
    assert x.shape == (4, 50, 2) and x.dtype == np.float32
    assert (lengths == 50).all() and (x > 0).all()
    model = OnnxModel(load_bundle(BUNDLE), "cpu", intra_op_threads=1)
    assert np.isfinite(gpu_inference.predict_all(model, x, lengths, batch=3)).all()
