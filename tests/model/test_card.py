"""The card's `name` follows the architecture it describes, and a name maps back to the family
that clinical messages print."""

import json
from pathlib import Path

import pytest

from model.card import ARCHITECTURE_LABELS, architecture_label, build_card, card_name

ROOT = Path(__file__).resolve().parents[2]


def _card(architecture: dict) -> dict:
    return build_card(version="v", onnx_sha256="0" * 64, architecture=architecture, training={},
                      cells_per_set=1000, metrics={}, baselines={}, reproduce=[])


@pytest.mark.parametrize(("arch", "name", "label"), [
    ("deepsets", "hct-deepsets", "Deep Sets"),
    ("deepsets_pp", "hct-deepsets-pp", "Deep Sets++"),
    ("set_transformer", "hct-set-transformer", "Set Transformer"),
    ("set_transformer_pp", "hct-set-transformer-pp", "Set Transformer++"),
])
def test_card_name_follows_the_architecture_and_maps_back_to_its_label(arch, name, label):
    card = _card({"name": arch, "hidden": 8})
    assert card["name"] == name == card_name(arch)
    assert architecture_label(card["name"]) == label == ARCHITECTURE_LABELS[arch]


def test_the_shipped_card_name_still_reads_as_deep_sets_pp():
    card = json.loads((ROOT / "models/default/card.json").read_text())
    assert card["name"] == "hct-deepsets-pp"
    assert architecture_label(card["name"]) == "Deep Sets++"


def test_a_name_outside_the_scheme_is_shown_as_it_is():
    assert architecture_label("lab-model-7") == "lab-model-7"
    assert architecture_label("hct-pointnet") == "hct-pointnet"
