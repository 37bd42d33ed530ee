"""`hct train --engine ray`: data-parallel training of any set network with Ray Train's
`TorchTrainer` (gloo on CPUs, NCCL on GPUs), on `model.train`'s own pieces: the same batches
(`epoch_batches`, each worker taking its share of every global batch), the same step
(`train_step`, through DistributedDataParallel), the same checkpoints (`best_state`,
`last_state`), so `hct evaluate`, `hct export` and `hct train --resume` read the result.

Each epoch every worker trains on its share, validates its share of the validation sets, and
the sums are all-reduced; rank 0 reports `best.pt` and `last.pt` as a Ray checkpoint. When a
worker dies, Ray restarts the group (`FailureConfig`) and every worker resumes from the latest
reported checkpoint; at the end its files are copied into `run_dir` beside history.csv.

Ray is an optional extra (`pip install hct[ray]`): it is imported only inside these functions.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.data import load_split, train_val_split
from model.set_regressor import SetRegressor
from model.train import (
    EpochRecord,
    TrainConfig,
    _write_history,
    best_state,
    build_model,
    epoch_batches,
    last_state,
    load_last,
    predict,
    train_step,
)

EpochHook = Callable[[int, int], None]  # (rank, finished epoch) -> None


class _Standardised(torch.nn.Module):
    """The network's standardised output as `forward`, so DistributedDataParallel (which
    synchronises gradients around `forward`) wraps the function the loss is taken on."""

    def __init__(self, net: SetRegressor) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net.forward_standardised(x, lengths)  # [b]


def train_on_ray(data_path: str | Path, run_dir: str | Path, config: TrainConfig, *,
                 workers: int = 2, use_gpu: bool | None = None, address: str | None = None,
                 max_failures: int = 2, resume: bool = False,
                 epoch_hook: EpochHook | None = None) -> list[EpochRecord]:
    """Train with `workers` data-parallel Ray workers; `best.pt`, `last.pt`, history.csv and
    the loss curve end in `run_dir` as `model.train.train` leaves them.

    Joins the running Ray session, else `address` (or RAY_ADDRESS), else starts a local one.
    `resume` continues from `run_dir/last.pt`; `epoch_hook(rank, epoch)` runs on every worker
    after each reported epoch (fault-injection in tests).
    """
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        gpu = bool(ray.cluster_resources().get("GPU", 0)) if use_gpu is None else use_gpu
        resume_from = run_dir / "last.pt" if resume and (run_dir / "last.pt").exists() else None
        (run_dir / "train_config.json").write_text(json.dumps(config.as_dict(), indent=2))
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={"data": str(Path(data_path).resolve()), "config": config,
                               "resume_from": None if resume_from is None else str(resume_from),
                               "epoch_hook": epoch_hook},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpu),
            run_config=RunConfig(
                name="ray_train", storage_path=str(run_dir / "ray"),
                failure_config=FailureConfig(max_failures=max_failures),
                checkpoint_config=CheckpointConfig(num_to_keep=2)))
        result = trainer.fit()
    finally:
        if started:
            ray.shutdown()
    if result.checkpoint is None:
        raise RuntimeError(f"Ray training reported no checkpoint ({result.error})")
    with result.checkpoint.as_directory() as folder:
        for name in ("best.pt", "last.pt"):
            shutil.copyfile(Path(folder) / name, run_dir / name)
    state = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)
    history = [EpochRecord(**r) for r in state["history"]]
    _write_history(run_dir, history)
    return history


def _worker_loop(loop: dict[str, Any]) -> None:
    """One Ray Train worker: its share of every batch, all-reduced validation, reports."""
    import ray.train
    import ray.train.torch

    config: TrainConfig = loop["config"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    full = load_split(loop["data"], "train", config.limit)
    train_set, val_set = train_val_split(full, config.val_fraction, config.seed)
    model = build_model(config, train_set).to(device)  # seeded: the same start on every rank
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    history: list[EpochRecord] = []
    best_val, bad_epochs, start_epoch = math.inf, 0, 0
    best: dict | None = None
    checkpoint = ray.train.get_checkpoint()  # set when Ray restarts the group after a failure
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            history, best_val, bad_epochs, start_epoch = load_last(
                Path(folder) / "last.pt", model, optimiser, config.lr)
            best = torch.load(Path(folder) / "best.pt", map_location="cpu", weights_only=False)
    elif loop["resume_from"]:
        history, best_val, bad_epochs, start_epoch = load_last(loop["resume_from"], model,
                                                               optimiser, config.lr)
        best_path = Path(loop["resume_from"]).with_name("best.pt")
        if best_path.exists():
            best = torch.load(best_path, map_location="cpu", weights_only=False)
    parallel = ray.train.torch.prepare_model(_Standardised(model))  # DDP when world > 1
    label_mean, label_scale = float(model.label_mean), float(model.label_scale)
    val_cells, val_labels = val_set.cells[rank::world], val_set.labels[rank::world]
    begun = _now()
    for epoch in range(start_epoch, config.epochs):
        started = _now()
        parallel.train()
        total, count = 0.0, 0
        for idx, cells in epoch_batches(train_set, config, epoch, rank=rank, world=world):
            x = torch.from_numpy(np.ascontiguousarray(cells)).to(device)  # [b, S, 2]
            target = torch.from_numpy((train_set.labels[idx] - label_mean)
                                      / label_scale).to(device)
            total += train_step(parallel, optimiser, x, target) * len(idx)
            count += len(idx)
        err = predict(model, val_cells, batch_size=config.batch_size,
                      set_size=config.eval_set_size) - val_labels
        out_of_time = (config.max_minutes is not None
                       and _now() - begun > 60 * config.max_minutes)
        sums = torch.tensor([total, count, float(np.sum(err**2)), float(np.sum(np.abs(err))),
                             err.size, float(out_of_time)], dtype=torch.float64)
        if world > 1:  # every rank the same numbers, so every rank makes the same decisions
            torch.distributed.all_reduce(sums)
        total, count, squared, absolute, n_val, late = sums.tolist()
        record = EpochRecord(epoch + 1, total / count * label_scale**2, squared / n_val,
                             absolute / n_val, _now() - started)
        history.append(record)
        if record.val_mse < best_val:
            best_val, bad_epochs = record.val_mse, 0
            best = best_state(model, config, record)
        else:
            bad_epochs += 1
        _report(rank, record, best, last_state(model, optimiser, history, best_val, bad_epochs))
        if loop["epoch_hook"] is not None:
            loop["epoch_hook"](rank, record.epoch)
        if bad_epochs >= config.patience or late > 0:
            break


def _report(rank: int, record: EpochRecord, best: dict | None, last: dict) -> None:
    """Every rank reports the epoch (Ray's barrier); rank 0 attaches best.pt and last.pt."""
    import ray.train

    if rank != 0:
        ray.train.report(asdict(record))
        return
    with tempfile.TemporaryDirectory(prefix="hct-ckpt-") as folder:
        torch.save(best, Path(folder) / "best.pt")
        torch.save(last, Path(folder) / "last.pt")
        ray.train.report(asdict(record),
                         checkpoint=ray.train.Checkpoint.from_directory(folder))


def _now() -> float:
    import time

    return time.monotonic()
