"""What every set network in hct shares: raw units in, hematocrit % out.

Input standardisation and label de-standardisation are buffers of the module, so the exported
ONNX graph needs no preprocessing code beside it, whichever encoder sits in between.
"""

from __future__ import annotations

import torch
from torch import nn


class SetRegressor(nn.Module):
    """Base class: subclasses implement `forward_standardised(cells, lengths) -> [B]`."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.zeros(in_features))
        self.register_buffer("input_scale", torch.ones(in_features))
        self.register_buffer("label_mean", torch.zeros(()))
        self.register_buffer("label_scale", torch.ones(()))

    def set_normalisation(self, input_mean: torch.Tensor, input_scale: torch.Tensor,
                          label_mean: float, label_scale: float) -> None:
        """Store training-set statistics in the module, so raw units go in and % comes out."""
        self.input_mean.copy_(input_mean)
        self.input_scale.copy_(input_scale)
        self.label_mean.fill_(label_mean)
        self.label_scale.fill_(label_scale)

    def standardise(self, cells: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Raw cells `[B, S, F]` to standardised features with padding zeroed, `[B, S, F]`."""
        return (cells - self.input_mean) / self.input_scale * mask  # [B, S, F]

    def forward_standardised(self, cells: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, cells: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Hematocrit in %, `[B]`, from raw cells `[B, S, F]` and valid lengths `[B]`."""
        return self.forward_standardised(cells, lengths) * self.label_scale + self.label_mean
