"""`hct score --engine ray`: the local engine's pipeline spread over a Ray cluster with Ray Data.

    shards of the file ──read tasks──▶ samples ──actor pool (ONNX session loaded once)──▶ rows
    (plan_shards: metadata     (iter_shard: the project's      (score_block: the same Predictor
     only, on the driver)       own readers and validation)     and rows as `hct score`)

Where Ray Data can, it fuses the read into the scoring actors (same resources, as on a CPU
cluster), so cells never leave the process that reads them; GPU actors get samples from CPU
read tasks. Samples are grouped by the project's streaming readers inside each read (a shard
holds whole samples), so there is no shuffle: a Ray `groupby` on (patient_id, sample_id) would move
every cell row across the cluster to rebuild groups the file already has in order. The driver
only plans shards and writes the result file (one small row per sample, in file order); rows
flow back in order because the dataset preserves order. A sample that cannot be read or scored
is an error row; a file-level problem part-way through a shard keeps every other row and is
raised at the end, as the local engine does.

Ray is an optional extra (`pip install hct[ray]`): it is imported only inside these functions.
"""

from __future__ import annotations

import json
import pickle
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ingestion.errors import IngestionError
from ingestion.shards import ROWS_PER_SHARD, SETS_PER_SHARD, Shard, iter_shard, plan_shards
from ingestion.tables.long_format import check_header
from service.collection_time import localized, zone_named
from service.offline.blocks import bundle_files, offline_predictor, score_block
from service.offline.result_files import write_results
from service.prediction.result_schema import RESULT_SCHEMA
from service.settings import Settings

READ_BLOCK = 256  # samples per block a read task hands on
_STOPPED = "stopped"  # status of the marker row a shard emits for a file-level error
_ORDER = [("shard", pa.int64()), ("index", pa.int64())]
_OUT_SCHEMA = pa.schema([*_ORDER, *RESULT_SCHEMA])


def score_with_ray(source: Path, out: Path, settings: Settings, *, address: str | None = None,
                   workers: int | None = None, batch_size: int = 64,
                   sets_per_shard: int = SETS_PER_SHARD, rows_per_shard: int = ROWS_PER_SHARD,
                   progress: bool = False) -> tuple[int, int]:
    """Score every sample of `source` into `out` (CSV or Parquet) on Ray; (scored, errors).

    Joins the running Ray session, else `address` (or RAY_ADDRESS), else starts a local one.
    Raises `IngestionError` for a file unreadable from the start (before `out` exists) or, after
    writing every other row, for a file-level problem met part-way.
    """
    import ray

    shards = plan_shards(source, sets_per_shard=sets_per_shard, rows_per_shard=rows_per_shard)
    if shards[0].fmt in ("csv", "parquet"):  # a missing column fails here, before any output
        check_header(source, fmt=shards[0].fmt)
    shards = [Shard(**{**asdict(s), "path": str(Path(s.path).resolve())}) for s in shards]
    bundle = {name: (Path(settings.model_dir) / name).read_bytes()
              for name in bundle_files(settings.model_dir)}
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        rows = _ordered_rows(_dataset(ray, shards, bundle, settings, workers, batch_size,
                                      progress))
        counts = {"done": 0, "error": 0}
        stopped: list[IngestionError] = []

        def counted() -> Iterator[dict[str, Any]]:
            for row in rows:
                if row["status"] == _STOPPED:
                    stopped.append(IngestionError(row["error_message"], kind=row["error_kind"],
                                                  field=row["patient_id"] or "file"))
                    continue
                counts["done" if row["status"] == "done" else "error"] += 1
                yield row

        write_results(counted(), out)
    finally:
        if started:
            ray.shutdown()
    if stopped:
        raise stopped[0]
    return counts["done"], counts["error"]


