"""`hct` command line. Each command parses arguments and calls one library function; heavy
imports (torch for training) happen inside the command so `hct serve` never loads them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from service.settings import Settings

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
    from ingestion.error_summary import error_lines
    from ingestion.errors import IngestionError
    from ingestion.summary import summarise, write_json_lines, write_table

    try:
        summary = summarise(file, min_cells=min_cells, limit=limit)
    except IngestionError as exc:
        _say_error(file, exc.message)
        raise typer.Exit(1) from None
    if as_json:
        write_json_lines(summary, sys.stdout)
    else:
        write_table(summary, sys.stdout)
    for location, message in error_lines(summary.errors):
        if location:
            _say_error(file if location == "file" else location, message)
        else:
            typer.echo(message, err=True)
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
    host, port = host or settings.host, port or settings.port
    _check_port_free(host, port)  # uvicorn binds after start-up work: fail before it, not after
    if settings.workers > 1:
        _migrate_before_workers(settings)
    uvicorn.run("service.api.app:create_app", factory=True, host=host,
                port=port, workers=settings.workers,
                log_level=settings.log_level, access_log=False, proxy_headers=True,
                **uvicorn_limits(settings))


def _migrate_before_workers(settings: Settings) -> None:
    """Bring the database to the current schema once, before the worker processes start: their
    own start-up migrations then find it there (on a fresh SQLite file, concurrent first
    migrations race and one worker fails with `table ... already exists`)."""
    from sqlalchemy.exc import SQLAlchemyError

    from service.db.engine import make_engine
    from service.db.migrate import upgrade

    engine = make_engine(settings.database_url_with_password)
    try:
        upgrade(engine)
    except SQLAlchemyError as exc:
        _say_error("HCT_DATABASE_URL", f"cannot migrate the database: {exc.__class__.__name__}: "
                   f"{str(exc).splitlines()[0]}")
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()


def _check_port_free(host: str, port: int) -> None:
    """Bind the address the way uvicorn will (SO_REUSEADDR) and let it go; in use: exit 1."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            _say_error(f"{host}:{port}", f"cannot listen there ({exc.strerror or exc}); set "
                       "HCT_PORT or --port to a free port")
            raise typer.Exit(1) from None


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


# `hct score` exit codes (also in the README): every sample scored; some samples failed (their
# error rows are in the output beside the scored ones); nothing scored (a file-level error, an
# empty file, or every sample failed); 2 is a usage error (typer's own).
EXIT_ALL_SCORED, EXIT_NOTHING_SCORED, EXIT_USAGE, EXIT_SOME_FAILED = 0, 1, 2, 3


def _say_error(location: object, message: str) -> None:
    """`error: <where>: <what>` once, even when the message already starts with where."""
    where = str(location)
    for prefix in (where, Path(where).name):
        if prefix and message.startswith(f"{prefix}: "):
            message = message[len(prefix) + 2:]
            break
    typer.echo(f"error: {where}: {message}", err=True)


def _output_path(path: Path, *, is_dir: bool = False) -> Path:
    """Create the folders an output needs; an unwritable place is one clear error, exit 1."""
    try:
        (path if is_dir else path.parent).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _say_error(path, f"cannot create {'it' if is_dir else 'its folder'} ({exc.strerror})")
        raise typer.Exit(1) from None
    return path


@app.command(epilog="Exit codes: 0 every sample scored; 3 some samples failed (error rows in the "
             "output, scored rows kept); 1 nothing scored (file-level error, empty file, or "
             "every sample failed); 2 usage error.")
