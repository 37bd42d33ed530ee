import csv
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")

from model.train import TRAIN_PRESETS, load_trained, train  # noqa: E402


def test_training_logs_checkpoints_and_learns(small_cohort, tmp_path):
    config = replace(TRAIN_PRESETS["tiny"], epochs=4, patience=10)
    history = train(small_cohort, tmp_path, config, progress=False)
    assert [r.epoch for r in history] == [1, 2, 3, 4]
    assert history[-1].val_mse < history[0].val_mse
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert (tmp_path / "loss_curve.png").stat().st_size > 1000
    model, loaded = load_trained(tmp_path / "best.pt")
    assert loaded == config
    assert float(model.label_scale) > 1.0  # label de-standardisation lives in the module


def test_resume_continues_exactly_where_it_stopped(small_cohort, tmp_path):
    config = replace(TRAIN_PRESETS["tiny"], epochs=3, patience=10)
    straight = train(small_cohort, tmp_path / "a", config, progress=False)
    train(small_cohort, tmp_path / "b", replace(config, epochs=2), progress=False)
    resumed = train(small_cohort, tmp_path / "b", config, resume=True, progress=False)
    assert [r.epoch for r in resumed] == [1, 2, 3]
    assert resumed[-1].val_mse == pytest.approx(straight[-1].val_mse, rel=1e-5)


def test_early_stopping_stops_after_patience(small_cohort, tmp_path):
    config = replace(TRAIN_PRESETS["tiny"], epochs=50, patience=1, lr=0.0)
    history = train(small_cohort, tmp_path, config, progress=False)
    assert len(history) == 2  # lr 0: epoch 2 cannot improve on epoch 1


def test_resume_takes_the_new_learning_rate(small_cohort, tmp_path):
    config = replace(TRAIN_PRESETS["tiny"], epochs=1, patience=10)
    train(small_cohort, tmp_path, config, progress=False)
    train(small_cohort, tmp_path, replace(config, epochs=2, lr=1e-5), resume=True,
          progress=False)
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    assert state["optimiser"]["param_groups"][0]["lr"] == 1e-5
