"""The IO-binding path of `OnnxModel.predict` (what CUDA runs) gives exactly what plain
`session.run` gives; exercised here on the CPU provider over the shipped bundle."""

from __future__ import annotations

import numpy as np
import pytest

from service.runtime.bundle import load_bundle
from service.runtime.onnx_model import OnnxModel
from service.settings import DEFAULT_MODEL_DIR
from tests.service.conftest import cells_for


@pytest.fixture(scope="module")
def models() -> tuple[OnnxModel, OnnxModel]:
    bundle = load_bundle(DEFAULT_MODEL_DIR)
    plain = OnnxModel(bundle, "cpu", intra_op_threads=1, io_binding=False)
    bound = OnnxModel(bundle, "cpu", intra_op_threads=1, io_binding=True)
    return plain, bound


def test_io_binding_is_auto_on_for_cuda_only():
    model = OnnxModel(load_bundle(DEFAULT_MODEL_DIR), "cpu", intra_op_threads=1)
    assert model.io_binding is False  # the CPU session reads numpy memory directly


def test_bound_outputs_equal_plain_run_for_a_mixed_length_batch(models):
    plain, bound = models
    lengths = np.array([600, 250, 40, 600, 333], dtype=np.int64)
    cells = np.zeros((len(lengths), 600, 2), dtype=np.float32)  # [B, S, 2], zero padding
    for i, n in enumerate(lengths):
        cells[i, :n] = cells_for(36 + 3 * i, int(n), i)
    expected = plain.predict(cells, lengths)  # [B]
    got = bound.predict(cells, lengths)
    assert got.shape == (5,) and got.dtype == np.float64
    np.testing.assert_array_equal(got, expected)
    assert len(set(expected.round(6))) > 1  # distinct samples: a swapped row would show


def test_bound_outputs_equal_plain_run_for_batch_one(models):
    plain, bound = models
    cells = cells_for(45.0, 400, 7)[None].astype(np.float32)  # [1, 400, 2]
    lengths = np.array([400], dtype=np.int64)
    np.testing.assert_array_equal(bound.predict(cells, lengths), plain.predict(cells, lengths))