def score(
    export: Annotated[Path, typer.Argument(help="CSV/Parquet export, Flow-RBC HDF5, FCS or zip")],
    out: Annotated[Path, typer.Option(
        help="Results file: CSV, or Parquet when it ends in .parquet or .pq")]
    = Path("runs/results.csv"),
    engine: Annotated[str, typer.Option(
        help="local (this process) | ray (a Ray cluster: pip install 'hct[ray]')")] = "local",
    address: Annotated[str | None, typer.Option(
        help="Ray cluster to join (auto, ray://head:10001); default RAY_ADDRESS, else a local "
        "Ray")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Ray scoring actors (default: one per GPU, else the cluster's CPUs less one)")]
    = None,
) -> None:
    """Score a lab export offline through the service's own pipeline (no HTTP, no database)."""
    from ingestion.errors import IngestionError
    from service.settings import get_settings

    if engine not in ("local", "ray"):
        _say_error("--engine", f"{engine!r}: expected local or ray")
        raise typer.Exit(EXIT_USAGE)
    _output_path(out)
    try:
        if engine == "ray":
            done, errors = _score_on_ray(export, out, address, workers)
        else:
            from service.offline.local import score_file

            done, errors = score_file(export, out, get_settings())
    except IngestionError as exc:
        _say_error(export, exc.message)
        if out.exists():
            typer.echo(f"rows read before the error were kept in {out}", err=True)
        raise typer.Exit(EXIT_NOTHING_SCORED) from None
    except OSError as exc:
        _say_error(exc.filename or out, exc.strerror or str(exc))
        raise typer.Exit(EXIT_NOTHING_SCORED) from None
    typer.echo(f"{done} samples scored, {errors} errors -> {out}")
    if done == 0:
        raise typer.Exit(EXIT_NOTHING_SCORED)
    if errors:
        raise typer.Exit(EXIT_SOME_FAILED)


def _score_on_ray(export: Path, out: Path, address: str | None,
                  workers: int | None) -> tuple[int, int]:
    """`hct score --engine ray`; without the extra installed, one clear error (exit 2)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        _say_error("--engine ray", "Ray is not installed: pip install 'hct[ray]'")
        raise typer.Exit(EXIT_USAGE) from None
    from service.offline.ray_engine import score_with_ray
    from service.settings import get_settings

    return score_with_ray(export, out, get_settings(), address=address, workers=workers)


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


hl7_app = typer.Typer(help="HL7 delivery to the LIS (the MLLP outbox).", no_args_is_help=True)
app.add_typer(hl7_app, name="hl7")


@hl7_app.command("status")
def hl7_status() -> None:
    """Print the outbox's message counts per status."""
    from service.db import hl7_outbox
    from service.db.engine import make_engine
    from service.settings import get_settings

    engine = make_engine(get_settings().database_url_with_password)
    try:
        with engine.connect() as conn:
            for status, n in hl7_outbox.counts(conn).items():
                typer.echo(f"{status}\t{n}")
    finally:
        engine.dispose()


@hl7_app.command("requeue")
def hl7_requeue(
    ids: Annotated[list[int] | None, typer.Option("--id", help="Outbox message id (repeat for "
                                                  "several)")] = None,
    since: Annotated[str | None, typer.Option(help="Only messages queued at or after this ISO "
                                              "8601 time (no offset: UTC)")] = None,
) -> None:
    """Put failed HL7 messages back in the delivery queue (all of them, or by --id / --since),
    with a fresh attempt budget and their original order; the sender delivers them next."""
    from datetime import UTC, datetime

    from service.db import hl7_outbox
    from service.db.audit import record_audit
    from service.db.engine import make_engine
    from service.settings import get_settings

    after = None
    if since is not None:
        try:
            after = datetime.fromisoformat(since)
        except ValueError:
            _say_error("--since", f"{since!r}: expected an ISO 8601 time, e.g. "
                       "2026-12-08T03:00:00+00:00")
            raise typer.Exit(2) from None
        after = after if after.tzinfo is not None else after.replace(tzinfo=UTC)
    engine = make_engine(get_settings().database_url_with_password)
    try:
        with engine.begin() as conn:
            found = hl7_outbox.requeue(conn, ids=ids or None, since=after)
            record_audit(conn, principal="cli", tenant=None, action="requeue",
                         resource="hl7_outbox", resource_id=None,
                         detail=f"{len(found)} failed messages requeued")
    finally:
        engine.dispose()
    typer.echo(f"requeued {len(found)} failed messages" + (
        f": {', '.join(map(str, found))}" if 0 < len(found) <= 50 else ""))


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="Flow-RBC HDF5 (train split used)")],
    run_dir: Annotated[Path, typer.Option(help="Checkpoints, history.csv, loss curve")] = Path(
        "runs/cpu"),
    arch: Annotated[str, typer.Option(
        help="deepsets | deepsets_pp | set_transformer | set_transformer_pp")] = "deepsets_pp",
    preset: Annotated[str, typer.Option(help="cpu | paper | tiny (size per family)")] = "cpu",
    epochs: Annotated[int | None, typer.Option(help="Override the preset's epochs")] = None,
    lr: Annotated[float | None, typer.Option(help="Override the preset's learning rate")] = None,
    pooling: Annotated[str | None, typer.Option(
        help="Deep Sets: mean (stable) | sum (paper); Set Transformer: pma | mean")] = None,
    norm: Annotated[str | None, typer.Option(help="none | layer | feature | set")] = None,
    residual: Annotated[str | None, typer.Option(
        help="none | equivariant | mean | max")] = None,
    path: Annotated[str | None, typer.Option(
        help="clean (pre-norm) | non-clean (post-norm)")] = None,
    blocks: Annotated[int | None, typer.Option(
        help="Encoder depth: residual blocks (Deep Sets) or attention blocks")] = None,
    hidden: Annotated[int | None, typer.Option(help="Width")] = None,
    heads: Annotated[int | None, typer.Option(help="Attention heads (Set Transformer)")] = None,
    inducing: Annotated[int | None, typer.Option(
        help="Inducing points per ISAB block; 0 = full self-attention (Set Transformer)")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="Wall-clock budget")] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N training sets")] = None,
    seed: Annotated[int, typer.Option(help="Seed for init, split, order and subsets")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue from run_dir/last.pt")] = False,
    threads: Annotated[int | None, typer.Option(
        help="torch CPU threads (1 is faster on a busy machine: idle threads spin)")] = None,
    engine: Annotated[str, typer.Option(
        help="local (this process) | ray (data-parallel Ray Train workers: pip install "
        "'hct[ray]')")] = "local",
    workers: Annotated[int, typer.Option(help="Ray Train workers (one GPU each when the "
                                         "cluster has GPUs)")] = 2,
    address: Annotated[str | None, typer.Option(
        help="Ray cluster to join (auto, ray://head:10001); default RAY_ADDRESS, else a local "
        "Ray")] = None,
) -> None:
    """Train a set network (torch; CUDA with bf16 autocast when present, else CPU)."""
    from dataclasses import replace

    import torch

    from model.factory import network_config
    from model.train import train as run_training
    from model.train import train_preset

    knobs = {"pooling": pooling, "norm": norm, "residual": residual, "path": path,
             "blocks": blocks, "hidden": hidden, "heads": heads, "inducing": inducing}
    try:
        config = train_preset(arch, preset)
        fields = config.model.as_dict()
        unknown = [k for k, v in knobs.items() if v is not None and k not in fields]
        if unknown:
            raise ValueError(f"--{unknown[0]} does not apply to --arch {config.arch}")
        model = network_config({"name": config.arch, **fields,
                                **{k: v for k, v in knobs.items() if v is not None}})
    except (ValueError, TypeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    overrides = {k: v for k, v in {"epochs": epochs, "lr": lr, "max_minutes": max_minutes,
                                   "limit": limit}.items() if v is not None}
    config = replace(config, model=model, seed=seed, **overrides)
    if threads is not None:
        torch.set_num_threads(threads)
    if engine == "ray":
        try:
            import ray  # noqa: F401

            from model.ray_train import train_on_ray
        except ImportError:
            _say_error("--engine ray", "Ray is not installed: pip install 'hct[ray]'")
            raise typer.Exit(EXIT_USAGE) from None
        history = train_on_ray(data, run_dir, config, workers=workers, address=address,
                               resume=resume)
    elif engine == "local":
        history = run_training(data, run_dir, config, resume=resume)
    else:
        _say_error("--engine", f"{engine!r}: expected local or ray")
        raise typer.Exit(EXIT_USAGE)
    best = min(history, key=lambda r: r.val_mse)
    typer.echo(f"{config.arch} ({config.preset}): best validation MSE {best.val_mse:.3f} at "
               f"epoch {best.epoch} -> {run_dir}/best.pt")


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="best.pt from hct train")],
    data: Annotated[Path, typer.Option(help="Flow-RBC HDF5 with a test split")],
    baselines_json: Annotated[Path, typer.Option("--baselines", help="baselines.json")],
    out_dir: Annotated[Path, typer.Option(help="report.md, report.json, PNG plots")] = Path(
        "runs/eval"),
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples")] = 1000,
) -> None:
    """Evaluate a checkpoint on the test split against every baseline and the oracle floor."""
    import torch

    from model.baselines import BaselineSet
    from model.evaluate import evaluate as run_evaluation
    from model.train import load_trained

    _output_path(out_dir, is_dir=True)
    model, config = load_trained(checkpoint)
    if torch.cuda.is_available():  # the test split at 1,000 cells is slow on a CPU
        model = model.to("cuda")
    baselines = BaselineSet.from_json(baselines_json.read_text())
    report = run_evaluation(model, data, baselines, out_dir, n_boot=n_boot, name=config.arch)
    typer.echo((out_dir / "report.md").read_text())
    typer.echo(f"-> {out_dir} ({config.arch}, preset {config.preset}, {report['n_test']} test "
               "patients)")


