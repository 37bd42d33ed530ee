"""Reproduction of "Set Norm and Equivariant Skip Connections: Putting the Deep in Deep Sets"
(Zhang, Tozzo, Higgins, Ranganath, ICML 2022): its Table 4 models and its Table 1-3 encoder
variants, on what can be run here, with the paper's figure beside every row where we have it.

- Normal Var (the paper's task; data from bench/paper_normalvar.py): Deep Sets, DS++, Set
  Transformer, ST++ at the paper's shallow and deep depths (Table 4: DS 3/50 layers, ST 2/16
  blocks), and the norm / residual / path grid of Tables 1-3 for both families.
- The synthetic hematocrit cohort (the Flow-RBC stand-in): the four Table 4 models (reduced
  depth/width here; the paper's depths and the `cpu` preset sizes in `--full`), test MSE with
  paired bootstrap CIs against `cbc_indices`, `moments` and the oracle floor, plus CPU cost per
  prediction (matmul FLOPs, ms).
- Digit variance: sets of scikit-learn's bundled 8 x 8 digits, label = variance of the digits
  (the paper's MNIST Var with the small digits; MNIST itself cannot be downloaded here).

Every model trains for a fixed number of epochs (Adam steps are recorded), never for a wall-clock
budget, so a row does not depend on how loaded the machine was.

    python -m bench.paper_tables            # reduced: 9 CPU-minutes (45 min on the loaded 2 cores)
    python -m bench.paper_tables --tiny     # smoke size (tests)
    python -m bench.paper_tables --full --device cuda   # paper sizes, 3 seeds (GPU)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.paper_figures import DEPTHS, GRID_DEFAULT, PAPER, variant_label
from bench.paper_normalvar import (
    BenchConfig,
    NormalVarData,
    machine_info,
    make_sets,
    train_and_test,
)
from bench.paper_report import to_markdown
from bench.results_io import write_results
from model.factory import LABELS, network_config
from model.layers import NORMS, RESIDUALS


@dataclass(frozen=True)
class HctModel:
    """One hematocrit row: a Table 4 family at a depth and width (`size` names the choice)."""

    arch: str
    blocks: int
    hidden: int
    size: str
    heads: int = 4
    inducing: int = 0


def _hct_models(size: str, ds_blocks: int, st_blocks: int, hidden: int, heads: int,
                inducing: int) -> tuple[HctModel, ...]:
    return tuple(HctModel(arch, st_blocks if arch.startswith("set_transformer") else ds_blocks,
                          hidden, size, heads, inducing) for arch in DEPTHS)


@dataclass(frozen=True)
class Sizes:
    """One mode's sizes. Training length is in epochs, never minutes: `epochs` for the set
    tasks, `hct_epochs` for the cohort (no early stop; the best validation epoch is kept)."""

    name: str
    nv_train: int
    nv_test: int
    nv_set: int
    hidden: int
    heads: int
    epochs: int
    lr: float
    seeds: int
    grid: tuple[str, ...]  # families whose Tables 1-3 grid runs (at the deep depth)
    cohort_patients: int
    cohort_cells: int
    hct_models: tuple[HctModel, ...]
    hct_epochs: int
    hct_lr: float
    hct_set_size: int
    digits_sets: int
    digits_epochs: int


TINY = Sizes("tiny", 64, 32, 16, 8, 2, 1, 1e-3, 1, ("deepsets_pp",), 120, 60,
             _hct_models("tiny", 1, 1, 8, 2, 0), 1, 1e-3, 60, 64, 1)
# Reduced hematocrit rows: Table 4's shallow and deep depths (DS 3/50 layers, ST 2/16 blocks)
# at width 32, and Deep Sets at 8 layers (between the two).
REDUCED = Sizes("reduced", 2000, 500, 64, 16, 2, 15, 1e-3, 1,
                ("deepsets_pp", "set_transformer_pp"), 1500, 300,
                tuple(m for m in _hct_models("reduced", 4, 2, 32, 4, 16)
                      if not m.arch.startswith("set_transformer"))
                + _hct_models("shallow", 1, 2, 32, 4, 16) + _hct_models("deep", 25, 16, 32, 4, 16),
                25, 1e-3, 128, 1000, 10)
FULL = Sizes("full", 10_000, 1_000, 1_000, 128, 4, 50, 1e-4, 3,
             ("deepsets_pp", "set_transformer_pp"), 20_000, 1000,
             _hct_models("shallow", 1, 2, 128, 4, 32) + _hct_models("deep", 25, 16, 128, 4, 32)
             + _hct_models("cpu", 8, 4, 64, 4, 16), 30,
             1e-4, 1000, 10_000, 50)


def _arch(name: str, blocks: int, sizes: Sizes, in_features: int, **variant: Any) -> Any:
    """The mode's defaults for a family; `variant` (norm, heads, inducing, ...) overrides them."""
    fields: dict[str, Any] = {"name": name, "in_features": in_features, "hidden": sizes.hidden,
                              "blocks": blocks, "decoder_layers": 3 if sizes.name != "tiny" else 1}
    if name.startswith("set_transformer"):
        fields |= {"heads": sizes.heads, "inducing": 32 if sizes.name == "full" else 0}
    else:
        fields["pooling"] = "sum"  # the paper's Deep Sets pooling
    return network_config(fields | variant)


