"""PNG plots: the loss curve an ML engineer checks, and the agreement plots a clinician expects
(predicted vs measured, Bland–Altman with bias and 95 % limits of agreement).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Protocol

import numpy as np


class _Epoch(Protocol):
    epoch: int
    train_mse: float
    val_mse: float


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve(history: Sequence[_Epoch], path: Path) -> None:
    """Train and validation MSE per epoch."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = [r.epoch for r in history]
    ax.plot(epochs, [r.train_mse for r in history], label="train MSE")
    ax.plot(epochs, [r.val_mse for r in history], label="validation MSE")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (%²)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def predicted_vs_measured(measured: np.ndarray, predicted: np.ndarray, path: Path,
                          title: str) -> None:
    """Scatter with the identity line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(measured, predicted, s=3, alpha=0.3)
    lo, hi = float(min(measured.min(), predicted.min())), float(max(measured.max(),
                                                                    predicted.max()))
    ax.plot([lo, hi], [lo, hi], color="black", lw=1)
    ax.set_xlabel("measured hematocrit (%)")
    ax.set_ylabel("predicted hematocrit (%)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def bland_altman(measured: np.ndarray, predicted: np.ndarray, path: Path,
                 title: str) -> dict[str, float]:
    """Difference vs mean, with bias and 95 % limits of agreement; returns those three."""
    diff = predicted - measured
    mean = (predicted + measured) / 2
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1))
    limits = {"bias": bias, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(mean, diff, s=3, alpha=0.3)
    ax.axhline(bias, color="black", lw=1, label=f"bias {bias:+.2f}")
    for key in ("loa_low", "loa_high"):
        ax.axhline(limits[key], color="red", lw=1, ls="--")
    ax.set_xlabel("mean of predicted and measured (%)")
    ax.set_ylabel("predicted − measured (%)")
    ax.set_title(f"{title}: 95 % LoA [{limits['loa_low']:.2f}, {limits['loa_high']:.2f}]")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return limits