@app.command("export")
def export_bundle(
    checkpoint: Annotated[Path, typer.Option(help="best.pt from hct train")],
    baselines_json: Annotated[Path, typer.Option("--baselines", help="baselines.json")],
    report: Annotated[Path, typer.Option(help="report.json from hct evaluate")],
    data: Annotated[Path, typer.Option(help="The cohort it was trained on (for the card)")],
    out: Annotated[Path, typer.Option(help="Bundle directory (HCT_MODEL_DIR serves it)")] = Path(
        "runs/model"),
    version: Annotated[str | None, typer.Option(
        help="Model version for the card (default: dev-<date>-<checkpoint sha256[:8]>)")] = None,
    force: Annotated[bool, typer.Option(
        help="Replace a bundle already in --out (the shipped one, models/default, included)")]
    = False,
    cells_per_set: Annotated[int, typer.Option(help="Cells the service feeds per sample")] = 1000,
    reproduce: Annotated[list[str] | None, typer.Option(
        help="Commands that reproduce this bundle (repeat the option)")] = None,
) -> None:
    """Export to ONNX (parity-checked) and write the bundle's card.json."""
    import json

    from model.baselines import BaselineSet
    from model.export import training_section, write_bundle
    from model.onnx_export import ParityError
    from model.train import load_trained

    if (out / "model.onnx").exists() or (out / "card.json").exists():
        if not force:
            _say_error(out, "a model bundle is already there: pass another --out, or --force "
                       "to replace it")
            raise typer.Exit(1)
    version = version or _derived_version(checkpoint)
    _output_path(out, is_dir=True)
    model, config = load_trained(checkpoint)
    metrics = json.loads(report.read_text())
    try:
        card = write_bundle(model, out, baselines=BaselineSet.from_json(
            baselines_json.read_text()), version=version, cells_per_set=cells_per_set,
            training=training_section(config, data), metrics=metrics,
            reproduce=reproduce or [], architecture=config.arch)
    except ParityError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{out}/model.onnx sha256 {card['onnx_sha256']} version {version} (parity "
               f"{card['training']['onnx_parity_max_abs_diff']:.2e})")


