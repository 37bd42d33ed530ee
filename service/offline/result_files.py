"""Result rows written as a CSV or Parquet file, chosen by the name's suffix: the CSV text is
the local engine's (`mapper.csv_lines`), the Parquet columns are `RESULT_SCHEMA`'s, so an empty
column is typed, not null.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from service.prediction.mapper import RESULT_COLUMNS, csv_lines
from service.prediction.result_schema import RESULT_SCHEMA

PARQUET_ROWS_PER_GROUP = 10_000


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def write_results(rows: Iterable[dict[str, Any]], out: Path) -> None:
    """Stream `rows` into `out` (Parquet for .parquet/.pq, else CSV), flushing as it goes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if not is_parquet(out):
        with out.open("w", newline="") as fh:
            for text in csv_lines(rows):
                fh.write(text)
                fh.flush()
        return
    rows = iter(rows)
    with pq.ParquetWriter(out, RESULT_SCHEMA) as writer:
        while block := list(islice(rows, PARQUET_ROWS_PER_GROUP)):
            writer.write_table(pa.Table.from_pylist(
                [{k: r.get(k) for k in RESULT_COLUMNS} for r in block], RESULT_SCHEMA))
        # A file with no rows still has the schema: ParquetWriter writes it on close.
