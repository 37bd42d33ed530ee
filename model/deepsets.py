"""Deep Sets++ (and plain Deep Sets, and every encoder variant of the paper's Tables 1-3) for
hematocrit from red-cell sets.

The module takes raw units — cells in fL / pg — and returns hematocrit in %: input
standardisation and label de-standardisation are buffers, so the exported ONNX graph needs no
preprocessing code beside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from model.layers import ResidualBlock, apply_norm, check_variant, make_norm, valid_mask
from model.set_regressor import SetRegressor

Pooling = Literal["sum", "mean"]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters; presets live in `PRESETS`."""

    in_features: int = 2  # volume fL, hemoglobin pg (1 for the paper's Normal Var task)
    hidden: int = 128
    blocks: int = 25  # K residual blocks; the paper's "50 layers" is K = 25 (2 layers each)
    decoder_layers: int = 3
    pooling: Pooling = "mean"
    residual: str | bool = "equivariant"  # none | equivariant | mean | max (True = equivariant)
    norm: str | bool = "set"  # none | layer | feature | set (True = set, False = none)
    reference_cells: int = 1  # mean pooling multiplies by this (1 = plain mean)
    path: str = "clean"  # clean (pre-norm, DS++) | non-clean (post-norm, ResNet style)

    def __post_init__(self) -> None:
        # Cards and checkpoints written before the variants spell norm/residual as booleans.
        if isinstance(self.norm, bool):
            object.__setattr__(self, "norm", "set" if self.norm else "none")
        if isinstance(self.residual, bool):
            object.__setattr__(self, "residual", "equivariant" if self.residual else "none")
        check_variant(str(self.norm), str(self.residual), self.path)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class DeepSetsPP(SetRegressor):
    """Encoder of equivariant blocks, masked pooling, MLP decoder.

    `pooling="sum"` is the paper's choice; its output grows with the number of cells, so a sample
    with 400 valid cells reads differently from the same blood with 1,000. `"mean"` pools the
    empirical distribution and stays stable across cell counts (optionally scaled by
    `reference_cells`, which makes it equal to sum pooling at that count).
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        config = config or ModelConfig()
        super().__init__(config.in_features)
        self.config = config
        h = config.hidden
        self.embed = nn.Linear(config.in_features, h, bias=False)
        self.blocks = nn.ModuleList(
            ResidualBlock(h, norm=str(config.norm), residual=str(config.residual),
                          path=config.path) for _ in range(config.blocks))
        # Pre-norm needs a last norm before the output layer; post-norm blocks end normalised.
        self.out_norm = make_norm(str(config.norm), h) if config.path == "clean" else None
        self.out_fc = nn.Linear(h, h)
        layers: list[nn.Module] = []
        for _ in range(config.decoder_layers):
            layers += [nn.Linear(h, h), nn.ReLU()]
        layers.append(nn.Linear(h, 1))
        self.decoder = nn.Sequential(*layers)

    def forward_standardised(self, cells: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Prediction in standardised label units (what the loss sees), `[B]`."""
        # cells [B, S, F] raw fL/pg (F = 2), lengths [B]
        mask = valid_mask(lengths, cells.shape[1])  # [B, S, 1]
        x = self.embed(self.standardise(cells, mask))  # [B, S, H]
        # Blocks and the last norm leave padding rows unzeroed (their statistics are masked);
        # the mask before pooling removes them.
        for block in self.blocks:
            x = block(x, mask, mask_out=False)  # [B, S, H]
        x = apply_norm(self.out_norm, x, mask, False)  # [B, S, H]
        x = self.out_fc(torch.relu(x)) * mask  # [B, S, H]
        pooled = x.sum(dim=1)  # [B, H]
        if self.config.pooling == "mean":
            n = mask.sum(dim=1).clamp(min=1.0)  # [B, 1]
            pooled = pooled * (self.config.reference_cells / n)
        return self.decoder(pooled).squeeze(-1)  # [B]


PRESETS: dict[str, ModelConfig] = {
    "paper": ModelConfig(hidden=128, blocks=25),
    "cpu": ModelConfig(hidden=64, blocks=8),
    "tiny": ModelConfig(hidden=16, blocks=2, decoder_layers=1),
}


def plain_deepsets(config: ModelConfig) -> ModelConfig:
    """The ablation: same depth and width, no set norm, no residual."""
    return ModelConfig(**{**config.as_dict(), "residual": "none", "norm": "none"})