def _derived_version(checkpoint: Path) -> str:
    """A version no earlier bundle has: the day and the checkpoint's own hash."""
    import hashlib
    from datetime import UTC, datetime

    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:8]
    return f"dev-{datetime.now(UTC):%Y%m%d}-{digest}"


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
    export_json: Annotated[Path | None, typer.Option(
        help="Also write the first patient as a POST /v1/predictions JSON body")] = None,
) -> None:
    """Generate a synthetic red-cell cohort (mechanistic model; synthetic, not patient data)."""
    from ingestion.synthetic.cohort import simulate_cohort
    from ingestion.synthetic.export import export_fcs as write_fcs_files
    from ingestion.synthetic.export import export_long
    from model.progress import progress_bar

    if patients < 1 or cells < 2 or not 0.0 <= test_fraction < 1.0:
        typer.echo("error: need --patients >= 1, --cells >= 2, 0 <= --test-fraction < 1", err=True)
        raise typer.Exit(1)
    _output_path(out)
    for extra, is_dir in ((export_csv, False), (export_fcs, True), (export_json, False)):
        if extra is not None:
            _output_path(extra, is_dir=is_dir)
    try:
        with progress_bar(patients, "simulating", unit="patients") as bar:
            summary = simulate_cohort(out, patients, cells, seed=seed,
                                      test_fraction=test_fraction, progress=bar.advance)
    except OSError as exc:
        _say_error(out, f"cannot write it ({exc.strerror or exc})")
        raise typer.Exit(1) from None
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
    if export_json is not None:
        from ingestion.synthetic.json_body import export_json_body

        body = export_json_body(out, export_json)
        typer.echo(f"request body of patient {body['patient_id']} -> {export_json}")


