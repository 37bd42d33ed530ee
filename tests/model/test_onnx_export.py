import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from model.deepsets import DeepSetsPP, ModelConfig  # noqa: E402
from model.onnx_export import ParityError, export_onnx, parity_batch, sha256_file  # noqa: E402


@pytest.fixture(scope="module")
def model() -> DeepSetsPP:
    torch.manual_seed(0)
    m = DeepSetsPP(ModelConfig(hidden=16, blocks=3, decoder_layers=2))
    m.set_normalisation(torch.tensor([90.0, 30.0]), torch.tensor([14.0, 4.6]), 42.0, 5.0)
    return m.eval()


def test_exported_graph_matches_torch_on_mixed_lengths(model, tmp_path):
    path = tmp_path / "model.onnx"
    error = export_onnx(model, path)
    assert error < 1e-4
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    cells, lengths = parity_batch(seed=7)  # a batch the export never saw
    got = session.run(None, {"cells": cells, "lengths": lengths})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(cells), torch.from_numpy(lengths)).numpy()
    assert got.shape == (5,)
    assert np.abs(got - want).max() < 1e-4
    assert len(sha256_file(path)) == 64


def test_export_refuses_to_write_a_model_that_fails_parity(model, tmp_path):
    path = tmp_path / "model.onnx"
    with pytest.raises(ParityError, match="model not written"):
        export_onnx(model, path, tolerance=-1.0)  # no graph can pass a negative tolerance
    assert not path.exists()
    assert not list(tmp_path.glob("*.onnx"))