def _dataset(ray: Any, shards: list[Shard], bundle: dict[str, bytes], settings: Settings,
             workers: int | None, batch_size: int, progress: bool) -> Any:
    """shards → samples (read tasks) → result rows (actor pool), order preserved."""
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = progress
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    if gpus:  # one session per GPU; reading keeps the CPUs
        pool, provider, per_actor = min(workers or gpus, gpus), "cuda", {"num_gpus": 1}
    else:  # one CPU stays for the driver (it writes the file) and Ray's own processes
        pool, provider = workers or max(1, cpus - 1), settings.execution_provider
        per_actor = {"num_cpus": 1}
    items = [{"shard": i, "spec": json.dumps(asdict(s))} for i, s in enumerate(shards)]
    return (ray.data.from_items(items, override_num_blocks=max(1, len(items)))
            .map_batches(_read_shards, batch_size=1, fn_kwargs={
                "min_cells": settings.min_cells, "max_cells": settings.max_cells,
                "zone": settings.local_timezone})
            .map_batches(_Scorer, batch_size=batch_size, batch_format="pyarrow",
                         compute=ray.data.ActorPoolStrategy(size=pool),
                         fn_constructor_kwargs={
                             "bundle": bundle, "provider": provider,
                             "precision": settings.model_precision,
                             "set_size": settings.set_size, "batch_size": batch_size},
                         **per_actor))


def _ordered_rows(dataset: Any) -> Iterator[dict[str, Any]]:
    """Result rows in file order with `seq` numbered across shards, as the local engine does."""
    seq = 0
    for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        for row in batch.to_pylist():
            row.pop("shard")
            row.pop("index")
            if row["status"] != _STOPPED:
                row["seq"] = seq
                seq += 1
            yield row


def _read_shards(batch: dict[str, np.ndarray], min_cells: int, max_cells: int,
                 zone: str) -> Iterator[pa.Table]:
    """A read task: the samples of its shard, pickled, in blocks of `READ_BLOCK`."""
    for shard_no, spec in zip(batch["shard"], batch["spec"], strict=True):
        shard = Shard(**json.loads(str(spec)))
        block: list[bytes] = []
        first = 0
        try:
            for item in localized(iter_shard(shard, min_cells=min_cells, max_cells=max_cells),
                                  zone_named(zone)):
                block.append(pickle.dumps(item))
                if len(block) == READ_BLOCK:
                    yield _block(int(shard_no), first, block)
                    first, block = first + len(block), []
        except IngestionError as exc:  # file-level, part-way: the driver raises it at the end
            block.append(pickle.dumps((_STOPPED, exc.kind, exc.message, exc.field)))
        if block:
            yield _block(int(shard_no), first, block)


def _block(shard: int, first: int, payloads: list[bytes]) -> pa.Table:
    n = len(payloads)
    return pa.table({"shard": pa.array([shard] * n, pa.int64()),
                     "index": pa.array(range(first, first + n), pa.int64()),
                     "payload": pa.array(payloads, pa.binary())})


class _Scorer:
    """One actor: the bundle's ONNX session loaded once (as `hct score` opens it: same graph
    by the same precision rule), then `score_block` per batch."""

    def __init__(self, bundle: dict[str, bytes], provider: str, precision: str, set_size: int,
                 batch_size: int) -> None:
        folder = Path(tempfile.mkdtemp(prefix="hct-bundle-"))
        for name, data in bundle.items():  # shipped by the driver: no shared model folder
            (folder / name).write_bytes(data)
        self.predictor = offline_predictor(folder, provider=provider, precision=precision,
                                           set_size=set_size, intra_op_threads=1)
        self.batch_size = batch_size

    def __call__(self, batch: pa.Table) -> pa.Table:
        shards = batch.column("shard").to_pylist()
        indices = batch.column("index").to_pylist()
        items = [pickle.loads(p) for p in batch.column("payload").to_pylist()]
        samples = [(k, item) for k, item in enumerate(items) if not isinstance(item, tuple)]
        scored = {row["seq"]: row for row in score_block(self.predictor, samples,
                                                         batch_size=self.batch_size)}
        rows = []
        for k, item in enumerate(items):
            if isinstance(item, tuple):  # (_STOPPED, kind, message, field)
                row: dict[str, Any] = {"status": _STOPPED, "error_kind": item[1],
                                       "error_message": item[2], "patient_id": item[3]}
            else:
                row = scored[k]
            rows.append({**row, "shard": shards[k], "index": indices[k]})
        return pa.Table.from_pylist(rows, _OUT_SCHEMA)