@app.command()
def baselines(
    data: Annotated[Path, typer.Option(help="Flow-RBC HDF5 with train and test splits")],
    out_dir: Annotated[Path, typer.Option(help="Writes baselines.json, report.json, report.md")]
    = Path("runs/baselines"),
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the 95 % CIs")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed")] = 0,
) -> None:
    """Fit the reference baselines on train and print the test-split table with 95 % CIs."""
    from ingestion.errors import IngestionError
    from model.baseline_report import evaluate_baselines

    _output_path(out_dir, is_dir=True)
    try:
        report = evaluate_baselines(data, out_dir, n_boot=n_boot, seed=seed)
    except (IngestionError, ValueError) as exc:
        typer.echo(f"error: {data}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(report.to_markdown())
    typer.echo(f"-> {out_dir}/report.md, report.json, baselines.json")


@app.command()
def calibrate(
    bundle: Annotated[Path, typer.Option(help="Model bundle directory (card.json, model.onnx)")],
    data: Annotated[Path, typer.Option(
        help="Flow-RBC HDF5 of patients the model never trained on (e.g. hct simulate --seed "
        "7001)")],
    level: Annotated[float, typer.Option(help="Prediction-interval level")] = 0.9,
    band_level: Annotated[float, typer.Option(
        help="Coverage floor per measured-hematocrit band")] = 0.88,
    limit: Annotated[int | None, typer.Option(help="Use only the first N patients")] = None,
    alarm_simulations: Annotated[int, typer.Option(
        help="Simulated in-distribution streams behind the monitor's alarm thresholds")] = 1000,
) -> None:
    """Fit the interval, quality thresholds and monitoring reference into the bundle's card."""
    from ingestion.errors import IngestionError
    from model.trust_calibration import calibrate_bundle

    command = (f"hct calibrate --bundle {bundle} --data {data} --level {level} "
               f"--band-level {band_level}" + (f" --limit {limit}" if limit else "")
               + (f" --alarm-simulations {alarm_simulations}" if alarm_simulations != 1000
                  else ""))
    try:
        out = calibrate_bundle(bundle, data, level=level, band_level=band_level, limit=limit,
                               reproduce=command, alarm_simulations=alarm_simulations)
    except IngestionError as exc:
        typer.echo(f"error: {data}: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    conf, qual = out["conformal"], out["quality"]
    typer.echo(f"{out['n']} calibration patients, MSE {out['mse']:.2f}; interval radii by "
               f"band {[round(r, 2) for r in conf['radii']]}, calibration coverage "
               f"{conf['calibration_coverage']:.3f}, mean width "
               f"{conf['calibration_mean_width']:.2f}; quality warn/withhold distance "
               f"{qual['warn_distance']:.2f}/{qual['withheld_distance']:.2f} -> {bundle}/card.json")


if __name__ == "__main__":  # `python -m service.cli …` behaves like the `hct` script
    app()
