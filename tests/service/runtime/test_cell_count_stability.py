"""Clinical requirement on the shipped model: the same blood read with 300, 500 or 1,000 cells
gives the same hematocrit, within the model's own resampling spread. Runs the bundled ONNX
model exactly as the service does (onnxruntime, padded batches, lengths)."""

from pathlib import Path

import numpy as np
import pytest

from ingestion.batching import pad_sets
from ingestion.synthetic.cohort import generate_block
from service.runtime.bundle import load_bundle
from service.runtime.onnx_model import OnnxModel

BUNDLE = Path(__file__).resolve().parents[3] / "models" / "default"


@pytest.fixture(scope="module")
def model() -> OnnxModel:
    return OnnxModel(load_bundle(BUNDLE), "cpu")


def test_predictions_agree_across_cell_counts(model):
    block = generate_block(seed=123, block=0, n_cells=6000)  # 256 patients, 6,000 cells each
    rng = np.random.default_rng(0)
    repeats = 12
    for patient in range(8):
        pool = block.cells[patient]  # [6000, 2]: one patient's cell distribution
        means, sds = {}, {}
        for count in (300, 500, 1000):
            subsets = [pool[rng.choice(pool.shape[0], count, replace=False)]
                       for _ in range(repeats)]
            x, lengths = pad_sets(subsets, size=1000)  # padded like a mixed batch
            pred = model.predict(x, lengths)  # [repeats]
            means[count], sds[count] = pred.mean(), pred.std(ddof=1)
        for count in (300, 500):
            # the mean over subsets of `count` cells agrees with the 1,000-cell mean within the
            # spread of single predictions at that count
            assert abs(means[count] - means[1000]) <= sds[count], (patient, count, means, sds)
        assert sds[300] > sds[1000]  # fewer cells: noisier, as sampling theory says


def test_padding_and_batch_mates_do_not_change_a_prediction(model):
    block = generate_block(seed=5, block=0, n_cells=1000)
    cells = block.cells[:6]
    alone = [model.predict(*pad_sets([c])) for c in cells]
    mixed = [cells[0], cells[1][:400], cells[2], cells[3][:250], cells[4], cells[5]]
    together = model.predict(*pad_sets(mixed, size=1200))
    assert together[0] == pytest.approx(alone[0][0], abs=1e-4)
    assert together[2] == pytest.approx(alone[2][0], abs=1e-4)
    assert together[5] == pytest.approx(alone[5][0], abs=1e-4)
