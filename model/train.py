"""Training loop for every set network (Deep Sets, DS++, Set Transformer, ST++): Adam + MSE
(the paper's settings), fresh random cell subsets every epoch, validation-based early stopping,
checkpoint and resume, CSV log and loss curve.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from model.data import SetData, load_split, normalisation_stats, random_subsets, train_val_split
from model.deepsets import PRESETS
from model.factory import ArchConfig, build_network, canonical_name, network_config, preset
from model.runtime_tuning import tune_malloc
from model.set_regressor import SetRegressor


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; `TRAIN_PRESETS` pairs them with a model preset."""

    preset: str = "cpu"
    model: ArchConfig = field(default_factory=lambda: PRESETS["cpu"])
    set_size: int = 256  # cells per set during training (fresh subset each epoch)
    eval_set_size: int = 1000  # cells per set for validation (all a sample usually has)
    batch_size: int = 64
    lr: float = 1e-4
    epochs: int = 60
    patience: int = 8  # epochs without validation improvement before stopping
    val_fraction: float = 0.1
    seed: int = 0
    limit: int | None = None  # use only the first N training sets (smoke runs)
    max_minutes: float | None = None  # wall-clock budget; stops after the epoch that crosses it
    arch: str = "deepsets_pp"  # a model.factory name; `model` holds its hyper-parameters

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


TRAIN_PRESETS: dict[str, TrainConfig] = {
    "paper": TrainConfig(preset="paper", model=PRESETS["paper"], set_size=1000, lr=1e-4,
                         epochs=200, patience=20),
    # Sized for a 2-core CPU: ~0.16 s per Adam step at batch 64, S = 256 (measured).
    "cpu": TrainConfig(preset="cpu", model=PRESETS["cpu"], set_size=256, lr=5e-4, epochs=60,
                       patience=8),
    "tiny": TrainConfig(preset="tiny", model=PRESETS["tiny"], set_size=64, eval_set_size=128,
                        batch_size=32, lr=1e-3, epochs=2, patience=2),
}


def train_preset(arch: str, size: str) -> TrainConfig:
    """The optimisation preset `size` with the family `arch` at that preset's depth and width."""
    if size not in TRAIN_PRESETS:
        raise ValueError(f"preset = {size!r}: expected one of {sorted(TRAIN_PRESETS)}")
    return replace(TRAIN_PRESETS[size], arch=canonical_name(arch), model=preset(arch, size))


@dataclass
class EpochRecord:
    epoch: int
    train_mse: float
    val_mse: float
    val_mae: float
    seconds: float


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_model(config: TrainConfig, train: SetData) -> SetRegressor:
    """A fresh model with the training split's normalisation stored in its buffers."""
    torch.manual_seed(config.seed)
    model = build_network({"name": config.arch, **config.model.as_dict()})
    stats = normalisation_stats(train)
    model.set_normalisation(torch.tensor(stats["input_mean"], dtype=torch.float32),
                            torch.tensor(stats["input_scale"], dtype=torch.float32),
                            float(stats["label_mean"]), float(stats["label_scale"]))
    return model


