"""Every encoder variant of the paper's Tables 1-3, for both families: it builds, one Adam step
moves it, and its prediction ignores cell order and padding (in training mode too: padding never
enters a statistic). One block of width 8: each knob acts inside a block; depth is the paper
presets' business (test_factory.py)."""

import itertools

import pytest

torch = pytest.importorskip("torch")

from model.factory import build_network  # noqa: E402
from model.layers import NORMS, PATHS, RESIDUALS  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VARIANTS = list(itertools.product(NORMS, RESIDUALS, PATHS))
TINY = {"deepsets_pp": {"hidden": 8, "blocks": 1, "decoder_layers": 1},
        "set_transformer_pp": {"hidden": 8, "blocks": 1, "heads": 2, "decoder_layers": 1}}
CASES = ([("deepsets_pp", {}, *v) for v in VARIANTS]
         + [("set_transformer_pp", {"inducing": 0}, *v) for v in VARIANTS]
         + [("set_transformer_pp", {"inducing": 3, "pooling": "mean"}, *v) for v in VARIANTS])


def _ids(case) -> str:
    family, extra, norm, residual, path = case
    kind = "ds" if family.startswith("deepsets") else f"st-{'isab' if extra['inducing'] else 'sab'}"
    return f"{kind}-{norm}-{residual}-{path}"


def _build(family, extra, norm, residual, path):
    torch.manual_seed(0)
    model = build_network({"name": family, **TINY[family], **extra, "norm": norm,
                           "residual": residual, "path": path}).double()
    model.set_normalisation(torch.tensor([90.0, 30.0]), torch.tensor([12.0, 4.0]), 42.0, 5.0)
    return model


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    volume = 90 + 12 * torch.randn(3, 24, generator=g, dtype=torch.float64)  # [3, 24]
    cells = torch.stack([volume, volume * 0.33], dim=-1)  # [3, 24, 2]
    lengths = torch.tensor([24, 17, 9])
    return cells, lengths


def _shuffled_and_repadded(cells, lengths, seed: int = 1):
    """Each set's valid cells in another order, its padding replaced by junk, 10 more pads."""
    g = torch.Generator().manual_seed(seed)
    out = torch.cat([cells, torch.zeros(cells.shape[0], 10, 2, dtype=cells.dtype)], dim=1)
    for b, n in enumerate(lengths.tolist()):
        out[b, :n] = cells[b, torch.randperm(n, generator=g)]
        out[b, n:] = 500 * torch.rand(out.shape[1] - n, 2, generator=g, dtype=cells.dtype)
    return out


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_variant_trains_a_step_and_ignores_order_and_padding(case):
    model = _build(*case)
    cells, lengths = _batch()
    other = _shuffled_and_repadded(cells, lengths)
    for mode in ("train", "eval"):
        model.train(mode == "train")
        with torch.no_grad():
            a, b = model(cells, lengths), model(other, lengths)  # [3], [3]
        assert torch.isfinite(a).all()
        assert torch.allclose(a, b, atol=1e-8), (mode, (a - b).abs().max())
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = (model.forward_standardised(cells, lengths) - torch.randn(3, dtype=torch.float64))
    loss = loss.pow(2).mean()
    loss.backward()
    optimiser.step()
    assert torch.isfinite(loss)
    moved = [not torch.equal(p0, p) for p0, p in zip(before, model.parameters(), strict=True)]
    assert sum(moved) >= 0.8 * len(moved)  # a few may have no gradient (e.g. pooled-away bias)


@pytest.mark.parametrize("family", ["deepsets_pp", "set_transformer_pp"])
def test_unknown_variant_is_refused_naming_the_knob(family):
    with pytest.raises(ValueError, match="norm = 'batch'"):
        build_network({"name": family, "norm": "batch"})
    with pytest.raises(ValueError, match="residual = 'sum'"):
        build_network({"name": family, "residual": "sum"})
    with pytest.raises(ValueError, match="path = 'dirty'"):
        build_network({"name": family, "path": "dirty"})
