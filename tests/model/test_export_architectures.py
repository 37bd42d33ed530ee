"""ONNX export for every architecture: parity with torch, dynamic batch and set size, and the
exported graph (run by onnxruntime) ignores cell order and padding.

Four graphs, so that every value of the paper's variant knobs appears in one: plain Deep Sets
(no norm, no residual, clean, sum pooling); a DS++ variant (feature norm, max residual,
non-clean, mean pooling); a Set Transformer variant (layer norm, mean residual, non-clean, SAB,
mean pooling); and Set Transformer++ with its own defaults (set norm, equivariant, clean, ISAB,
PMA) - the session's `st_pp_bundle` (tests/conftest.py), which
tests/service/runtime/test_set_transformer_bundle.py serves. DS++ with its defaults is exported
in test_onnx_export.py. Depth 1 and width 8: an export costs seconds, and what is checked
(masks, norms, skips, attention) is all inside one block. In-torch behaviour of the whole
variant grid is in test_variants.py.
"""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from model.factory import build_network  # noqa: E402
from model.onnx_export import export_onnx  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DS = {"hidden": 8, "blocks": 1, "decoder_layers": 1}
ST = {"hidden": 8, "blocks": 1, "heads": 2, "decoder_layers": 1}
EXPORTED = {
    "deepsets-sum": {"name": "deepsets", **DS, "pooling": "sum"},
    "deepsets_pp-feature-max-nonclean": {"name": "deepsets_pp", **DS, "norm": "feature",
                                         "residual": "max", "path": "non-clean"},
    "set_transformer-mean-sab-meanpool": {"name": "set_transformer", **ST, "residual": "mean",
                                          "pooling": "mean"},
    "set_transformer_pp-bundle": None,  # the shared bundle's graph
}
KNOBS = {"norm": {"none", "layer", "feature", "set"},
         "residual": {"none", "equivariant", "mean", "max"}, "path": {"clean", "non-clean"}}


@pytest.fixture(scope="module", params=list(EXPORTED))
def exported(request, tmp_path_factory):
    if EXPORTED[request.param] is None:
        bundle, model = request.getfixturevalue("st_pp_bundle")
        card = json.loads((bundle / "card.json").read_text())
        parity, path = card["training"]["onnx_parity_max_abs_diff"], bundle / "model.onnx"
    else:
        torch.manual_seed(0)
        model = build_network(EXPORTED[request.param])
        model.set_normalisation(torch.tensor([90.0, 30.0]), torch.tensor([14.0, 4.6]), 42.0,
                                5.0)
        path = tmp_path_factory.mktemp("onnx") / "model.onnx"
        parity = export_onnx(model, path)
    return model.eval(), parity, ort.InferenceSession(str(path),
                                                      providers=["CPUExecutionProvider"])


def test_the_exported_graphs_cover_every_knob_value(st_pp_bundle):
    configs = [build_network(a).config for a in EXPORTED.values() if a is not None]
    configs.append(st_pp_bundle[1].config)
    for knob, values in KNOBS.items():
        assert {getattr(c, knob) for c in configs} == values, knob
    assert {c.inducing > 0 for c in configs if hasattr(c, "inducing")} == {True, False}
    assert {(type(c).__name__, c.pooling) for c in configs} == {
        ("ModelConfig", "sum"), ("ModelConfig", "mean"), ("SetTransformerConfig", "mean"),
        ("SetTransformerConfig", "pma")}


def _cells(b: int, s: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    volume = rng.normal(90, 14, (b, s)) * rng.uniform(0.8, 1.2, (b, 1))
    return np.stack([volume, volume * 0.33], axis=-1).astype(np.float32)  # [b, s, 2]


def test_export_parity_within_tolerance(exported):
    _, parity, _ = exported
    assert parity <= 1e-4


def test_exported_graph_takes_any_batch_and_set_size_and_matches_torch(exported):
    model, _, session = exported
    for b, s in ((1, 7), (3, 50), (9, 333)):
        cells = _cells(b, s, seed=s)
        lengths = np.full(b, s, dtype=np.int64)
        got = session.run(None, {"cells": cells, "lengths": lengths})[0]
        with torch.no_grad():
            want = model(torch.from_numpy(cells), torch.from_numpy(lengths)).numpy()
        assert got.shape == (b,)
        assert np.abs(got - want).max() <= 1e-4


def test_exported_graph_ignores_order_and_padding(exported):
    _, _, session = exported
    cells = _cells(4, 120, seed=3)
    lengths = np.array([120, 80, 33, 5], dtype=np.int64)
    rng = np.random.default_rng(4)
    other = np.concatenate([cells, np.zeros((4, 40, 2), np.float32)], axis=1)  # [4, 160, 2]
    for b, n in enumerate(lengths):
        other[b, :n] = cells[b, rng.permutation(n)]
        other[b, n:] = rng.uniform(0, 400, (160 - n, 2))
    a = session.run(None, {"cells": cells, "lengths": lengths})[0]
    b_ = session.run(None, {"cells": other, "lengths": lengths})[0]
    assert np.abs(a - b_).max() <= 1e-4
    assert np.ptp(a) > 1e-3  # the sets do get different predictions: the check is not vacuous
