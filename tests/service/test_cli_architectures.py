"""`hct train --arch …`, `hct evaluate` and `hct export` for a non-default architecture, end to
end on a small cohort (the same commands the README gives for Deep Sets++). The commands run
once per session in tests/conftest.py (`st_pp_cli_run`); their bundle is also the one the export
and serving tests check."""

import json

import pytest
from typer.testing import CliRunner

from service.cli import app

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()


def test_train_resume_evaluate_export_a_set_transformer_pp(st_pp_cli_run):
    r = st_pp_cli_run
    assert r["train"].exit_code == 0, r["train"].output
    assert "set_transformer_pp (tiny)" in r["train"].output
    assert r["resume"].exit_code == 0, r["resume"].output
    assert "at epoch" in r["resume"].output
    state = torch.load(r["run"] / "last.pt", weights_only=False)
    assert state["epoch"] == 2
    assert json.loads((r["run"] / "train_config.json").read_text())["model"]["inducing"] == 4

    assert r["baselines_cmd"].exit_code == 0, r["baselines_cmd"].output
    assert r["evaluate"].exit_code == 0, r["evaluate"].output
    report = json.loads((r["report"] / "report.json").read_text())
    assert report["model"] == "set_transformer_pp"
    assert "set_transformer_pp" in report["scores"]

    assert r["export"].exit_code == 0, r["export"].output
    card = json.loads((r["bundle"] / "card.json").read_text())
    assert card["name"] == "hct-set-transformer-pp"
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
def test_train_refuses_bad_architecture_flags_naming_them(set_cohort, tmp_path, extra,
                                                         message):
    result = runner.invoke(app, ["train", "--data", str(set_cohort), "--run-dir", str(tmp_path),
                                 *extra])
    assert result.exit_code == 2
    assert message in result.output
