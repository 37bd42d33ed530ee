"""`hct score` on one machine: offline batch scoring of a lab export through the service's own
`Predictor` (same subsampling, model, baselines and flags as a POST), written as CSV (or
Parquet, by the name's suffix) with the same columns and values as the batch API's results.

It never loses work: a sample that cannot be read or scored becomes an error row and the rest
go on; a file-level problem met part-way (e.g. a broken row structure) stops reading, keeps
every row already scored in the output, then raises.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path

from ingestion.cells import CellSet
from ingestion.errors import IngestionError, SampleError
from ingestion.sources import iter_source
from model.progress import progress_bar
from service.collection_time import localized
from service.offline.blocks import offline_predictor, score_block
from service.offline.result_files import write_results
from service.settings import Settings

log = logging.getLogger("hct.offline")


def _chunks(items: Iterator[CellSet | SampleError], size: int) -> Iterator[list]:
    block: list = []
    for seq, item in enumerate(items):
        block.append((seq, item))
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block


def score_file(source: Path, out: Path, settings: Settings, *, progress: bool = True,
               batch_size: int = 64) -> tuple[int, int]:
    """Score every sample of `source` into `out` (CSV, or Parquet for .parquet/.pq); returns
    (scored, errors).

    Raises `IngestionError` for a file-level problem, after writing every row before it.
    """
    predictor = offline_predictor(settings.model_dir, provider=settings.execution_provider,
                                  precision=settings.model_precision,
                                  set_size=settings.set_size,
                                  intra_op_threads=settings.intra_op_threads)
    counts = {"done": 0, "error": 0}
    stopped: list[IngestionError] = []

    def score(block: list) -> list[dict[str, object]]:
        rows = score_block(predictor, block, batch_size=batch_size)
        for row in rows:
            counts["done" if row["status"] == "done" else "error"] += 1
        return rows

    items = localized(iter_source(source, min_cells=settings.min_cells,
                                  max_cells=settings.max_cells), settings.local_zone)
    first = next(items, None)  # a file unreadable from the start raises before `out` exists

    def rows(bar) -> Iterator[dict[str, object]]:
        blocks = _chunks(itertools.chain([] if first is None else [first], items), batch_size)
        while True:
            try:
                block = next(blocks)
            except StopIteration:
                return
            except IngestionError as exc:  # file-level, part-way: keep what is scored
                stopped.append(exc)
                return
            yield from score(block)
            bar.advance(len(block))
            bar.note(f"{counts['error']} errors")

    with progress_bar(None, "scoring", unit="samples") as bar:
        write_results(rows(bar if progress else _Silent()), out)
    if stopped:
        raise stopped[0]
    return counts["done"], counts["error"]


class _Silent:
    def advance(self, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        pass
