"""`hct train --arch …`, `hct evaluate` and `hct export` for a non-default architecture, end to
end on a small cohort (the same commands the README gives for Deep Sets++)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from service.cli import app

torch = pytest.importorskip("torch")
runner = CliRunner()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from ingestion.flowrbc import write_flowrbc

    rng = np.random.default_rng(0)
    hct = rng.normal(42, 5, 160)
    volume = rng.normal(90, 10, (160, 120)) * (1 + (hct[:, None] - 42) / 60)
    cells = np.stack([volume, volume * 0.33], axis=-1).astype(np.float32)  # [160, 120, 2]
    path = tmp_path_factory.mktemp("cohort") / "small.h5"
    write_flowrbc(path, {"train": (cells[:128], hct[:128]), "test": (cells[128:], hct[128:])})
    return path


def test_train_resume_evaluate_export_a_set_transformer_pp(cohort, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--data", str(cohort), "--run-dir", str(run), "--arch",
            "set_transformer_pp", "--preset", "tiny", "--inducing", "4", "--norm", "set"]
    first = runner.invoke(app, [*args, "--epochs", "1"])
    assert first.exit_code == 0, first.output
    assert "set_transformer_pp (tiny)" in first.output
    resumed = runner.invoke(app, [*args, "--epochs", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "at epoch" in resumed.output
    state = torch.load(run / "last.pt", weights_only=False)
    assert state["epoch"] == 2
    assert json.loads((run / "train_config.json").read_text())["model"]["inducing"] == 4

    base = tmp_path / "baselines"
    assert runner.invoke(app, ["baselines", "--data", str(cohort), "--out-dir", str(base),
                               "--n-boot", "50"]).exit_code == 0
    report_dir = tmp_path / "eval"
    ev = runner.invoke(app, ["evaluate", "--checkpoint", str(run / "best.pt"), "--data",
                             str(cohort), "--baselines", str(base / "baselines.json"),
                             "--out-dir", str(report_dir), "--n-boot", "50"])
    assert ev.exit_code == 0, ev.output
    report = json.loads((report_dir / "report.json").read_text())
    assert report["model"] == "set_transformer_pp"
    assert "set_transformer_pp" in report["scores"]

    bundle = tmp_path / "bundle"
    ex = runner.invoke(app, ["export", "--checkpoint", str(run / "best.pt"), "--baselines",
                             str(base / "baselines.json"), "--report",
                             str(report_dir / "report.json"), "--data", str(cohort),
                             "--out", str(bundle)])
    assert ex.exit_code == 0, ex.output
    card = json.loads((bundle / "card.json").read_text())
    assert card["architecture"]["name"] == "set_transformer_pp"
    assert card["training"]["arch"] == "set_transformer_pp"
    assert card["training"]["data"]["sets"] == {"train": 128, "test": 32}
    assert card["training"]["onnx_parity_max_abs_diff"] <= 1e-4


@pytest.mark.parametrize(("extra", "message"), [
    (["--arch", "pointnet"], "architecture name = 'pointnet'"),
    (["--arch", "deepsets", "--heads", "2"], "--heads does not apply to --arch deepsets"),
    (["--arch", "set_transformer", "--norm", "batch"], "norm = 'batch'"),
    (["--arch", "deepsets_pp", "--preset", "huge"], "preset = 'huge'"),
])
def test_train_refuses_bad_architecture_flags_naming_them(cohort, tmp_path, extra, message):
    result = runner.invoke(app, ["train", "--data", str(cohort), "--run-dir", str(tmp_path),
                                 *extra])
    assert result.exit_code == 2
    assert message in result.output
