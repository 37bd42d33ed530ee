import h5py
import numpy as np
import pytest

from ingestion.errors import IngestionError, SampleError
from ingestion.flowrbc import FlowRBCFile, FlowRBCWriter, iter_flowrbc, write_flowrbc


def _cohort(n: int, s: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    volume = rng.normal(90, 10, (n, s))
    data = np.stack([volume, volume * 0.33], axis=-1).astype(np.float32)  # [n, S, 2]
    return data, rng.normal(42, 5, n).astype(np.float32)


def test_published_layout_round_trips(tmp_path):
    train, test = _cohort(6, 250, 0), _cohort(3, 250, 1)
    path = tmp_path / "flowrbc.h5"
    write_flowrbc(path, {"train": train, "test": test})
    with h5py.File(path) as raw:  # the exact names and shapes the paper's loaders expect
        assert raw["train_data"].shape == (6, 250, 2)
        assert raw["train_labels"].shape == (6,)
        assert raw["test_data"].shape == (3, 250, 2)
    with FlowRBCFile.open(path) as f:
        assert f.splits == ["train", "test"]
        assert np.array_equal(f.data("train")[...], train[0])
        assert np.allclose(f.labels("test"), test[1])
    items = list(iter_flowrbc(path, splits=("test",)))
    assert [c.sample_id for c in items] == ["test-0", "test-1", "test-2"]
    assert np.array_equal(items[1].volume_fl, test[0][1, :, 0])
    assert items[2].lab.measured_hematocrit_pct == pytest.approx(float(test[1][2]))


def test_chunked_writer_equals_one_shot_writer_and_keeps_extras(tmp_path):
    data, labels = _cohort(10, 200, 2)
    oracle = labels + 1
    with FlowRBCWriter(tmp_path / "a.h5", cells_per_set=200, attrs={"seed": 7}) as w:
        for lo in range(0, 10, 3):
            w.append("train", data[lo : lo + 3], labels[lo : lo + 3],
                     {"oracle_hct": oracle[lo : lo + 3]})
    with FlowRBCFile.open(tmp_path / "a.h5") as f:
        assert np.array_equal(f.data("train")[...], data)
        assert np.allclose(f.extra("train", "oracle_hct"), oracle)
        assert f.attrs["seed"] == 7


def test_writer_rejects_wrong_set_size(tmp_path):
    data, labels = _cohort(2, 100, 3)
    with FlowRBCWriter(tmp_path / "b.h5", cells_per_set=200) as w, pytest.raises(ValueError):
        w.append("train", data, labels)


def test_wrong_layout_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as raw:
        raw["train_data"] = np.zeros((4, 10, 3), np.float32)
    with pytest.raises(IngestionError, match=r"train_data has shape \[4, 10, 3\]"):
        FlowRBCFile.open(path)
    with h5py.File(path, "w") as raw:
        raw["something"] = np.zeros(3)
    with pytest.raises(IngestionError, match="no 'train_data'"):
        FlowRBCFile.open(path)


def test_labels_must_match_sets(tmp_path):
    path = tmp_path / "labels.h5"
    with h5py.File(path, "w") as raw:
        raw["train_data"] = np.ones((4, 10, 2), np.float32)
        raw["train_labels"] = np.ones(3, np.float32)
    with pytest.raises(IngestionError, match="3 values for 4 sets"):
        FlowRBCFile.open(path)


def test_not_hdf5_is_a_clear_error(tmp_path):
    path = tmp_path / "x.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\ngarbage" * 4)
    with pytest.raises(IngestionError, match="not a readable HDF5 file"):
        FlowRBCFile.open(path)


def test_bad_set_is_reported_and_the_rest_still_read(tmp_path):
    data, labels = _cohort(3, 250, 4)
    data[1, 5, 0] = -1.0
    path = tmp_path / "c.h5"
    write_flowrbc(path, {"train": (data, labels)})
    items = list(iter_flowrbc(path))
    assert isinstance(items[1], SampleError)
    assert items[1].location == "train_data[1]"
    assert "volume_fl[5] = -1" in items[1].message
    assert [type(i).__name__ for i in items] == ["CellSet", "SampleError", "CellSet"]
