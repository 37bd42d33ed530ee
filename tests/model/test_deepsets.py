import pytest

torch = pytest.importorskip("torch")

from model.deepsets import DeepSetsPP, ModelConfig, plain_deepsets  # noqa: E402
from model.layers import SetNorm, valid_mask  # noqa: E402


def _model(**overrides) -> DeepSetsPP:
    torch.manual_seed(0)
    cfg = ModelConfig(**{"hidden": 16, "blocks": 3, "decoder_layers": 2, **overrides})
    model = DeepSetsPP(cfg).double().eval()
    model.set_normalisation(torch.tensor([90.0, 30.0]), torch.tensor([12.0, 4.0]), 42.0, 5.0)
    return model


def _cells(b: int, s: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    volume = 90 + 12 * torch.randn(b, s, generator=g, dtype=torch.float64)
    return torch.stack([volume, volume * 0.33], dim=-1)  # [B, S, 2]


def test_set_norm_matches_direct_statistics_over_valid_cells_only():
    norm = SetNorm(4).double()
    x = torch.randn(2, 10, 4, dtype=torch.float64)
    lengths = torch.tensor([10, 6])
    out = norm(x, valid_mask(lengths, 10).double())
    valid = x[1, :6]  # [6, 4]: the second set's valid cells, all features together
    expected = (valid - valid.mean()) / torch.sqrt(valid.var(unbiased=False) + norm.eps)
    assert torch.allclose(out[1, :6], expected, atol=1e-10)
    assert torch.all(out[1, 6:] == 0)


def test_set_norm_statistics_stay_finite_in_half_precision():
    norm = SetNorm(128)
    x = (300 * torch.randn(2, 1000, 128)).half()  # sum of squares overflows fp16
    out = norm(x, torch.ones(2, 1000, 1))
    assert torch.isfinite(out.float()).all()


@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_permutation_invariance(pooling):
    model = _model(pooling=pooling)
    x = _cells(3, 200)
    lengths = torch.tensor([200, 200, 200])
    perm = torch.randperm(200)
    with torch.no_grad():
        assert torch.allclose(model(x, lengths), model(x[:, perm], lengths), atol=1e-9)


@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_padding_does_not_change_prediction(pooling):
    model = _model(pooling=pooling)
    cells = _cells(1, 1000)
    lengths = torch.tensor([1000])
    padded = torch.cat([cells, 50 * torch.rand(1, 500, 2, dtype=torch.float64)], dim=1)
    with torch.no_grad():
        assert torch.allclose(model(cells, lengths), model(padded, lengths), atol=1e-5)


def test_other_sets_in_the_batch_change_nothing():
    model = _model()
    a = _cells(1, 300, seed=1)
    others = _cells(4, 300, seed=2) * 1.3
    with torch.no_grad():
        alone = model(a, torch.tensor([300]))
        together = model(torch.cat([others[:2], a, others[2:]]), torch.tensor([300, 120, 300,
                                                                               250, 300]))
    assert torch.allclose(alone, together[2:3], atol=1e-9)


def test_module_takes_raw_units_and_returns_percent():
    model = _model()
    x = _cells(2, 100)
    lengths = torch.tensor([100, 100])
    with torch.no_grad():
        std = model.forward_standardised(x, lengths)
        assert torch.allclose(model(x, lengths), std * 5.0 + 42.0)


def test_deep_plain_deepsets_gradients_vanish_but_deep_setsplusplus_do_not():
    torch.manual_seed(0)
    x = 90 + 12 * torch.randn(8, 200, 2)
    lengths = torch.full((8,), 200)
    target = torch.randn(8)
    norms = {}
    for name, cfg in [("ds++", ModelConfig(hidden=32, blocks=25)),
                      ("plain", plain_deepsets(ModelConfig(hidden=32, blocks=25)))]:
        model = DeepSetsPP(cfg)
        model.set_normalisation(torch.tensor([90.0, 30.0]), torch.tensor([12.0, 4.0]), 0, 1)
        loss = (model.forward_standardised(x, lengths) - target).pow(2).mean()
        loss.backward()
        norms[name] = model.embed.weight.grad.norm().item()
    assert norms["ds++"] > 1e-3
    assert norms["plain"] < 1e-6 * norms["ds++"]
