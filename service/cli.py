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


# ---- cohort and baselines commands (issue 3) go below this line ----
