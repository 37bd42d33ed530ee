"""Fixtures shared across test packages: one torch thread for the model-heavy modules, and one
Set Transformer++ trained, evaluated and exported through the CLI, whose bundle the CLI test,
the export checks and the serving check all use (an ONNX export costs seconds; it is done once
per session)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, text


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for the module, restored after it: the networks under test are tiny,
    and a second intra-op thread only adds synchronisation (it made a width-8 linear layer over
    ten times more expensive in CPU time on the shared 2-core machine)."""
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def set_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Flow-RBC file (128 train / 32 test sets of 120 cells) whose label shifts cell
    volume, so a model can learn something."""
    from ingestion.flowrbc import write_flowrbc

    rng = np.random.default_rng(0)
    hct = rng.normal(42, 5, 160)
    volume = rng.normal(90, 10, (160, 120)) * (1 + (hct[:, None] - 42) / 60)
    cells = np.stack([volume, volume * 0.33], axis=-1).astype(np.float32)  # [160, 120, 2]
    path = tmp_path_factory.mktemp("cohort") / "small.h5"
    write_flowrbc(path, {"train": (cells[:128], hct[:128]), "test": (cells[128:], hct[128:])})
    return path


@pytest.fixture(scope="session")
def st_pp_cli_run(set_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`hct train` (1 epoch, then `--resume` to 2), `hct baselines`, `hct evaluate` and
    `hct export` for a Set Transformer++ (its defaults: set norm, equivariant clean-path
    residuals, PMA; ISAB with 4 points; width 16, depth 1), as the README runs them for DS++.
    Returns each command's result and the paths; `bundle` is the exported model directory."""
    torch = pytest.importorskip("torch")
    from typer.testing import CliRunner

    from service.cli import app

    runner, root = CliRunner(), tmp_path_factory.mktemp("st_pp_cli")
    run, base, report, bundle = (root / "run", root / "baselines", root / "eval",
                                 root / "bundle")
    train = ["train", "--data", str(set_cohort), "--run-dir", str(run), "--arch",
             "set_transformer_pp", "--preset", "tiny", "--inducing", "4", "--norm", "set",
             "--blocks", "1"]
    out: dict[str, Any] = {"cohort": set_cohort, "run": run, "baselines": base,
                           "report": report, "bundle": bundle}
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # as `one_torch_thread`, restored for the rest of the session
    try:
        out["train"] = runner.invoke(app, [*train, "--epochs", "1"])
        out["resume"] = runner.invoke(app, [*train, "--epochs", "2", "--resume"])
        out["baselines_cmd"] = runner.invoke(app, ["baselines", "--data", str(set_cohort),
                                                   "--out-dir", str(base), "--n-boot", "50"])
        out["evaluate"] = runner.invoke(app, [
            "evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(set_cohort),
            "--baselines", str(base / "baselines.json"), "--out-dir", str(report),
            "--n-boot", "50"])
        out["export"] = runner.invoke(app, [
            "export", "--checkpoint", str(run / "best.pt"), "--baselines",
            str(base / "baselines.json"), "--report", str(report / "report.json"), "--data",
            str(set_cohort), "--out", str(bundle)])
    finally:
        torch.set_num_threads(previous)
    return out


@pytest.fixture(scope="session")
def st_pp_bundle(st_pp_cli_run: dict[str, Any]) -> tuple[Path, Any]:
    """The Set Transformer++ bundle `hct export` wrote: `(bundle directory, torch model)`."""
    from model.train import load_trained

    result = st_pp_cli_run["export"]
    assert result.exit_code == 0, result.output
    model, _ = load_trained(st_pp_cli_run["run"] / "best.pt")
    return st_pp_cli_run["bundle"], model.eval()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A SQLite file, or a fresh PostgreSQL schema (dropped after) when HCT_TEST_DATABASE_URL
    is set: every package's database tests share this one fixture."""
    base = os.environ.get("HCT_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite:///{tmp_path / 'hct.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
