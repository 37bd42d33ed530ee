"""Deep Sets++ (and plain Deep Sets for the ablation) for hematocrit from red-cell sets.

The module takes raw units — cells in fL / pg — and returns hematocrit in %: input
standardisation and label de-standardisation are buffers, so the exported ONNX graph needs no
preprocessing code beside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from model.layers import ResidualBlock, SetNorm, valid_mask

Pooling = Literal["sum", "mean"]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters; presets live in `PRESETS`."""

    in_features: int = 2  # volume fL, hemoglobin pg (1 for the paper's Normal Var task)
    hidden: int = 128
    blocks: int = 25  # K residual blocks; the paper's "50 layers" is K = 25 (2 layers each)
    decoder_layers: int = 3
    pooling: Pooling = "mean"
    residual: bool = True  # False with norm=False gives plain Deep Sets
    norm: bool = True
    reference_cells: int = 1  # mean pooling multiplies by this (1 = plain mean)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class DeepSetsPP(nn.Module):
    """Encoder of equivariant blocks, masked pooling, MLP decoder.

    `pooling="sum"` is the paper's choice; its output grows with the number of cells, so a sample
    with 400 valid cells reads differently from the same blood with 1,000. `"mean"` pools the
    empirical distribution and stays stable across cell counts (optionally scaled by
    `reference_cells`, which makes it equal to sum pooling at that count).
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        h = config.hidden
        self.embed = nn.Linear(config.in_features, h, bias=False)
        self.blocks = nn.ModuleList(
            ResidualBlock(h, norm=config.norm) for _ in range(config.blocks)
        ) if config.residual else nn.ModuleList(
            _PlainBlock(h) for _ in range(config.blocks)
        )
        self.out_norm = SetNorm(h) if config.norm else None
        self.out_fc = nn.Linear(h, h)
        layers: list[nn.Module] = []
        for _ in range(config.decoder_layers):
            layers += [nn.Linear(h, h), nn.ReLU()]
        layers.append(nn.Linear(h, 1))
        self.decoder = nn.Sequential(*layers)
        self.register_buffer("input_mean", torch.zeros(config.in_features))
        self.register_buffer("input_scale", torch.ones(config.in_features))
        self.register_buffer("label_mean", torch.zeros(()))
        self.register_buffer("label_scale", torch.ones(()))

    def set_normalisation(self, input_mean: torch.Tensor, input_scale: torch.Tensor,
                          label_mean: float, label_scale: float) -> None:
        """Store training-set statistics in the module, so raw units go in and % comes out."""
        self.input_mean.copy_(input_mean)
        self.input_scale.copy_(input_scale)
        self.label_mean.fill_(label_mean)
        self.label_scale.fill_(label_scale)

    def forward_standardised(self, cells: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Prediction in standardised label units (what the loss sees), `[B]`."""
        # cells [B, S, F] raw fL/pg (F = 2), lengths [B]
        mask = valid_mask(lengths, cells.shape[1])  # [B, S, 1]
        x = (cells - self.input_mean) / self.input_scale * mask  # [B, S, F]
        x = self.embed(x)  # [B, S, H]
        for block in self.blocks:
            x = block(x, mask)
        if self.out_norm is not None:
            x = self.out_norm(x, mask)
        x = self.out_fc(torch.relu(x)) * mask  # [B, S, H]
        pooled = x.sum(dim=1)  # [B, H]
        if self.config.pooling == "mean":
            n = mask.sum(dim=1).clamp(min=1.0)  # [B, 1]
            pooled = pooled * (self.config.reference_cells / n)
        return self.decoder(pooled).squeeze(-1)  # [B]

    def forward(self, cells: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Hematocrit in %, `[B]`, from raw cells `[B, S, 2]` and valid lengths `[B]`."""
        return self.forward_standardised(cells, lengths) * self.label_scale + self.label_mean


class _PlainBlock(nn.Module):
    """Two equivariant layers without skip connection (plain Deep Sets at the same depth)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(torch.relu(x)))) * mask


PRESETS: dict[str, ModelConfig] = {
    "paper": ModelConfig(hidden=128, blocks=25),
    "cpu": ModelConfig(hidden=64, blocks=8),
    "tiny": ModelConfig(hidden=16, blocks=2, decoder_layers=1),
}


def plain_deepsets(config: ModelConfig) -> ModelConfig:
    """The ablation: same depth and width, no set norm, no residual."""
    return ModelConfig(**{**config.as_dict(), "residual": False, "norm": False})
