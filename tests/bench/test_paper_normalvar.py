"""Smoke test of the Normal Var paper check: data exactly as specified, report shape.

The qualitative result (DS++ far below the label variance, plain DS at it) is the benchmark's
job, not this test's: a tiny run cannot show it and must stay fast.
"""

import json
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bench.paper_normalvar import (  # noqa: E402
    FULL,
    REDUCED,
    make_sets,
    model_configs,
    parse_args,
    run,
    write_report,
)


def test_sets_follow_the_paper_and_targets_are_the_empirical_variance():
    data = make_sets(500, 50, np.random.default_rng(1))
    assert data.cells.shape == (500, 50, 1) and data.cells.dtype == np.float32
    assert np.all((data.mu >= -10) & (data.mu <= 10))
    assert np.all((data.sigma2 >= 0) & (data.sigma2 <= 10))
    for cells, target in zip(data.cells, data.targets, strict=True):
        assert target == pytest.approx(np.var(cells[:, 0].astype(np.float64)), rel=1e-12)
    # The draws come from N(μ, σ²): set means track μ, and variances track σ².
    assert np.corrcoef(data.cells[..., 0].mean(axis=1), data.mu)[0, 1] > 0.99
    assert np.corrcoef(data.targets, data.sigma2)[0, 1] > 0.9


def test_both_models_keep_the_paper_depth():
    configs = model_configs(REDUCED)
    assert {c.blocks for c in configs.values()} == {25}  # 50 layers each
    assert all(c.pooling == "sum" and c.in_features == 1 for c in configs.values())
    pp, plain = configs["Deep Sets++"], configs["Deep Sets (plain)"]
    assert (pp.norm, pp.residual) == ("set", "equivariant")
    assert (plain.norm, plain.residual) == ("none", "none")


def test_cli_full_is_the_paper_configuration():
    config, _ = parse_args(["--full", "--device", "cuda"])
    assert config == replace(FULL, device="cuda")
    assert (config.train_sets, config.test_sets, config.set_size, config.hidden,
            config.layers, config.batch_size, config.lr) == (10_000, 1_000, 1_000, 128, 50,
                                                              64, 1e-4)
    minutes, _ = parse_args(["--minutes", "0.5", "--hidden", "8"])
    assert minutes.minutes == 0.5 and minutes.epochs is None and minutes.hidden == 8


def test_tiny_run_writes_json_and_markdown(tmp_path):
    config = replace(REDUCED, hidden=8, set_size=50, train_sets=256, test_sets=64, epochs=2)
    threads_before = torch.get_num_threads()
    report = run(config, progress=False)
    json_path, md_path = write_report(report, tmp_path)
    loaded = json.loads(json_path.read_text())
    assert set(loaded) >= {"task", "config", "results", "machine", "paper_reference", "notes",
                           "total_wall_s"}
    assert [r["model"] for r in loaded["results"]] == ["Deep Sets++", "Deep Sets (plain)"]
    for r in loaded["results"]:
        assert set(r) >= {"layers", "hidden", "set_size", "train_sets", "test_sets", "epochs",
                          "wall_s", "test_mse", "label_var", "mse_over_label_var"}
        assert r["layers"] == 50 and r["epochs"] == 2 and r["train_sets"] == 256
        assert r["mse_over_label_var"] == pytest.approx(r["test_mse"] / r["label_var"])
        assert np.isfinite(r["test_mse"])
    assert "pending a GPU" in loaded["notes"]["full_run"]
    assert "hidden 128 → 8" in loaded["notes"]["run_here"]
    assert loaded["machine"]["torch_threads"] == 1
    assert torch.get_num_threads() == threads_before  # restored for the rest of the session
    assert {"torch", "device", "torch_threads"} <= set(loaded["machine"])
    assert loaded["paper_reference"]["deepsets_pp_test_mse"] == 0.0320
    assert "| Deep Sets++ | 50 |" in md_path.read_text()
