"""One file cut into shards that independent readers (e.g. Ray read tasks) read in parallel,
together yielding exactly what `iter_source` yields, in the same order.

Flow-RBC HDF5 splits into windows of sets; Parquet into ranges of row groups (a sample that
crosses a boundary is read whole by the shard it starts in). CSV, FCS and zips are one shard:
CSV rows cannot be cut safely by bytes (quoted line breaks), so convert large CSV exports to
Parquet to read them in parallel.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ingestion.bounds import DEFAULT_MAX_CELLS
from ingestion.cells import DEFAULT_MIN_CELLS, CellSet
from ingestion.errors import SampleError
from ingestion.formats import SourceFormat
from ingestion.sources import detect_format, iter_source

SETS_PER_SHARD = 2048
ROWS_PER_SHARD = 1_000_000  # about a thousand samples of a thousand cells


@dataclass(frozen=True)
class Shard:
    """A piece of one file: HDF5 sets `start:stop` of `split`, Parquet row groups
    `start:stop`, or (`stop` None) the whole file."""

    path: str
    fmt: SourceFormat
    split: str | None = None
    start: int = 0
    stop: int | None = None


def plan_shards(path: str | Path, *, sets_per_shard: int = SETS_PER_SHARD,
                rows_per_shard: int = ROWS_PER_SHARD) -> list[Shard]:
    """The shards of `path`, in file order; reads only headers and metadata."""
    fmt = detect_format(path)
    name = str(path)
    if fmt == "hdf5":
        from ingestion.flowrbc import FlowRBCFile

        with FlowRBCFile.open(path) as f:
            sizes = [(split, int(f.data(split).shape[0])) for split in f.splits]
        return [Shard(name, fmt, split, lo, min(lo + sets_per_shard, n))
                for split, n in sizes for lo in range(0, n, sets_per_shard)]
    if fmt == "parquet":
        from ingestion.tables.row_groups import row_group_pieces

        return [Shard(name, fmt, None, lo, hi)
                for lo, hi in row_group_pieces(path, rows_per_shard)]
    return [Shard(name, fmt)]


def iter_shard(shard: Shard, *, min_cells: int = DEFAULT_MIN_CELLS,
               max_cells: int = DEFAULT_MAX_CELLS) -> Iterator[CellSet | SampleError]:
    """The samples of one shard, as `iter_source` would yield them for that part of the file."""
    if shard.stop is None:
        yield from iter_source(shard.path, fmt=shard.fmt, min_cells=min_cells,
                               max_cells=max_cells)
    elif shard.fmt == "hdf5":
        from ingestion.flowrbc import iter_flowrbc

        assert shard.split is not None
        yield from iter_flowrbc(shard.path, splits=(shard.split,), min_cells=min_cells,
                                max_cells=max_cells, window=(shard.start, shard.stop))
    else:
        from ingestion.tables.row_groups import iter_row_groups

        yield from iter_row_groups(shard.path, shard.start, shard.stop, min_cells=min_cells,
                                   max_cells=max_cells)
