"""Set norm's few-pass formulation: the same numbers as the textbook two-pass one (torch, and
torch vs ONNX), with fewer elementwise passes over the `[B, S, H]` tensor in the graph."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from model.layers import SetNorm, valid_mask  # noqa: E402

ELEMENTWISE = {"Mul", "Add", "Sub", "Div", "Pow", "Sqrt", "Reciprocal", "Where"}


def two_pass(norm: SetNorm, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The reference: mean, then variance of the centred values, masking at every step."""
    count = mask.sum(dim=(1, 2)) * x.shape[-1]
    mean = (x * mask).sum(dim=(1, 2)) / count
    centred = (x - mean[:, None, None]) * mask
    var = centred.pow(2).sum(dim=(1, 2)) / count
    normed = centred * torch.rsqrt(var + norm.eps)[:, None, None]
    return (normed * norm.weight + norm.bias) * mask


def _inputs(seed: int = 0, offset: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([500, 317, 64, 2])
    x = torch.randn(4, 500, 32, generator=g) + offset  # [B, S, H], mean far from 0
    x = x + torch.randn(1, 1, 32, generator=g)  # per-feature shifts
    x[~valid_mask(lengths, 500).squeeze(-1).bool()] = 7.5  # padding is not zero (a bias)
    return x, valid_mask(lengths, 500)


@pytest.mark.parametrize("offset", [0.0, 3.0, 10.0])
def test_few_pass_set_norm_matches_the_two_pass_reference(offset):
    torch.manual_seed(1)
    norm = SetNorm(32)
    with torch.no_grad():
        norm.weight.normal_(1, 0.3)
        norm.bias.normal_(0, 0.3)
        x, mask = _inputs(offset=offset)
        got, want = norm(x, mask), two_pass(norm, x, mask)
    assert float((got - want).abs().max()) <= 1e-5
    assert float(got[~mask.squeeze(-1).bool()].abs().max()) == 0.0  # padding stays 0


def _export(module: torch.nn.Module, path) -> onnx.ModelProto:
    x, mask = _inputs()
    batch, cells = torch.export.Dim("batch"), torch.export.Dim("cells")
    torch.onnx.export(module, (x, mask), str(path), input_names=["x", "mask"],
                      dynamic_shapes={"x": {0: batch, 1: cells}, "mask": {0: batch, 1: cells}},
                      opset_version=18, dynamo=True, external_data=False, verbose=False)
    return onnx.shape_inference.infer_shapes(onnx.load(str(path)))


def _full_size_passes(graph: onnx.ModelProto) -> int:
    """Elementwise nodes whose output is a whole `[B, S, H]` tensor (S not 1)."""
    shapes = {v.name: v.type.tensor_type.shape for v in
              (*graph.graph.value_info, *graph.graph.output)}
    count = 0
    for node in graph.graph.node:
        if node.op_type not in ELEMENTWISE:
            continue
        shape = shapes.get(node.output[0])
        if shape is not None and len(shape.dim) == 3 and shape.dim[1].dim_param \
                and shape.dim[2].dim_value == 32:
            count += 1
    return count


class _TwoPass(torch.nn.Module):
    def __init__(self, norm: SetNorm) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return two_pass(self.norm, x, mask)


def test_set_norm_graph_matches_torch_with_fewer_full_size_passes(tmp_path):
    import onnxruntime as ort

    torch.manual_seed(2)
    norm = SetNorm(32).eval()
    with torch.no_grad():
        norm.weight.normal_(1, 0.3)
        norm.bias.normal_(0, 0.3)
    graph = _export(norm, tmp_path / "new.onnx")
    reference = _export(_TwoPass(norm), tmp_path / "old.onnx")
    assert _full_size_passes(graph) < _full_size_passes(reference)
    session = ort.InferenceSession(str(tmp_path / "new.onnx"), providers=["CPUExecutionProvider"])
    x, mask = _inputs(seed=5, offset=5.0)
    got = session.run(None, {"x": x.numpy(), "mask": mask.numpy()})[0]
    with torch.no_grad():
        want = norm(x, mask).numpy()
    assert np.abs(got - want).max() <= 1e-5


def test_set_norm_without_the_output_mask_changes_only_padding_rows():
    torch.manual_seed(3)
    norm = SetNorm(32)
    with torch.no_grad():
        norm.weight.normal_(1, 0.3)
        norm.bias.normal_(0, 0.3)
        x, mask = _inputs(offset=2.0)
        masked, bare = norm(x, mask), norm(x, mask, mask_out=False)
    valid = mask.squeeze(-1).bool()
    assert torch.equal(masked[valid], bare[valid])
    assert float(bare[~valid].abs().max()) > 0.0  # padding left at the bias, not zeroed
