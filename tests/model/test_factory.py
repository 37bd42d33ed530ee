import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

from model.deepsets import DeepSetsPP  # noqa: E402
from model.factory import (  # noqa: E402
    ARCHITECTURES,
    architecture_of,
    build_network,
    preset,
)
from model.set_transformer import SetTransformer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_card_architecture_still_builds_through_its_old_class_name():
    arch = json.loads((ROOT / "models/default/card.json").read_text())["architecture"]
    assert arch["name"] == "DeepSetsPP"
    model = build_network(arch)
    assert isinstance(model, DeepSetsPP)
    assert (model.config.norm, model.config.residual, model.config.path) == (
        "set", "equivariant", "clean")
    assert model.config.hidden == arch["hidden"] and model.config.blocks == arch["blocks"]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_a_card_dict_rebuilds_the_same_network(name):
    torch.manual_seed(0)
    model = build_network({"name": name, **preset(name, "tiny").as_dict()})
    arch = architecture_of(model, name)
    assert arch["name"] == name
    clone = build_network(json.loads(json.dumps(arch)))  # through JSON, as a card stores it
    clone.load_state_dict(model.state_dict())  # same parameter names and shapes
    x, n = 90 + 10 * torch.rand(2, 30, 2), torch.tensor([30, 12])
    with torch.no_grad():
        assert torch.equal(model.eval()(x, n), clone.eval()(x, n))


def test_each_name_means_its_family_and_variant():
    expected = {"deepsets": (DeepSetsPP, "none", "none", "clean"),
                "deepsets_pp": (DeepSetsPP, "set", "equivariant", "clean"),
                "set_transformer": (SetTransformer, "layer", "equivariant", "non-clean"),
                "set_transformer_pp": (SetTransformer, "set", "equivariant", "clean")}
    for name, (cls, norm, residual, path) in expected.items():
        model = build_network({"name": name, **preset(name, "tiny").as_dict()})
        assert isinstance(model, cls)
        c = model.config
        assert (c.norm, c.residual, c.path) == (norm, residual, path), name
        assert architecture_of(model)["name"] == name  # inferred back from the variant


def test_paper_presets_have_the_papers_depth_and_width():
    # Table 4: Deep Sets and DS++ at 50 layers (25 two-layer blocks), Set Transformer and ST++
    # at 16 attention blocks; width 128 throughout.
    assert [preset(n, "paper").blocks for n in ARCHITECTURES] == [25, 25, 16, 16]
    assert {preset(n, "paper").hidden for n in ARCHITECTURES} == {128}


def test_unknown_name_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"architecture name = 'pointnet'.*set_transformer_pp"):
        build_network({"name": "pointnet"})
