"""Set Transformer and Set Transformer++ for hematocrit from red-cell sets.

Set Transformer (Lee et al., 2019): multi-head attention blocks over the set, post-norm (layer
norm after each residual addition: the paper's "non-clean" path), pooled by attention (PMA).
Set Transformer++ (Zhang et al., ICML 2022): the same blocks with clean-path pre-norm residuals
and set norm, so the identity path carries signal through any depth. Every encoder variant of the
paper's Tables 1-3 is a configuration: `norm`, `residual`, `path` and depth (`blocks`).

Masks everywhere: padding never attends (its keys get zero weight), never enters a statistic
(the norms are mask-aware) and is zeroed after every block, so a set's prediction depends only on
its valid cells, in any order, with any amount of padding after them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from model.layers import apply_norm, check_variant, make_norm, masked_mean, skip, valid_mask
from model.set_regressor import SetRegressor

POOLINGS = ("pma", "mean")


@dataclass(frozen=True)
class SetTransformerConfig:
    """Architecture hyper-parameters; `PRESETS` and `PLAIN` hold the paper's two families."""

    in_features: int = 2  # volume fL, hemoglobin pg (1 for Normal Var)
    hidden: int = 128
    blocks: int = 16  # attention blocks in the encoder (the paper's "layers")
    heads: int = 4
    inducing: int = 0  # inducing points per ISAB block; 0 = full self-attention (SAB)
    decoder_layers: int = 3
    pooling: str = "pma"  # pma (attention pooling, one seed) | mean (masked mean)
    norm: str = "set"  # none | layer | feature | set
    residual: str = "equivariant"  # none | equivariant | mean | max
    path: str = "clean"  # clean (pre-norm, ST++) | non-clean (post-norm, original ST)

    def __post_init__(self) -> None:
        check_variant(self.norm, self.residual, self.path)
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling = {self.pooling!r}: expected one of {list(POOLINGS)}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden = {self.hidden} is not a multiple of heads = {self.heads}")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with `heads` heads; masked keys get exactly zero weight.

    As in the Set Transformer, the heads' outputs are concatenated without an output projection
    (the block's feed-forward layer follows).
    """

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.fc_q = nn.Linear(hidden, hidden)
        self.fc_k = nn.Linear(hidden, hidden)
        self.fc_v = nn.Linear(hidden, hidden)

    def forward(self, q: torch.Tensor, k: torch.Tensor, k_mask: torch.Tensor) -> torch.Tensor:
        # q [B, Nq, H], k [B, Nk, H], k_mask [B, Nk, 1]
        d = q.shape[-1] // self.heads
        qh = self.fc_q(q).unflatten(-1, (self.heads, d)).transpose(1, 2)  # [B, h, Nq, d]
        kh = self.fc_k(k).unflatten(-1, (self.heads, d)).transpose(1, 2)  # [B, h, Nk, d]
        vh = self.fc_v(k).unflatten(-1, (self.heads, d)).transpose(1, 2)  # [B, h, Nk, d]
        scores = qh @ kh.transpose(-1, -2) / math.sqrt(d)  # [B, h, Nq, Nk]
        keep = k_mask.transpose(1, 2).unsqueeze(1) > 0  # [B, 1, 1, Nk]
        scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)  # [B, h, Nq, Nk]
        weights = torch.softmax(scores, dim=-1)  # [B, h, Nq, Nk], 0 on padding keys
        return (weights @ vh).transpose(1, 2).flatten(2)  # [B, Nq, H]


class AttentionBlock(nn.Module):
    """MAB: queries attend to keys, then a feed-forward layer, each with a residual.

    Clean path (ST++): `h = skip(q) + Att(N(q), N(k))`, `out = skip(h) + ReLU(W N(h))`.
    Non-clean path (ST): `h = N(skip(q) + Att(q, k))`, `out = N(skip(h) + ReLU(W h))`.
    `skip` is the residual variant; `residual="none"` drops both skips.
    """

    def __init__(self, hidden: int, heads: int, *, norm: str, residual: str, path: str,
                 self_attention: bool, norm_queries: bool = True) -> None:
        super().__init__()
        self.residual, self.clean, self.self_attention = residual, path == "clean", self_attention
        self.attention = MultiHeadAttention(hidden, heads)
        self.norm_q = make_norm(norm, hidden) if norm_queries or not self.clean else None
        self.norm_k = make_norm(norm, hidden) if self.clean and not self_attention else None
        self.norm_f = make_norm(norm, hidden)
        self.fc = nn.Linear(hidden, hidden)

    def _add(self, x: torch.Tensor, x_mask: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        s = skip(x, x_mask, self.residual)  # [B, N, H], [B, 1, H] or None
        return update if s is None else s + update  # [B, N, H]

    def forward(self, q: torch.Tensor, q_mask: torch.Tensor, k: torch.Tensor,
                k_mask: torch.Tensor) -> torch.Tensor:
        # q [B, Nq, H], q_mask [B, Nq, 1], k [B, Nk, H], k_mask [B, Nk, 1]
        if self.clean:
            qn = apply_norm(self.norm_q, q, q_mask)  # [B, Nq, H]
            kn = qn if self.self_attention else apply_norm(self.norm_k, k, k_mask)  # [B, Nk, H]
            h = self._add(q, q_mask, self.attention(qn, kn, k_mask)) * q_mask  # [B, Nq, H]
            f = torch.relu(self.fc(apply_norm(self.norm_f, h, q_mask)))  # [B, Nq, H]
            return self._add(h, q_mask, f) * q_mask  # [B, Nq, H]
        h = self._add(q, q_mask, self.attention(q, k, k_mask)) * q_mask  # [B, Nq, H]
        h = apply_norm(self.norm_q, h, q_mask)  # [B, Nq, H]
        out = self._add(h, q_mask, torch.relu(self.fc(h))) * q_mask  # [B, Nq, H]
        return apply_norm(self.norm_f, out, q_mask)  # [B, Nq, H]


class SAB(nn.Module):
    """Self-attention block: every valid cell attends to every valid cell, O(S²)."""

    def __init__(self, hidden: int, heads: int, *, norm: str, residual: str, path: str) -> None:
        super().__init__()
        self.block = AttentionBlock(hidden, heads, norm=norm, residual=residual, path=path,
                                    self_attention=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x [B, S, H], mask [B, S, 1]
        return self.block(x, mask, x, mask)  # [B, S, H]


class ISAB(nn.Module):
    """Induced self-attention: `m` learned inducing points summarise the set, the cells attend
    to the summary, O(S·m). For large sets (1,000 cells) at depth.
    """

    def __init__(self, hidden: int, heads: int, inducing: int, *, norm: str, residual: str,
                 path: str) -> None:
        super().__init__()
        self.inducing = nn.Parameter(torch.empty(1, inducing, hidden))
        nn.init.xavier_uniform_(self.inducing)
        # The inducing points are parameters, not set elements: their block keeps the plain
        # (equivariant) skip and, on the clean path, does not normalise them.
        self.summarise = AttentionBlock(hidden, heads, norm=norm, residual="equivariant",
                                        path=path, self_attention=False, norm_queries=False)
        self.broadcast = AttentionBlock(hidden, heads, norm=norm, residual=residual, path=path,
                                        self_attention=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x [B, S, H], mask [B, S, 1]
        points = self.inducing.expand(x.shape[0], -1, -1)  # [B, m, H]
        every = torch.ones_like(points[..., :1])  # [B, m, 1]
        summary = self.summarise(points, every, x, mask)  # [B, m, H]
        return self.broadcast(x, mask, summary, every)  # [B, S, H]


class PMA(nn.Module):
    """Pooling by multi-head attention: one learned seed attends to the valid cells."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.seed = nn.Parameter(torch.empty(1, 1, hidden))
        nn.init.xavier_uniform_(self.seed)
        self.block = AttentionBlock(hidden, heads, norm="none", residual="equivariant",
                                    path="clean", self_attention=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x [B, S, H], mask [B, S, 1]
        seed = self.seed.expand(x.shape[0], -1, -1)  # [B, 1, H]
        one = torch.ones_like(seed[..., :1])  # [B, 1, 1]
        return self.block(seed, one, x, mask).squeeze(1)  # [B, H]


class SetTransformer(SetRegressor):
    """Embedding, `blocks` attention blocks (SAB, or ISAB with `inducing` points), a final norm
    on the clean path, PMA or masked-mean pooling, MLP decoder.
    """

    def __init__(self, config: SetTransformerConfig | None = None) -> None:
        config = config or SetTransformerConfig()
        super().__init__(config.in_features)
        self.config = config
        h, variant = config.hidden, {"norm": config.norm, "residual": config.residual,
                                     "path": config.path}
        self.embed = nn.Linear(config.in_features, h)
        self.blocks = nn.ModuleList(
            ISAB(h, config.heads, config.inducing, **variant) if config.inducing
            else SAB(h, config.heads, **variant) for _ in range(config.blocks))
        self.out_norm = make_norm(config.norm, h) if config.path == "clean" else None
        self.pool = PMA(h, config.heads) if config.pooling == "pma" else None
        layers: list[nn.Module] = []
        for _ in range(config.decoder_layers):
            layers += [nn.Linear(h, h), nn.ReLU()]
        layers.append(nn.Linear(h, 1))
        self.decoder = nn.Sequential(*layers)

    def forward_standardised(self, cells: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Prediction in standardised label units (what the loss sees), `[B]`."""
        # cells [B, S, F] raw fL/pg, lengths [B]
        mask = valid_mask(lengths, cells.shape[1])  # [B, S, 1]
        x = self.embed(self.standardise(cells, mask)) * mask  # [B, S, H]
        for block in self.blocks:
            x = block(x, mask)  # [B, S, H]
        x = apply_norm(self.out_norm, x, mask)  # [B, S, H]
        if self.pool is not None:
            pooled = self.pool(x, mask)  # [B, H]
        else:
            pooled = masked_mean(x, mask).squeeze(1)  # [B, H]
        return self.decoder(pooled).squeeze(-1)  # [B]


# The paper's two families as configurations: the original Set Transformer (layer norm,
# post-norm residuals) and Set Transformer++ (set norm, clean-path pre-norm residuals).
PLAIN = {"norm": "layer", "residual": "equivariant", "path": "non-clean"}
PLUS = {"norm": "set", "residual": "equivariant", "path": "clean"}

# Width/depth presets shared by both families; the paper trains 2 and 16 blocks at H = 128 with
# 4 heads and 32 inducing points.
PRESETS: dict[str, SetTransformerConfig] = {
    "paper": SetTransformerConfig(hidden=128, blocks=16, heads=4, inducing=32),
    "cpu": SetTransformerConfig(hidden=64, blocks=4, heads=4, inducing=16),
    "tiny": SetTransformerConfig(hidden=16, blocks=2, heads=2, inducing=0, decoder_layers=1),
}
