"""`hct score --engine ray` on a local Ray runtime gives the local engine's rows: same columns,
same values, errors as rows, file order and `seq` across shards."""

import csv
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.offline.local import score_file
from service.offline.ray_engine import score_with_ray
from service.prediction.mapper import RESULT_COLUMNS
from tests.ray_session import ray_session  # noqa: F401 - fixture
from tests.service.conftest import cells_for

pytestmark = pytest.mark.usefixtures("ray_session")


def _export(path, n: int, *, too_few: tuple[int, ...] = (), impossible: tuple[int, ...] = ()):
    """`n` samples in long format; some with too few cells or an impossible volume."""
    pid, sid, volume, hemoglobin, measured = [], [], [], [], []
    for i in range(n):
        cells = cells_for(38 + i % 10, 60 if i in too_few else 250 + 7 * i, i)
        if i in impossible:
            cells[3, 0] = -5.0
        pid += [f"P{i:03d}"] * len(cells)
        sid += [f"S{i:03d}"] * len(cells)
        volume += cells[:, 0].tolist()
        hemoglobin += cells[:, 1].tolist()
        measured += [40.0 + i % 7] * len(cells)
    table = pa.table({"patient_id": pid, "sample_id": sid, "volume_fl": volume,
                      "hemoglobin_pg": hemoglobin, "measured_hematocrit_pct": measured})
    # Row groups of 500 rows: samples cross row-group (and shard) boundaries.
    pq.write_table(table, path, row_group_size=500)


def _read(path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    return list(csv.DictReader(path.open()))


def _same(a, b) -> bool:
    if a in (None, "") and b in (None, ""):
        return True
    try:
        return math.isclose(float(a), float(b), abs_tol=1e-5)
    except (TypeError, ValueError):
        return str(a) == str(b)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_ray_scores_what_the_local_engine_scores(settings, tmp_path, suffix):
    export = tmp_path / "export.parquet"
    _export(export, 24, too_few=(5,), impossible=(17,))
    assert pq.ParquetFile(export).metadata.num_row_groups > 6
    local_out, ray_out = tmp_path / "local.csv", tmp_path / f"ray{suffix}"
    local = score_file(export, local_out, settings, progress=False)
    # Shards of ~1,500 rows: several read tasks, each reading samples whole across groups.
    got = score_with_ray(export, ray_out, settings, workers=1, rows_per_shard=1500)
    assert got == local == (22, 2)
    expected, rows = _read(local_out), _read(ray_out)
    assert list(rows[0]) == list(RESULT_COLUMNS)
    assert len(rows) == len(expected) == 24
    for want, have in zip(expected, rows, strict=True):
        for column in RESULT_COLUMNS:
            assert _same(want[column], have[column]), (want["seq"], column, want, have)
    assert [int(r["seq"]) for r in rows] == list(range(24))
    assert all(r["prediction_id"] in (None, "") for r in rows)  # offline: nothing stored


def test_bad_samples_are_error_rows_not_a_crash(settings, tmp_path):
    export = tmp_path / "export.parquet"
    _export(export, 8, too_few=(0, 6), impossible=(3,))
    out = tmp_path / "results.parquet"
    done, errors = score_with_ray(export, out, settings, workers=2, rows_per_shard=700)
    rows = _read(out)
    assert (done, errors) == (5, 3)
    assert [r["status"] for r in rows] == ["error", "done", "done", "error", "done", "done",
                                           "error", "done"]
    bad = {r["sample_id"]: r for r in rows if r["status"] == "error"}
    assert "at least 200" in bad["S000"]["error_message"]
    assert "volume_fl" in bad["S003"]["error_message"] and bad["S003"]["error_kind"]
    assert all(r["hematocrit_pct"] is None for r in bad.values())
    assert all(np.isfinite(r["hematocrit_pct"]) for r in rows if r["status"] == "done")


def test_cli_engine_ray_writes_parquet_and_exits_3_on_errors(settings, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from service.cli import app
    from service.settings import get_settings

    monkeypatch.setenv("HCT_MODEL_DIR", str(settings.model_dir))
    monkeypatch.setenv("HCT_EXECUTION_PROVIDER", "cpu")
    get_settings.cache_clear()
    export = tmp_path / "export.parquet"
    _export(export, 4, too_few=(2,))
    out = tmp_path / "runs" / "results.parquet"
    try:
        result = CliRunner().invoke(app, ["score", str(export), "--engine", "ray", "--out",
                                          str(out), "--workers", "1"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 3, result.output  # some samples failed, as the local engine
    assert "3 samples scored, 1 errors" in result.stdout
    assert pq.read_table(out).column("status").to_pylist() == ["done", "done", "error", "done"]


@pytest.mark.parametrize("precision", ["auto", "int8"])
def test_ray_opens_the_graph_the_local_engine_opens(settings, tmp_path, precision):
    # The shipped bundle carries an int8 variant: both engines must choose the same graph by
    # the same rule (same onnx_sha256 on every row), and under auto give the
    # same values whatever the blocks their samples were scored in.
    from service.settings import DEFAULT_MODEL_DIR

    shipped = settings.model_copy(update={"model_dir": DEFAULT_MODEL_DIR,
                                          "model_precision": precision})
    export = tmp_path / "export.parquet"
    _export(export, 12)
    local_out, ray_out = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    score_file(export, local_out, shipped, progress=False, batch_size=5)
    score_with_ray(export, ray_out, shipped, workers=1, rows_per_shard=1200)
    local, ray = _read(local_out), _read(ray_out)
    assert {r["onnx_sha256"] for r in local} == {r["onnx_sha256"] for r in ray}
    assert len({r["onnx_sha256"] for r in local}) == 1
    if precision == "auto":
        for want, have in zip(local, ray, strict=True):
            assert have["hematocrit_pct"] == pytest.approx(want["hematocrit_pct"], abs=1e-4)
            assert have["hematocrit_lower_pct"] == pytest.approx(want["hematocrit_lower_pct"],
                                                                 abs=1e-4)


def test_local_engine_writes_parquet_for_a_parquet_name(settings, tmp_path):
    export = tmp_path / "export.parquet"
    _export(export, 3)
    out = tmp_path / "results.parquet"
    assert score_file(export, out, settings, progress=False) == (3, 0)
    table = pq.read_table(out)  # a real Parquet file, not CSV text under a .parquet name
    assert table.column_names == list(RESULT_COLUMNS)
    assert table.schema.field("hematocrit_pct").type == pa.float64()
