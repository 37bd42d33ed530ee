"""Re-exporting a bundle from its own graph: the weights come back exactly, the new graph is the
same function with fewer passes over the set, the card follows, and a graph that does not fit
its card is refused and left as it is."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from model.card import sha256_file, write_card  # noqa: E402
from model.deepsets import DeepSetsPP, ModelConfig  # noqa: E402
from model.factory import describe  # noqa: E402
from model.layers import SetNorm  # noqa: E402
from model.onnx_export import export_onnx, parity_batch  # noqa: E402
from model.reexport import ReexportError, graph_weights, reexport  # noqa: E402

ELEMENTWISE = {"Mul", "Add", "Sub", "Div", "Pow", "Sqrt", "Reciprocal", "Where", "Relu"}
HIDDEN = 16


class TwoPassSetNorm(SetNorm):
    """The form the shipped bundle was exported with: mean, then the variance of the centred
    values, masking at every step (same parameters, same function)."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor, mask_out: bool = True) -> torch.Tensor:
        count = mask.sum(dim=(1, 2)) * x.shape[-1]  # [B]
        mean = (x * mask).sum(dim=(1, 2)) / count  # [B]
        centred = (x - mean[:, None, None]) * mask  # [B, S, H]
        var = centred.pow(2).sum(dim=(1, 2)) / count  # [B]
        normed = centred * torch.rsqrt(var + self.eps)[:, None, None]  # [B, S, H]
        return (normed * self.weight + self.bias) * mask  # [B, S, H]


def _model(config: ModelConfig) -> DeepSetsPP:
    torch.manual_seed(3)
    model = DeepSetsPP(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(1.0 if name.endswith("weight") else 0.0, 0.3)
    model.set_normalisation(torch.tensor([90.0, 30.0]), torch.tensor([14.0, 4.6]), 40.0, 5.0)
    return model.eval()


def _old_style(model: DeepSetsPP) -> DeepSetsPP:
    """The same weights with every set norm swapped for the two-pass form."""
    old = _model(model.config)
    old.load_state_dict(model.state_dict())
    for parent in old.modules():
        for name, child in list(parent.named_children()):
            if type(child) is SetNorm:
                swapped = TwoPassSetNorm(HIDDEN)
                swapped.load_state_dict(child.state_dict())
                setattr(parent, name, swapped)
    return old.eval()


def _full_size_passes(path: Path) -> int:
    """Elementwise nodes whose output is a whole `[B, S, H]` tensor."""
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    shapes = {v.name: v.type.tensor_type.shape for v in graph.graph.value_info}
    return sum(1 for n in graph.graph.node if n.op_type in ELEMENTWISE
               and (s := shapes.get(n.output[0])) is not None and len(s.dim) == 3
               and s.dim[1].dim_param and s.dim[2].dim_value == HIDDEN)


@pytest.fixture(scope="module")
def config() -> ModelConfig:
    return ModelConfig(hidden=HIDDEN, blocks=2, decoder_layers=1)


@pytest.fixture()
def old_bundle(config: ModelConfig, tmp_path: Path) -> Path:
    """A bundle whose graph was exported with the two-pass set norm."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    parity = export_onnx(_old_style(_model(config)), bundle / "model.onnx")
    write_card({"version": "0.3.1", "onnx_sha256": sha256_file(bundle / "model.onnx"),
                "architecture": describe(config), "training": {"onnx_parity_max_abs_diff": parity},
                "reproduce": ["hct export ...", "python -m model.quantize --bundle b"]},
               bundle / "card.json")
    return bundle


def test_graph_weights_reads_back_every_parameter_and_buffer_exactly(config, old_bundle):
    model = _model(config)
    got = graph_weights(old_bundle / "model.onnx", DeepSetsPP(config))
    assert set(got) == set(model.state_dict())
    for name, want in model.state_dict().items():
        assert torch.equal(got[name], want), name


def test_reexport_swaps_in_the_same_function_with_fewer_passes_and_updates_the_card(
        config, old_bundle):
    old_path = old_bundle / "model.onnx"
    old_sha, old_passes = sha256_file(old_path), _full_size_passes(old_path)
    cells, lengths = parity_batch(seed=11)  # a batch the re-export never saw
    before = ort.InferenceSession(str(old_path), providers=["CPUExecutionProvider"]).run(
        None, {"cells": cells, "lengths": lengths})[0]

    section = reexport(old_bundle, patients=4)

    card = json.loads((old_bundle / "card.json").read_text())
    assert card["onnx_sha256"] == sha256_file(old_path) == section["onnx_sha256"] != old_sha
    assert section["from_onnx_sha256"] == old_sha and card["reexport"] == section
    assert card["version"] == "0.3.1" and section["version_kept"]
    assert section["max_abs_diff_old_vs_new_pct"] <= 1e-4
    assert card["reproduce"][-2:] == [f"python -m model.reexport --bundle {old_bundle}",
                                      "python -m model.quantize --bundle b"]
    after = ort.InferenceSession(str(old_path), providers=["CPUExecutionProvider"]).run(
        None, {"cells": cells, "lengths": lengths})[0]
    assert np.abs(after - before).max() <= 1e-4
    assert _full_size_passes(old_path) < old_passes == section["set_passes_before"]
    assert section["set_passes_after"] == _full_size_passes(old_path)
    assert collections.Counter(section["op_counts_after"])["MatMul"] == \
        collections.Counter(section["op_counts_before"])["MatMul"]


def test_reexport_drops_the_stale_int8_variant_so_it_can_be_made_again(old_bundle):
    from model.quantize import add_int8_variant

    add_int8_variant(old_bundle, patients=8)
    reexport(old_bundle, patients=4)
    card = json.loads((old_bundle / "card.json").read_text())
    assert "int8" not in card.get("variants", {})
    section = add_int8_variant(old_bundle, patients=8)
    assert section["from_onnx_sha256"] == card["onnx_sha256"]


def test_a_graph_that_does_not_fit_its_card_is_refused_and_left_alone(config, old_bundle):
    card_path, onnx_path = old_bundle / "card.json", old_bundle / "model.onnx"
    card = json.loads(card_path.read_text())
    sha = card["onnx_sha256"]
    write_card({**card, "architecture": {**card["architecture"], "hidden": 8}}, card_path)
    with pytest.raises(ReexportError, match="architecture"):
        reexport(old_bundle, patients=4)
    write_card({**card, "onnx_sha256": "0" * 64}, card_path)
    with pytest.raises(ReexportError, match="does not match its card"):
        reexport(old_bundle, patients=4)
    assert sha256_file(onnx_path) == sha
    assert sorted(p.name for p in old_bundle.iterdir()) == ["card.json", "model.onnx"]
