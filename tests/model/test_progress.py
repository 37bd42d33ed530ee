"""Long loops show a bar with done/total, rate and ETA on a terminal, and nothing in logs:
training (per epoch), evaluation (the test split), simulation and offline scoring."""

import io
import time
from dataclasses import replace

import numpy as np
import pytest
from rich.console import Console

from model.progress import progress_bar


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=160), out


def test_the_bar_shows_done_total_rate_and_eta_on_a_terminal():
    console, out = _terminal()
    with progress_bar(50, "scoring", unit="samples", console=console) as bar:
        for _ in range(5):
            bar.advance(5)
            bar.note("2 errors")
            time.sleep(0.02)
        console.file.flush()
        text = out.getvalue()
    assert "scoring" in text and "/50" in text
    assert "samples/s" in text and "ETA" in text and "2 errors" in text


def test_the_bar_draws_nothing_when_output_is_not_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False)
    with progress_bar(10, "simulating", console=console) as bar:
        bar.advance(10)
    assert out.getvalue() == ""


def test_training_and_evaluation_draw_their_bars_on_a_terminal(small_cohort, tmp_path,
                                                               monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    from model.baselines import BaselineSet
    from model.data import load_split
    from model.evaluate import evaluate
    from model.train import TRAIN_PRESETS, train

    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats captured stderr as a terminal
    monkeypatch.setenv("COLUMNS", "160")
    config = replace(TRAIN_PRESETS["tiny"], epochs=1, limit=64)
    torch.manual_seed(0)
    train(small_cohort, tmp_path / "run", config)
    trained = capsys.readouterr().err
    assert "epoch 1/1" in trained and "batches/s" in trained and "ETA" in trained

    from model.train import load_trained

    model, _ = load_trained(tmp_path / "run" / "best.pt")
    data = load_split(small_cohort, "train")
    baselines = BaselineSet.fit(data.cells, None, data.labels.astype(np.float64))
    evaluate(model, small_cohort, baselines, tmp_path / "eval", n_boot=10, limit=40)
    evaluated = capsys.readouterr().err
    assert "evaluating" in evaluated and "patients/s" in evaluated and "/40" in evaluated


def test_training_is_quiet_when_stderr_is_not_a_terminal(small_cohort, tmp_path, monkeypatch,
                                                          capsys):
    pytest.importorskip("torch")
    from model.train import TRAIN_PRESETS, train

    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    train(small_cohort, tmp_path / "run", replace(TRAIN_PRESETS["tiny"], epochs=1, limit=64))
    assert capsys.readouterr().err == ""
