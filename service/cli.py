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
    from service.ingest_summary import summarise, write_json_lines, write_table

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
    import uvicorn

    from service.logging_setup import configure_logging
    from service.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level)
    uvicorn.run("service.app:create_app", factory=True, host=host or settings.host,
                port=port or settings.port, workers=workers or settings.workers,
                log_level=settings.log_level, access_log=False, proxy_headers=True)


@app.command()
def worker(
    once: Annotated[bool, typer.Option(help="Exit when no job work is left")] = False,
) -> None:
    """Work on batch jobs without serving HTTP (scale out by running more of these)."""
    from service.logging_setup import configure_logging
    from service.settings import get_settings
    from service.worker_main import run_worker

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
    from service.offline import score_file
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
    from service.migrate import current_revision, upgrade
    from service.settings import get_settings
    from service.store import make_engine

    engine = make_engine(get_settings().database_url_with_password)
    upgrade(engine)
    typer.echo(f"database at revision {current_revision(engine)}")


# ---- cohort and baselines commands (issue 3) go below this line ----
