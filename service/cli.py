"""`hct` command line. Each command parses arguments and calls one library function; heavy
imports (torch for training) happen inside the command so `hct serve` never loads them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="hct",
    help="Hematocrit from red-cell flow cytometry (Deep Sets++). Research use only: the "
    "bundled model is trained on synthetic data and is not validated for clinical use.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """hct: hematocrit from per-cell red-cell measurements (research use only)."""


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="FCS, CSV/Parquet export, Flow-RBC HDF5 or zip")],
    min_cells: Annotated[int, typer.Option(help="Minimum valid cells per sample")] = 200,
    limit: Annotated[int, typer.Option(help="Show at most this many samples (0 = all)")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """Read a file and print a per-sample summary (cells, MCV, MCH, MCHC, RDW, HDW)."""
    from ingestion.errors import IngestionError
    from ingestion.summary import summarise, write_json_lines, write_table

    try:
        summary = summarise(file, min_cells=min_cells, limit=limit)
    except IngestionError as exc:
        typer.echo(f"error: {file}: {exc.message}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        write_json_lines(summary, sys.stdout)
    else:
        write_table(summary, sys.stdout)
    for err in summary.errors:
        typer.echo(f"error: {err.location}: {err.message}", err=True)
    if summary.errors or not summary.rows:
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (HCT_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (HCT_PORT)")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (HCT_WORKERS)")] = None,
) -> None:
    """Run the REST service (uvicorn) on the configured model bundle and database."""
    import os

    import uvicorn

    from service.api.http_limits import uvicorn_limits
    from service.logging_setup import configure_logging
    from service.settings import get_settings

    if workers is not None:  # the worker processes read their settings from the environment:
        os.environ["HCT_WORKERS"] = str(workers)  # they share the cores out by this count
        get_settings.cache_clear()
    settings = get_settings()
    configure_logging(settings.log_level)
    uvicorn.run("service.api.app:create_app", factory=True, host=host or settings.host,
                port=port or settings.port, workers=settings.workers,
                log_level=settings.log_level, access_log=False, proxy_headers=True,
                **uvicorn_limits(settings))


@app.command()
def worker(
    once: Annotated[bool, typer.Option(help="Exit when no job work is left")] = False,
) -> None:
    """Work on batch jobs without serving HTTP (scale out by running more of these)."""
    from service.jobs.worker import run_worker
    from service.logging_setup import configure_logging
    from service.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level)
    run_worker(settings, once=once)


@app.command()
def score(
    export: Annotated[Path, typer.Argument(help="CSV/Parquet export, Flow-RBC HDF5, FCS or zip")],
    out: Annotated[Path, typer.Option(help="Results CSV")] = Path("results.csv"),
) -> None:
    """Score a lab export offline through the service's own pipeline (no HTTP, no database)."""
    from ingestion.errors import IngestionError
    from service.offline.local import score_file
    from service.settings import get_settings

    try:
        done, errors = score_file(export, out, get_settings())
    except IngestionError as exc:
        typer.echo(f"error: {export}: {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{done} samples scored, {errors} errors -> {out}")