@torch.no_grad()
def predict(model: SetRegressor, cells: np.ndarray, *, batch_size: int = 64,
            set_size: int | None = None, seed: int = 12345,
            progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Hematocrit % for full sets `cells [N, C, 2]`; `set_size` < C uses a seeded subset.
    `progress(n)` is called after each batch of n sets."""
    model.eval()
    device = next(model.parameters()).device
    rng = np.random.default_rng(seed)
    out = np.empty(cells.shape[0], dtype=np.float64)
    for lo in range(0, cells.shape[0], batch_size):
        block = cells[lo : lo + batch_size]
        if set_size is not None:
            block = random_subsets(block, set_size, rng)
        x = torch.from_numpy(np.ascontiguousarray(block)).to(device)  # [b, S, 2]
        lengths = torch.full((x.shape[0],), x.shape[1], device=device)
        with _autocast(device):
            out[lo : lo + x.shape[0]] = model(x, lengths).float().cpu().numpy()
        if progress is not None:
            progress(x.shape[0])
    return out


def _autocast(device: torch.device) -> torch.autocast:
    # bf16 on CUDA (measured ~1 % output change, within the model's resampling spread);
    # CPU stays fp32.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def train(data_path: str | Path, run_dir: str | Path, config: TrainConfig, *,
          resume: bool = False, progress: bool = True) -> list[EpochRecord]:
    """Train, keeping `best.pt` (lowest validation MSE) and `last.pt` (for resume) in `run_dir`."""
    tune_malloc()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device()
    full = load_split(data_path, "train", config.limit)
    train_set, val_set = train_val_split(full, config.val_fraction, config.seed)
    model = build_model(config, train_set).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    history: list[EpochRecord] = []
    best_val, bad_epochs, start_epoch = math.inf, 0, 0
    last_path = run_dir / "last.pt"
    if resume and last_path.exists():
        history, best_val, bad_epochs, start_epoch = load_last(last_path, model, optimiser,
                                                               config.lr)
    (run_dir / "train_config.json").write_text(json.dumps(config.as_dict(), indent=2))
    label_mean, label_scale = float(model.label_mean), float(model.label_scale)
    started = time.monotonic()
    for epoch in range(start_epoch, config.epochs):
        t0 = time.monotonic()
        train_mse = _train_epoch(model, optimiser, train_set, config, epoch, device,
                                 label_mean, label_scale, progress)
        val_pred = predict(model, val_set.cells, batch_size=config.batch_size,
                           set_size=config.eval_set_size)
        err = val_pred - val_set.labels
        record = EpochRecord(epoch + 1, train_mse, float(np.mean(err**2)),
                             float(np.mean(np.abs(err))), time.monotonic() - t0)
        history.append(record)
        if record.val_mse < best_val:
            best_val, bad_epochs = record.val_mse, 0
            torch.save(best_state(model, config, record), run_dir / "best.pt")
        else:
            bad_epochs += 1
        torch.save(last_state(model, optimiser, history, best_val, bad_epochs), last_path)
        _write_history(run_dir, history)
        if progress:
            print(f"epoch {record.epoch}: train {train_mse:.3f}  val MSE {record.val_mse:.3f}  "
                  f"MAE {record.val_mae:.3f}  ({record.seconds:.0f} s)", flush=True)
        out_of_time = (config.max_minutes is not None
                       and time.monotonic() - started > 60 * config.max_minutes)
        if bad_epochs >= config.patience or out_of_time:
            break
    return history


def _train_epoch(model: SetRegressor, optimiser: torch.optim.Optimizer, data: SetData,
                 config: TrainConfig, epoch: int, device: torch.device, label_mean: float,
                 label_scale: float, progress: bool) -> float:
    """One pass over the training sets; the epoch number seeds order and cell subsets, so a
    resumed run sees exactly the batches an uninterrupted one would have.
    """
    model.train()
    steps = math.ceil(len(data) / config.batch_size)
    total, count = 0.0, 0
    bar = _ProgressBar(steps, f"epoch {epoch + 1}/{config.epochs}") if progress else None
    for step, (idx, cells) in enumerate(epoch_batches(data, config, epoch)):
        x = torch.from_numpy(np.ascontiguousarray(cells)).to(device)  # [b, S, 2]
        target = torch.from_numpy((data.labels[idx] - label_mean) / label_scale).to(device)
        loss = train_step(model.forward_standardised, optimiser, x, target)
        total += loss * len(idx)
        count += len(idx)
        if bar is not None:
            bar.update(step + 1, f"loss {total / count * label_scale**2:.3f}")
    if bar is not None:
        bar.close()
    return total / count * label_scale**2  # MSE in %² (de-standardised)


def epoch_batches(data: SetData, config: TrainConfig, epoch: int, *, rank: int = 0,
                  world: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(set indices [b], cells [b, S, 2]) for every step of `epoch`. The epoch number seeds
    order and cell subsets, so a resumed run sees the batches an uninterrupted one would. With
    `world` data-parallel workers, rank `rank` gets its share of each global batch: every rank
    takes the same number of steps, and the global batch (the optimiser's) stays the same.
    """
    rng = np.random.default_rng([config.seed, epoch])
    order = rng.permutation(len(data))
    cell_rng = rng if world == 1 else np.random.default_rng([config.seed, epoch, rank])
    for step in range(math.ceil(len(order) / config.batch_size)):
        batch = order[step * config.batch_size : (step + 1) * config.batch_size]
        idx = np.sort(batch[rank::world] if len(batch) > rank else batch[:1])
        yield idx, random_subsets(data.cells[idx], config.set_size, cell_rng)  # [b, S, 2]


def train_step(forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               optimiser: torch.optim.Optimizer, x: torch.Tensor, target: torch.Tensor) -> float:
    """One Adam step on MSE of standardised labels; `forward(x [b, S, 2], lengths [b])` is the
    model (or its data-parallel wrapper) in standardised units. Returns the batch loss."""
    lengths = torch.full((x.shape[0],), x.shape[1], device=x.device)
    with _autocast(x.device):
        pred = forward(x, lengths)  # [b]
    loss = torch.mean((pred.float() - target) ** 2)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return float(loss.item())


def best_state(model: SetRegressor, config: TrainConfig, record: EpochRecord) -> dict:
    """What `best.pt` holds (read by `load_trained`, `hct evaluate` and `hct export`)."""
    return {"model": model.state_dict(), "config": config.as_dict(), "epoch": record.epoch,
            "val_mse": record.val_mse}


def last_state(model: SetRegressor, optimiser: torch.optim.Optimizer,
               history: list[EpochRecord], best_val: float, bad_epochs: int) -> dict:
    """What `last.pt` holds: everything a resumed run needs."""
    return {"model": model.state_dict(), "optimiser": optimiser.state_dict(),
            "history": [asdict(r) for r in history], "best_val": best_val,
            "bad_epochs": bad_epochs, "epoch": history[-1].epoch}


def load_last(path: str | Path, model: SetRegressor, optimiser: torch.optim.Optimizer,
              lr: float) -> tuple[list[EpochRecord], float, int, int]:
    """Restore `last.pt` into `model` and `optimiser`; (history, best_val, bad_epochs, epoch)."""
    state = torch.load(path, map_location=next(model.parameters()).device, weights_only=False)
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    for group in optimiser.param_groups:  # the resumed run's config sets the lr (a schedule
        group["lr"] = lr  # step is `--resume --lr <lower>`), not the checkpoint
    history = [EpochRecord(**r) for r in state["history"]]
    return history, state["best_val"], state["bad_epochs"], state["epoch"]


class _ProgressBar:
    """The epoch's bar: `model.progress` (rich: rate, ETA, loss; quiet when not a terminal)."""

    def __init__(self, total: int, label: str) -> None:
        from model.progress import progress_bar

        self._context = progress_bar(total, label, unit="batches")
        self._bar = self._context.__enter__()
        self._done = 0

    def update(self, done: int, text: str) -> None:
        self._bar.advance(done - self._done)
        self._bar.note(text)
        self._done = done

    def close(self) -> None:
        self._context.__exit__(None, None, None)


def _write_history(run_dir: Path, history: list[EpochRecord]) -> None:
    with (run_dir / "history.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(asdict(history[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in history)
    from model.plots import loss_curve

    loss_curve(history, run_dir / "loss_curve.png")


def load_trained(path: str | Path) -> tuple[SetRegressor, TrainConfig]:
    """A model and its training config from `best.pt` (any architecture; checkpoints written
    before `arch` existed are Deep Sets++)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    raw = dict(state["config"])
    arch = canonical_name(str(raw.get("arch", "deepsets_pp")))
    model_config = network_config({"name": arch, **raw["model"]})
    config = replace(TrainConfig(), **{**raw, "arch": arch, "model": model_config})
    model = build_network({"name": arch, **model_config.as_dict()})
    model.load_state_dict(state["model"])
    return model.eval(), config