def _bench(sizes: Sizes, seed: int, device: str, epochs: int) -> BenchConfig:
    return BenchConfig(train_sets=sizes.nv_train, test_sets=sizes.nv_test, set_size=sizes.nv_set,
                       hidden=sizes.hidden, lr=sizes.lr, epochs=epochs, minutes=None,
                       seed=seed, device=device, threads=1)


def _row(task: str, table: str, arch: str, depth: int, variant: str, result: dict[str, Any],
         seeds: list[dict[str, Any]]) -> dict[str, Any]:
    mses = [r["test_mse"] for r in seeds]
    paper = PAPER.get((task, arch, depth))
    return {"task": task, "table": table, "model": LABELS[arch], "arch": arch, "depth": depth,
            "variant": variant, "hidden": result["hidden"], "test_mse": float(np.mean(mses)),
            "test_mse_sd": float(np.std(mses)) if len(mses) > 1 else None, "seeds": len(mses),
            "label_var": result["label_var"], "epochs": result["epochs"],
            "steps": result["steps"],
            "wall_s": result["wall_s"], "parameters": result["parameters"],
            "paper_mse": paper[0] if paper else None, "paper_note": paper[1] if paper else ""}


def _run_set_task(task: str, sizes: Sizes, device: str, data: list[tuple[Any, Any]],
                  in_features: int, epochs: int, progress: bool,
                  grid_only: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Table 4 (and, for Normal Var, the Tables 1-3 grid of `sizes.grid`) on one set task.

    The grid varies one knob at a time from the ++ default (set norm, equivariant residual,
    clean path); its default cell is the Table 4 deep row of the same family, run once.
    `grid_only` runs just those families' grid cells (no Table 4 rows, no default cell): their
    default cells come from the Table 4 rows when the runs are merged."""
    rows = []
    jobs: list[tuple[str, str, int, str, dict[str, Any]]] = []
    for arch, depths in DEPTHS.items():
        for depth, blocks in depths if not grid_only else ():
            jobs.append(("Table 4", arch, depth, "family default", {"blocks": blocks}))
    if task == "normalvar":
        for family in grid_only or sizes.grid:
            depth, blocks = DEPTHS[family][1]
            variants = ([{**GRID_DEFAULT, "norm": n} for n in NORMS if n != "set"]
                        + [{**GRID_DEFAULT, "residual": r} for r in RESIDUALS
                           if r != "equivariant"]
                        + [{**GRID_DEFAULT, "path": "non-clean"}])
            if not grid_only:
                jobs.append(("Tables 1-3", family, depth, "default", {}))
            for v in variants:
                jobs.append(("Tables 1-3", family, depth, variant_label(v),
                             {"blocks": blocks, **v}))
    for table, arch, depth, label, fields in jobs:
        if label == "default":  # the grid's default cell is the Table 4 deep row
            base = next(r for r in rows if r["table"] == "Table 4" and r["arch"] == arch
                        and r["depth"] == depth)
            rows.append({**base, "table": table, "variant": variant_label(GRID_DEFAULT)
                         + " (the Table 4 run)"})
            continue
        config = _arch(arch, sizes=sizes, in_features=in_features, **fields)
        per_seed = []
        for seed, (train, test) in enumerate(data):
            bench = replace(_bench(sizes, seed, device, epochs), set_size=train.cells.shape[1])
            per_seed.append(train_and_test(f"{arch}-{depth}", config, bench, train, test,
                                           progress=False))
        rows.append(_row(task, table, arch, depth, label, per_seed[0], per_seed))
        if progress:
            r = rows[-1]
            print(f"{task:10s} {table:10s} {r['model']:18s} {depth:3d} {label:45s} "
                  f"MSE {r['test_mse']:.4f} ({r['steps']} steps, {r['wall_s']:.0f} s)",
                  file=sys.stderr, flush=True)
    return rows


def normal_var(sizes: Sizes, device: str, progress: bool,
               grid_only: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    data = []
    for seed in range(sizes.seeds):
        rng = np.random.default_rng(seed)
        data.append((make_sets(sizes.nv_train, sizes.nv_set, rng),
                     make_sets(sizes.nv_test, sizes.nv_set, rng)))
    return _run_set_task("normalvar", sizes, device, data, 1, sizes.epochs, progress,
                         grid_only)


def digit_sets(n_sets: int, images: np.ndarray, digits: np.ndarray, rng: np.random.Generator,
               size: int = 10) -> NormalVarData:
    """Sets of `size` digit images `[N, size, 64]`, label = variance of their digit values."""
    pick = rng.integers(0, images.shape[0], (n_sets, size))  # [N, size]
    cells = images[pick].astype(np.float32)  # [N, size, 64]
    targets = np.var(digits[pick].astype(np.float64), axis=1)  # [N]
    return NormalVarData(cells=cells, targets=targets, mu=np.zeros(n_sets),
                         sigma2=np.zeros(n_sets))


def digit_variance(sizes: Sizes, device: str, progress: bool) -> list[dict[str, Any]]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, digits = bunch.data / 16.0, bunch.target  # [1797, 64], [1797]
    order = np.random.default_rng(0).permutation(len(digits))
    cut = int(0.7 * len(order))  # disjoint images for train and test sets
    tr, te = order[:cut], order[cut:]
    data = []
    for seed in range(sizes.seeds):
        rng = np.random.default_rng(100 + seed)
        data.append((digit_sets(sizes.digits_sets, images[tr], digits[tr], rng),
                     digit_sets(max(sizes.digits_sets // 4, 16), images[te], digits[te], rng)))
    return _run_set_task("digitvar", sizes, device, data, 64, sizes.digits_epochs, progress)


def _cost(model: torch.nn.Module, cells: int = 1000) -> dict[str, float]:
    """Matmul FLOPs and CPU ms (1 thread, batch 1) for one prediction on `cells` cells."""
    from torch.utils.flop_counter import FlopCounterMode

    model = model.cpu().eval()
    x = 90 + 10 * torch.rand(1, cells, 2)
    n = torch.tensor([cells])
    with FlopCounterMode(display=False) as counter:  # its module tracker needs autograd on
        model(x, n)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = []
        with torch.no_grad():
            for _ in range(7):
                t0 = time.perf_counter()
                model(x, n)
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(previous)
    return {"mflop": counter.get_total_flops() / 1e6, "cpu_ms": 1000 * float(np.median(times))}


def _layers(m: HctModel) -> int:
    """The depth as the paper counts it: Table 4's figure at its block counts, else 2 layers
    per Deep Sets block and one per attention block."""
    if m.arch.startswith("set_transformer"):
        return m.blocks
    return next((d for d, b in DEPTHS[m.arch] if b == m.blocks), 2 * m.blocks)


def hematocrit(sizes: Sizes, device: str, progress: bool,
               cohort: Path | None = None, only: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The four Table 4 models (at `sizes.hct_models` depths/widths) on a synthetic cohort:
    `cohort` if given, else a fresh one of `sizes.cohort_patients` patients. `only` (row keys,
    `arch@size`) trains just those rows; the cohort, baselines and bootstrap draws are the same
    in every run, so rows of separate runs merge into one paired table."""
    from ingestion.synthetic.cohort import simulate_cohort
    from model.baselines import BaselineSet
    from model.data import load_split
    from model.scoring import REDUCTION, bootstrap_scores
    from model.train import TrainConfig, load_trained, predict, train

    rows, preds = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        path = cohort
        if path is None:
            path = Path(tmp) / "cohort.h5"
            simulate_cohort(path, sizes.cohort_patients, sizes.cohort_cells, seed=0)
        test = load_split(path, "test")
        full_train = load_split(path, "train")
        cells = int(test.cells.shape[1])
        baselines = BaselineSet.fit(full_train.cells, None, full_train.labels)
        preds |= baselines.predict(test.cells)
        for m in sizes.hct_models:
            key = f"{m.arch}@{m.size}"
            if only and key not in only:
                continue
            fields: dict[str, Any] = {"blocks": m.blocks}
            if m.arch.startswith("set_transformer"):
                fields |= {"heads": m.heads, "inducing": m.inducing}
            config = _arch(m.arch, sizes=replace(sizes, hidden=m.hidden), in_features=2,
                           **fields)
            if not m.arch.startswith("set_transformer"):
                config = replace(config, pooling="mean")  # the project's Deep Sets pooling
            tc = TrainConfig(preset=m.size, arch=m.arch, model=config,
                             set_size=min(sizes.hct_set_size, cells), eval_set_size=cells,
                             batch_size=64, lr=sizes.hct_lr, epochs=sizes.hct_epochs,
                             patience=sizes.hct_epochs, max_minutes=None)
            t0 = time.perf_counter()
            history = train(path, Path(tmp) / key, tc, progress=False)
            train_s = time.perf_counter() - t0
            model, _ = load_trained(Path(tmp) / key / "best.pt")
            preds[key] = predict(model, test.cells)
            best = min(history, key=lambda r: r.val_mse)
            rows.append({"key": key, "arch": m.arch, "model": LABELS[m.arch], "size": m.size,
                         "blocks": m.blocks, "layers": _layers(m),
                         "hidden": m.hidden, "inducing": fields.get("inducing"),
                         "epochs": len(history), "best_epoch": best.epoch,
                         "parameters": sum(p.numel() for p in model.parameters()),
                         "train_s": round(train_s, 1), **_cost(model)})
            if progress:
                print(f"hematocrit {LABELS[m.arch]:18s} {m.size:8s} {len(history)} epochs "
                      f"({train_s:.0f} s)", file=sys.stderr, flush=True)
        if test.oracle is not None:
            preds["oracle_hct"] = test.oracle.astype(np.float64)
    scores = bootstrap_scores(test.labels, preds, reference="cbc_indices", n_boot=1000, seed=0)
    model_keys = {r["key"] for r in rows}
    for r in rows:
        s = scores[r["key"]]
        r["test_mse"] = s["mse"].as_dict()
        r["mse_reduction_vs_cbc_pct"] = s[REDUCTION].as_dict()
        paper = PAPER.get(("hematocrit", r["arch"], DEPTHS[r["arch"]][1][0]))
        r["paper_mse_deep"] = paper[0] if paper else None
    return {"n_test": len(test), "patients": len(test) + len(full_train), "cells": cells,
            "cohort": str(cohort) if cohort is not None else None,
            "epochs": sizes.hct_epochs, "lr": sizes.hct_lr, "set_size": sizes.hct_set_size,
            "rows": rows, "baselines": {k: scores[k]["mse"].as_dict()
                                        for k in scores if k not in model_keys}}


def run(sizes: Sizes, device: str, tasks: list[str], progress: bool = True,
        cohort: Path | None = None, grid_only: tuple[str, ...] = (),
        hct_only: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every task in `tasks`; on CPU torch runs on 1 thread (restored afterwards): on a shared
    2-core machine one thread is faster per step than two waiting on each other."""
    start = time.perf_counter()
    set_rows: list[dict[str, Any]] = []
    report: dict[str, Any] = {"mode": sizes.name, "sizes": asdict(sizes), "device": device}
    previous_threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        if "normalvar" in tasks:
            set_rows += normal_var(sizes, device, progress, grid_only)
        if "digitvar" in tasks:
            set_rows += digit_variance(sizes, device, progress)
        report["set_tasks"] = set_rows
        if "hematocrit" in tasks:
            report["hematocrit"] = hematocrit(sizes, device, progress, cohort, hct_only)
    finally:
        torch.set_num_threads(previous_threads)
    report["total_wall_s"] = round(time.perf_counter() - start, 1)
    report["machine"] = machine_info(device)
    report["notes"] = notes(sizes)
    return report


def notes(sizes: Sizes) -> list[str]:
    """What a reader needs to weigh the rows: sizes, omissions, stand-ins."""
    hct_st = sorted({f"{m.inducing} points ({m.size})" if m.inducing else f"SAB ({m.size})"
                     for m in sizes.hct_models if m.arch.startswith("set_transformer")})
    return [
        f"Mode {sizes.name}: Normal Var {sizes.nv_train:,}/{sizes.nv_test:,} sets of "
        f"{sizes.nv_set} draws, width {sizes.hidden}, {sizes.epochs} epochs per model "
        f"(Adam lr {sizes.lr:g}, batch 64), {sizes.seeds} seed(s); depths are the paper's "
        "(Table 4). The paper's figures are at H = 128, S = 1,000, 10,000 sets, 50 epochs at lr "
        "1e-4: compare orderings, not values, below the full mode.",
        "Tables 1-3 grid: one knob at a time away from set norm / equivariant residual / clean "
        f"path, for {', '.join(LABELS[f] for f in sizes.grid) or 'no family'} at the deep "
        "depth" + ("" if set(sizes.grid) == {"deepsets_pp", "set_transformer_pp"} else
                   "; the Set Transformer++ grid (7 more 16-block rows, each as long as the "
                   "Table 4 Set Transformer++ 16 row) runs in the full mode only") + ".",
        "MNIST, ModelNet40 and CelebA cannot be downloaded here (no internet beyond package "
        "registries); digit variance uses scikit-learn's bundled 8×8 digits instead.",
        "Flow-RBC (the paper's hematocrit data) is not public-downloadable here; the hematocrit "
        "rows use the project's synthetic cohort, so their MSEs are not comparable with the "
        "paper's in value.",
        "Set Transformer rows use full self-attention (SAB) below the full mode and ISAB with 32 "
        "inducing points in it, as the paper's code does; hematocrit ST rows use ISAB ("
        + ", ".join(hct_st) + ").",
        "Hematocrit sizes: " + "; ".join(
            f"{size}: " + ", ".join(f"{LABELS[m.arch]} {_layers(m)} layers H {m.hidden}"
                                    for m in sizes.hct_models if m.size == size)
            for size in dict.fromkeys(m.size for m in sizes.hct_models))
        + ". `shallow` and `deep` are Table 4's depths; the paper's Flow-RBC figures are for "
        "its deep models (DS++ 50 layers, ST++ 16), shown beside the rows at those depths.",
    ]


def _set_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["task"], row["table"], row["arch"], row["depth"], row["variant"]


def _with_grid_defaults(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in table order (task, Table 4 before the grid, families in DEPTHS order), each grid
    given its default cell: a copy of its family's Table 4 deep row."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    default = variant_label(GRID_DEFAULT) + " (the Table 4 run)"
    for family in dict.fromkeys(r["arch"] for r in rows if r["table"] == "Tables 1-3"):
        task = next(r["task"] for r in rows if r["table"] == "Tables 1-3" and r["arch"] == family)
        depth = DEPTHS[family][1][0]
        base = next((r for r in rows if (r["task"], r["table"], r["arch"], r["depth"])
                     == (task, "Table 4", family, depth)), None)
        if base and not any(r["table"] == "Tables 1-3" and r["arch"] == family
                            and r["variant"] == default for r in rows):
            rows.append({**base, "table": "Tables 1-3", "variant": default})
    archs = list(DEPTHS)
    return sorted(rows, key=lambda r: (tasks.index(r["task"]), r["table"] != "Table 4",
                                       archs.index(r["arch"]), r["depth"] if r["table"] ==
                                       "Table 4" else 0, r["variant"] != default))


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from runs of the same mode over different tasks; each run's wall time is
    kept, the total is their sum."""
    if len({r["mode"] for r in reports}) != 1:
        raise SystemExit("--merge: the reports are of different modes")
    mode = {"tiny": TINY, "reduced": REDUCED, "full": FULL}[reports[0]["mode"]]
    merged = dict(reports[0])
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    hct: dict[str, dict[str, Any]] = {}
    for report in reports:  # a later run's row replaces an earlier run's row of the same key
        rows |= {_set_key(r): r for r in report["set_tasks"]}
        if report.get("hematocrit"):
            merged["hematocrit"] = {**merged.get("hematocrit", {}), **report["hematocrit"]}
            hct |= {r["key"]: r for r in report["hematocrit"]["rows"]}
    merged["set_tasks"] = _with_grid_defaults(list(rows.values()))
    if hct:
        order = [f"{m.arch}@{m.size}" for m in mode.hct_models]
        merged["hematocrit"]["rows"] = sorted(
            hct.values(), key=lambda r: order.index(r["key"]) if r["key"] in order else 99)
    merged["sizes"] = asdict(mode)
    merged["runs_wall_s"] = [w for r in reports for w in r.get("runs_wall_s",
                                                               [r["total_wall_s"]])]
    merged["notes"] = notes(mode)  # this code's wording for the mode's sizes
    merged["total_wall_s"] = round(sum(merged["runs_wall_s"]), 1)
    return merged


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="paper sizes, 3 seeds (GPU)")
    size.add_argument("--tiny", action="store_true", help="smoke size")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--tasks", default="normalvar,digitvar,hematocrit")
    p.add_argument("--out", type=Path, default=Path("bench/results"))
    p.add_argument("--cohort", type=Path, default=None,
                   help="an existing cohort file for the hematocrit rows (default: simulate one)")
    p.add_argument("--merge", type=Path, nargs="+", default=None,
                   help="run nothing: combine reports of runs with different --tasks (a later "
                        "file's tasks replace an earlier's) and write the pair again")
    p.add_argument("--grid-only", default="",
                   help="Normal Var: run only these families' Tables 1-3 cells (comma list, e.g. "
                        "set_transformer_pp); merge with a run that has the Table 4 rows")
    p.add_argument("--hct-only", default="",
                   help="hematocrit: train only these rows (comma list of arch@size, e.g. "
                        "deepsets_pp@deep); merge with the run that has the others")
    args = p.parse_args(argv)
    sizes = FULL if args.full else TINY if args.tiny else REDUCED
    if args.merge:
        report = merge_reports([json.loads(path.read_text()) for path in args.merge])
    else:
        grid_only = tuple(f for f in args.grid_only.split(",") if f)
        unknown = set(grid_only) - set(DEPTHS)
        if unknown:
            p.error(f"--grid-only: unknown families {sorted(unknown)}; choose from {list(DEPTHS)}")
        hct_only = frozenset(k for k in args.hct_only.split(",") if k)
        keys = {f"{m.arch}@{m.size}" for m in sizes.hct_models}
        if hct_only - keys:
            p.error(f"--hct-only: unknown rows {sorted(hct_only - keys)}; choose from "
                    f"{sorted(keys)}")
        report = run(sizes, args.device, args.tasks.split(","), cohort=args.cohort,
                     grid_only=grid_only, hct_only=hct_only)
    stem = "paper_tables" if report["mode"] == "reduced" else f"paper_tables_{report['mode']}"
    json_path, md_path = write_results(args.out, stem, report, to_markdown(report))
    print(to_markdown(report))
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
