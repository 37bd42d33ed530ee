"""Set layers: mask-aware norms (set, layer, feature), pooled and equivariant skips, and the
equivariant residual block in every variant of the paper's Tables 1-3.

The paper's reference code normalises over the padded tensor, so zero padding shifts every set's
statistics; here padding is excluded from every statistic and kept at zero throughout.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


def valid_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """`[B, S, 1]` float mask: 1 for the first `lengths[b]` cells of each set, else 0."""
    positions = torch.arange(size, device=lengths.device)  # [S]
    return (positions[None, :] < lengths[:, None]).unsqueeze(-1).float()  # [B, S, 1]


class SetNorm(nn.Module):
    """Per-set standardisation: one mean and one variance per set, over all valid cells and all
    features, then a learned per-feature scale and bias.

    Statistics are computed in fp32 even under autocast: in fp16 the sum of squares over 1,000
    cells × 128 features overflows (measured: NaN).
    """

    def __init__(self, features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, mask_out: bool = True) -> torch.Tensor:
        # x [B, S, H], mask [B, S, 1]
        # Two-pass statistics (the mean, then the variance of the masked centred values): the
        # one-pass E[x²] − mean² compounds onnxruntime's fp32 reduction error through a deep
        # stack of norms. Passes over the big tensor are kept few otherwise:
        # the mask once per statistic, weight folded into the per-set scale, and
        # `mask_out=False` skips zeroing the output's padding (left at `bias`) for callers
        # that only feed it to row-wise layers and mask later. The input's padding need not be
        # zero (a linear layer's bias lands there).
        x32 = x.to(torch.promote_types(x.dtype, torch.float32))  # fp16/bf16 -> fp32
        count = mask.sum(dim=(1, 2)) * x.shape[-1]  # [B] valid entries per set
        mean = (x32 * mask).sum(dim=(1, 2)) / count  # [B]
        xm = (x32 - mean[:, None, None]) * mask  # [B, S, H], padding 0
        var = (xm * xm).sum(dim=(1, 2)) / count  # [B]
        scale = torch.rsqrt(var + self.eps)[:, None, None] * self.weight  # [B, 1, H]
        out = xm * scale + self.bias  # [B, S, H], padding = bias
        return (out * mask if mask_out else out).to(x.dtype)


NormKind = Literal["none", "layer", "feature", "set"]
ResidualKind = Literal["none", "equivariant", "mean", "max"]
PathKind = Literal["clean", "non-clean"]
NORMS: tuple[str, ...] = ("none", "layer", "feature", "set")
RESIDUALS: tuple[str, ...] = ("none", "equivariant", "mean", "max")
PATHS: tuple[str, ...] = ("clean", "non-clean")


def check_variant(norm: str, residual: str, path: str) -> None:
    """Reject an unknown variant name early, naming the knob and the choices."""
    for knob, value, choices in (("norm", norm, NORMS), ("residual", residual, RESIDUALS),
                                 ("path", path, PATHS)):
        if value not in choices:
            raise ValueError(f"{knob} = {value!r}: expected one of {list(choices)}")


class LayerNorm(nn.Module):
    """Per-element standardisation over features (the transformer's layer norm); padding rows
    are computed but zeroed, and no row sees another, so padding cannot leak in."""

    def __init__(self, features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(features, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, mask_out: bool = True) -> torch.Tensor:
        # x [B, S, H], mask [B, S, 1]
        out = self.norm(x)  # [B, S, H]
        return out * mask if mask_out else out


class FeatureNorm(nn.Module):
    """Batch norm for sets: one mean and variance per feature over every valid element of every
    set in the batch while training (running averages at inference), so a deployed model treats
    each set on its own. The paper's feature norm; padding never enters the statistics.
    """

    def __init__(self, features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, mask_out: bool = True) -> torch.Tensor:
        # x [B, S, H], mask [B, S, 1]
        x32 = x.to(torch.promote_types(x.dtype, torch.float32))
        if self.training:
            count = mask.sum().clamp(min=1.0)  # [] valid elements in the batch
            mean = (x32 * mask).sum(dim=(0, 1)) / count  # [H]
            var = ((x32 - mean) * mask).pow(2).sum(dim=(0, 1)) / count  # [H]
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(var.detach().to(self.running_var.dtype), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var  # [H], [H]
        normed = (x32 - mean) * torch.rsqrt(var + self.eps)  # [B, S, H]
        out = normed * self.weight + self.bias  # [B, S, H]
        return (out * mask if mask_out else out).to(x.dtype)


def make_norm(kind: str, features: int) -> nn.Module | None:
    """The mask-aware norm named `kind` (None for "none")."""
    kinds: dict[str, type[nn.Module]] = {"layer": LayerNorm, "feature": FeatureNorm,
                                         "set": SetNorm}
    return kinds[kind](features) if kind in kinds else None


def apply_norm(norm: nn.Module | None, x: torch.Tensor, mask: torch.Tensor,
               mask_out: bool = True) -> torch.Tensor:
    """`norm(x)`; `mask_out=False` skips zeroing the padding (one pass over `[B, S, H]` saved)
    where only row-wise layers follow before the next mask."""
    return x if norm is None else norm(x, mask, mask_out=mask_out)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the valid elements of each set: `[B, S, H] -> [B, 1, H]`."""
    n = mask.sum(dim=1, keepdim=True).clamp(min=1.0)  # [B, 1, 1]
    return (x * mask).sum(dim=1, keepdim=True) / n  # [B, 1, H]


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over the valid elements of each set: `[B, S, H] -> [B, 1, H]`."""
    floor = torch.finfo(x.dtype).min
    return torch.where(mask > 0, x, floor).amax(dim=1, keepdim=True)  # [B, 1, H]


def skip(x: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor | None:
    """What a residual connection adds back: the input itself (equivariant), the set's mean or
    max broadcast to every element (the paper's pooled skips), or nothing."""
    if kind == "equivariant":
        return x  # [B, S, H]
    if kind == "mean":
        return masked_mean(x, mask)  # [B, 1, H], broadcast on addition
    if kind == "max":
        return masked_max(x, mask)  # [B, 1, H]
    return None


class ResidualBlock(nn.Module):
    """Two equivariant layers with a skip, in any variant of the paper's tables.

    Clean path (pre-norm, DS++): `skip(x) + W2(ReLU(N(W1(ReLU(N(x))))))`; nothing sits on the skip
    path, so the identity carries signal and gradient through any depth. Non-clean path
    (post-norm, ResNet style): `ReLU(skip(x) + N(W2(ReLU(N(W1 x)))))`. `residual="none"` drops
    the skip (plain Deep Sets at the same depth).
    """

    def __init__(self, hidden: int, norm: str | bool = "set", residual: str = "equivariant",
                 path: str = "clean") -> None:
        super().__init__()
        norm = ("set" if norm else "none") if isinstance(norm, bool) else norm
        check_variant(norm, residual, path)
        self.residual, self.clean = residual, path == "clean"
        self.norm1 = make_norm(norm, hidden)
        self.norm2 = make_norm(norm, hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, mask_out: bool = True) -> torch.Tensor:
        """`mask_out=False` leaves padding rows unzeroed for a caller that masks later: every
        statistic here is masked, and a padding row then evolves like one more cell."""
        # x [B, S, H], mask [B, S, 1]
        # Norm outputs keep junk in padding rows: only row-wise layers follow, every norm
        # masks its own statistics, and the output is masked here or by the caller.
        if self.clean:
            h = self.fc1(torch.relu(apply_norm(self.norm1, x, mask, False)))  # [B, S, H]
            h = self.fc2(torch.relu(apply_norm(self.norm2, h, mask, False)))  # [B, S, H]
        else:
            h = torch.relu(apply_norm(self.norm1, self.fc1(x), mask, False))  # [B, S, H]
            h = apply_norm(self.norm2, self.fc2(h), mask, False)  # [B, S, H]
        s = skip(x, mask, self.residual)  # [B, S, H], [B, 1, H] or None
        out = h if s is None else h + s  # [B, S, H]
        if not self.clean:
            out = torch.relu(out)
        return out * mask if mask_out else out  # [B, S, H]