db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (the service also does this at start-up)."""
    from service.db.engine import make_engine
    from service.db.migrate import current_revision, upgrade
    from service.settings import get_settings

    engine = make_engine(get_settings().database_url_with_password)
    upgrade(engine)
    typer.echo(f"database at revision {current_revision(engine)}")


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="Flow-RBC HDF5 (train split used)")],
    run_dir: Annotated[Path, typer.Option(help="Checkpoints, history.csv, loss curve")] = Path(
        "runs/cpu"),
    preset: Annotated[str, typer.Option(help="cpu | paper | tiny")] = "cpu",
    epochs: Annotated[int | None, typer.Option(help="Override the preset's epochs")] = None,
    lr: Annotated[float | None, typer.Option(help="Override the preset's learning rate")] = None,
    pooling: Annotated[str | None, typer.Option(help="mean (stable) | sum (paper)")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="Wall-clock budget")] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N training sets")] = None,
    seed: Annotated[int, typer.Option(help="Seed for init, split, order and subsets")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue from run_dir/last.pt")] = False,
    threads: Annotated[int | None, typer.Option(
        help="torch CPU threads (1 is faster on a busy machine: idle threads spin)")] = None,
) -> None:
    """Train Deep Sets++ (torch; CUDA with bf16 autocast when present, else CPU)."""
    from dataclasses import replace

    import torch

    from model.deepsets import ModelConfig
    from model.train import TRAIN_PRESETS
    from model.train import train as run_training

    if preset not in TRAIN_PRESETS:
        typer.echo(f"error: preset = {preset!r}: expected one of {sorted(TRAIN_PRESETS)}",
                   err=True)
        raise typer.Exit(2)
    config = TRAIN_PRESETS[preset]
    model = config.model if pooling is None else ModelConfig(
        **{**config.model.as_dict(), "pooling": pooling})
    overrides = {k: v for k, v in {"epochs": epochs, "lr": lr, "max_minutes": max_minutes,
                                   "limit": limit}.items() if v is not None}
    config = replace(config, model=model, seed=seed, **overrides)
    if threads is not None:
        torch.set_num_threads(threads)
    history = run_training(data, run_dir, config, resume=resume)
    best = min(history, key=lambda r: r.val_mse)
    typer.echo(f"best validation MSE {best.val_mse:.3f} at epoch {best.epoch} -> "
               f"{run_dir}/best.pt")


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="best.pt from hct train")],
    data: Annotated[Path, typer.Option(help="Flow-RBC HDF5 with a test split")],
    baselines_json: Annotated[Path, typer.Option("--baselines", help="baselines.json")],
    out_dir: Annotated[Path, typer.Option(help="report.md, report.json, PNG plots")] = Path(
        "reports/eval"),
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples")] = 1000,
) -> None:
    """Evaluate a checkpoint on the test split against every baseline and the oracle floor."""
    import torch

    from model.baselines import BaselineSet
    from model.evaluate import evaluate as run_evaluation
    from model.train import load_trained

    model, config = load_trained(checkpoint)
    if torch.cuda.is_available():  # the test split at 1,000 cells is slow on a CPU
        model = model.to("cuda")
    baselines = BaselineSet.from_json(baselines_json.read_text())
    report = run_evaluation(model, data, baselines, out_dir, n_boot=n_boot)
    typer.echo((out_dir / "report.md").read_text())
    typer.echo(f"-> {out_dir} (preset {config.preset}, {report['n_test']} test patients)")


@app.command("export")
def export_bundle(
    checkpoint: Annotated[Path, typer.Option(help="best.pt from hct train")],
    baselines_json: Annotated[Path, typer.Option("--baselines", help="baselines.json")],
    report: Annotated[Path, typer.Option(help="report.json from hct evaluate")],
    data: Annotated[Path, typer.Option(help="The cohort it was trained on (for the card)")],
    out: Annotated[Path, typer.Option(help="Bundle directory")] = Path("models/default"),
    version: Annotated[str, typer.Option(help="Model version for the card")] = "0.1.0",
    cells_per_set: Annotated[int, typer.Option(help="Cells the service feeds per sample")] = 1000,
    reproduce: Annotated[list[str] | None, typer.Option(
        help="Commands that reproduce this bundle (repeat the option)")] = None,
) -> None:
    """Export to ONNX (parity-checked) and write the bundle's card.json."""
    import json

    from ingestion.flowrbc import FlowRBCFile
    from model.baselines import BaselineSet
    from model.export import write_bundle
    from model.onnx_export import ParityError
    from model.train import load_trained

    model, config = load_trained(checkpoint)
    with FlowRBCFile.open(data) as f:
        cohort = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in f.attrs.items()}
        sizes = {s: int(f.data(s).shape[0]) for s in f.splits}
    metrics = json.loads(report.read_text())
    training = {"preset": config.preset, "config": config.as_dict(),
                "data": {"file": data.name, "sets": sizes, "cohort": cohort,
                         "synthetic": True}}
    try:
        card = write_bundle(model, out, baselines=BaselineSet.from_json(
            baselines_json.read_text()), version=version, cells_per_set=cells_per_set,
            training=training, metrics=metrics, reproduce=reproduce or [])
    except ParityError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{out}/model.onnx sha256 {card['onnx_sha256']} (parity "
               f"{card['training']['onnx_parity_max_abs_diff']:.2e})")


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Cohort HDF5 to write (Flow-RBC layout)")],
    patients: Annotated[int, typer.Option(help="Number of patients")] = 20_000,
    cells: Annotated[int, typer.Option(help="Cells per patient")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same cohort")] = 0,
    test_fraction: Annotated[float, typer.Option(help="Share of patients in test")] = 0.19,
    export_csv: Annotated[Path | None, typer.Option(
        help="Also write the first patients one row per cell (.csv or .parquet)")] = None,
    export_patients: Annotated[int, typer.Option(help="Patients in that export")] = 50,
    export_fcs: Annotated[Path | None, typer.Option(
        help="Also write the first --fcs-patients as one FCS file each into this folder")] = None,
    fcs_patients: Annotated[int, typer.Option(help="Patients written as FCS files")] = 5,
) -> None:
    """Generate a synthetic red-cell cohort (mechanistic model; synthetic, not patient data)."""
    from rich.console import Console
    from rich.progress import Progress

    from ingestion.synthetic.cohort import simulate_cohort
    from ingestion.synthetic.export import export_fcs as write_fcs_files
    from ingestion.synthetic.export import export_long

    if patients < 1 or cells < 2 or not 0.0 <= test_fraction < 1.0:
        typer.echo("error: need --patients >= 1, --cells >= 2, 0 <= --test-fraction < 1", err=True)
        raise typer.Exit(1)
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("simulating", total=patients)
        summary = simulate_cohort(out, patients, cells, seed=seed, test_fraction=test_fraction,
                                  progress=lambda n: bar.advance(task, n))
    typer.echo(f"{summary.n_train} train + {summary.n_test} test patients x {cells} cells -> "
               f"{out} in {summary.seconds:.1f} s ({summary.patients_per_second:.0f} patients/s); "
               f"Hct {summary.label_mean:.1f} ± {summary.label_sd:.1f} %, "
               f"irreducible MSE {summary.oracle_mse:.2f}")
    if export_csv is not None:
        rows = export_long(out, export_csv, export_patients)
        typer.echo(f"{rows} cell rows of {export_patients} patients -> {export_csv}")
    if export_fcs is not None:
        files = write_fcs_files(out, export_fcs, fcs_patients)
        typer.echo(f"{len(files)} FCS files -> {export_fcs}")


@app.command()
def baselines(
    data: Annotated[Path, typer.Option(help="Flow-RBC HDF5 with train and test splits")],
    out_dir: Annotated[Path, typer.Option(help="Writes baselines.json, report.json, report.md")]
    = Path("reports/baselines"),
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the 95 % CIs")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed")] = 0,
) -> None:
    """Fit the reference baselines on train and print the test-split table with 95 % CIs."""
    from ingestion.errors import IngestionError
    from model.baseline_report import evaluate_baselines

    try:
        report = evaluate_baselines(data, out_dir, n_boot=n_boot, seed=seed)
    except (IngestionError, ValueError) as exc:
        typer.echo(f"error: {data}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(report.to_markdown())
    typer.echo(f"-> {out_dir}/report.md, report.json, baselines.json")


if __name__ == "__main__":  # `python -m service.cli …` behaves like the `hct` script
    app()
