"""Shards of one file, read independently and concatenated, give what `iter_source` gives."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion.cells import CellSet
from ingestion.errors import SampleError
from ingestion.flowrbc import write_flowrbc
from ingestion.shards import iter_shard, plan_shards
from ingestion.sources import iter_source


def _summary(items) -> list[tuple]:
    out = []
    for item in items:
        if isinstance(item, CellSet):
            out.append(("ok", item.patient_id, item.sample_id, item.n_cells,
                        float(item.volume_fl.sum()), item.lab.measured_hematocrit_pct))
        else:
            assert isinstance(item, SampleError)
            out.append(("error", item.patient_id, item.sample_id, item.kind, item.message))
    return out


def _sharded(path, **plan) -> list[tuple]:
    shards = plan_shards(path, **plan)
    return _summary(item for shard in shards for item in iter_shard(shard, min_cells=5)), shards


def _long_parquet(path, sizes: list[int], row_group_size: int, bad: int | None = None) -> None:
    rng = np.random.default_rng(0)
    pid, sid, vol, hgb = [], [], [], []
    for i, n in enumerate(sizes):
        pid += [f"P{i}"] * n
        sid += [f"S{i}"] * n
        v = rng.normal(90, 10, n)
        if i == bad:
            v[n // 2] = -4.0  # one impossible cell: that sample is an error, the rest go on
        vol += v.tolist()
        hgb += (v * 0.33).tolist()
    table = pa.table({"patient_id": pid, "sample_id": sid, "volume_fl": vol,
                      "hemoglobin_pg": hgb})
    pq.write_table(table, path, row_group_size=row_group_size)


@pytest.mark.parametrize("row_group_size", [7, 40, 1000])
@pytest.mark.parametrize("rows_per_shard", [1, 50, 10**6])
def test_parquet_shards_read_whole_samples_across_row_groups(tmp_path, row_group_size,
                                                             rows_per_shard):
    path = tmp_path / "export.parquet"
    sizes = [30, 6, 120, 45, 9, 61, 30, 3, 77]  # samples shorter and longer than a row group
    _long_parquet(path, sizes, row_group_size, bad=3)
    expected = _summary(iter_source(path, min_cells=5))
    got, shards = _sharded(path, rows_per_shard=rows_per_shard)
    assert got == expected
    assert [e[0] for e in expected].count("error") == 2  # the bad cell and the 3-cell sample
    if row_group_size == 7 and rows_per_shard == 1:
        assert len(shards) == -(-sum(sizes) // 7)  # one shard per row group


def test_hdf5_shards_are_windows_of_sets_in_order(tmp_path):
    rng = np.random.default_rng(1)
    cells = np.stack([rng.normal(90, 9, (23, 40)), rng.normal(30, 3, (23, 40))], -1)
    cells[5, 0, 0] = -1.0  # an invalid set becomes an error in its shard
    path = tmp_path / "cohort.h5"
    write_flowrbc(path, {"train": (cells[:15].astype(np.float32), rng.normal(42, 4, 15)),
                         "test": (cells[15:].astype(np.float32), rng.normal(42, 4, 8))})
    expected = _summary(iter_source(path, min_cells=5))
    got, shards = _sharded(path, sets_per_shard=4)
    assert got == expected
    assert [(s.split, s.start, s.stop) for s in shards][:5] == [
        ("train", 0, 4), ("train", 4, 8), ("train", 8, 12), ("train", 12, 15), ("test", 0, 4)]
    assert sum(e[0] == "error" for e in got) == 1


def test_csv_is_one_shard_of_the_whole_file(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("patient_id,sample_id,volume_fl,hemoglobin_pg\n"
                    + "".join(f"P,S,{90 + i},{30 + i / 10}\n" for i in range(8)))
    got, shards = _sharded(path)
    assert len(shards) == 1 and shards[0].stop is None
    assert got == _summary(iter_source(path, min_cells=5))
