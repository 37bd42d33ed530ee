"""One place that turns an architecture description into a network.

A card's `architecture` dict (and a checkpoint's config) names a family and lists every
hyper-parameter; `build_network` rebuilds exactly that network. The four names are the paper's
Table 4 models; any encoder variant of Tables 1-3 is the same name with other `norm`,
`residual`, `path` or depth values.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from model import deepsets, set_transformer
from model.card import ARCHITECTURE_LABELS
from model.deepsets import DeepSetsPP, ModelConfig
from model.set_transformer import SetTransformer, SetTransformerConfig

ARCHITECTURES: tuple[str, ...] = ("deepsets", "deepsets_pp", "set_transformer",
                                  "set_transformer_pp")
LABELS: dict[str, str] = ARCHITECTURE_LABELS
# Bundles written before the factory name the class.
ALIASES: dict[str, str] = {"DeepSetsPP": "deepsets_pp"}
# What makes each name itself when the dict says nothing else.
_VARIANT: dict[str, dict[str, Any]] = {
    "deepsets": {"norm": "none", "residual": "none", "path": "clean"},
    "deepsets_pp": {"norm": "set", "residual": "equivariant", "path": "clean"},
    "set_transformer": set_transformer.PLAIN,
    "set_transformer_pp": set_transformer.PLUS,
}
ArchConfig = ModelConfig | SetTransformerConfig


def canonical_name(name: str) -> str:
    """`name` as one of `ARCHITECTURES` (aliases resolved); ValueError names the choices."""
    name = ALIASES.get(name, name)
    if name not in ARCHITECTURES:
        raise ValueError(f"architecture name = {name!r}: expected one of "
                         f"{list(ARCHITECTURES)} (or {list(ALIASES)})")
    return name


def is_transformer(name: str) -> bool:
    return canonical_name(name).startswith("set_transformer")


def network_config(architecture: dict[str, Any]) -> ArchConfig:
    """The config dataclass for an architecture dict (`name` plus any fields to override)."""
    fields = dict(architecture)
    name = canonical_name(str(fields.pop("name")))
    cls = SetTransformerConfig if is_transformer(name) else ModelConfig
    return cls(**{**_VARIANT[name], **fields})


def build_network(architecture: dict[str, Any]) -> nn.Module:
    """A fresh (untrained) network for a card's or checkpoint's architecture dict."""
    config = network_config(architecture)
    if isinstance(config, SetTransformerConfig):
        return SetTransformer(config)
    return DeepSetsPP(config)


def preset(name: str, size: str) -> ArchConfig:
    """The `tiny` / `cpu` / `paper` size of a family, with that family's variant."""
    name = canonical_name(name)
    table = set_transformer.PRESETS if is_transformer(name) else deepsets.PRESETS
    if size not in table:
        raise ValueError(f"preset = {size!r}: expected one of {sorted(table)}")
    return network_config({"name": name, **table[size].as_dict(), **_VARIANT[name]})


def architecture_of(model: nn.Module, name: str | None = None) -> dict[str, Any]:
    """The card's `architecture` dict for a built network (see `describe`)."""
    return describe(model.config, name)  # type: ignore[attr-defined]


def describe(config: ArchConfig, name: str | None = None) -> dict[str, Any]:
    """A name and every hyper-parameter: what `build_network` rebuilds the network from.

    Without `name`, the family's base name is inferred (a variant is recorded in its fields).
    """
    if name is None:
        if isinstance(config, SetTransformerConfig):
            name = "set_transformer_pp" if config.path == "clean" else "set_transformer"
        else:
            plain = config.norm == "none" and config.residual == "none"
            name = "deepsets" if plain else "deepsets_pp"
    return {"name": canonical_name(name), **config.as_dict()}
