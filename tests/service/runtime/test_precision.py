"""`HCT_MODEL_PRECISION`: the bundle's int8 variant is chosen on the CPU when its card check
passed, refused when missing or altered, never used on CUDA by auto, gives the fp32 values
within the card's limit, and every stored prediction says which graph made it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from service.runtime.bundle import BundleError, load_bundle
from service.runtime.onnx_model import OnnxModel
from service.runtime.precision import choose_graph
from service.settings import DEFAULT_MODEL_DIR
from tests.service.conftest import cells_for, prediction_body

pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def int8_bundle(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.quantize import add_int8_variant

    out = tmp_path_factory.mktemp("int8") / "bundle"
    shutil.copytree(bundle_dir, out)
    add_int8_variant(out, patients=64)
    return out


def _batch(n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    cells = np.stack([cells_for(38 + i, 600, i) for i in range(n)]).astype(np.float32)
    return cells, np.full(n, 600, dtype=np.int64)


def test_auto_serves_fp32_when_int8_values_depend_on_batch_neighbours(int8_bundle):
    # The shipped int8 graph quantises activations per call: a sample's value moves with the
    # other samples in its call, so auto keeps fp32; an explicit int8 still runs it.
    bundle = load_bundle(int8_bundle)
    check = bundle.card["variants"]["int8"]["check"]
    assert check["passed"] and check["cohort"]["synthetic"]
    auto = OnnxModel(bundle, "cpu", precision="auto")
    assert auto.precision == "fp32" and auto.graph.sha256 == bundle.sha256
    assert auto.host_check is not None and auto.host_check["passed"]
    assert not auto.host_check["batch_independent"]
    assert auto.host_check["batch_max_abs_diff_pct"] > auto.host_check["batch_tolerance"]
    assert "depend on the other samples" in auto.graph.why
    int8 = OnnxModel(bundle, "cpu", precision="int8")
    assert int8.precision == "int8"
    assert int8.graph.sha256 == bundle.card["variants"]["int8"]["sha256"] != bundle.sha256
    cells, lengths = _batch()
    diff = np.abs(int8.predict(cells, lengths) - auto.predict(cells, lengths)).max()
    assert diff <= check["limits"]["max_abs_diff_pct"]


def test_auto_runs_an_int8_graph_whose_values_do_not_depend_on_the_batch(int8_bundle,
                                                                        tmp_path):
    # A graph in the int8 slot that scores each sample the same alone and in a batch (here the
    # fp32 graph itself, its sha256 recorded) is what auto takes.
    from model.card import sha256_file

    steady = tmp_path / "steady"
    shutil.copytree(int8_bundle, steady)
    shutil.copyfile(steady / "model.onnx", steady / "model.int8.onnx")
    card = json.loads((steady / "card.json").read_text())
    card["variants"]["int8"]["sha256"] = sha256_file(steady / "model.int8.onnx")
    (steady / "card.json").write_text(json.dumps(card))
    auto = OnnxModel(load_bundle(steady), "cpu", precision="auto")
    assert auto.precision == "int8"
    assert auto.host_check is not None and auto.host_check["batch_independent"]
    cells, lengths = _batch()
    whole = auto.predict(cells, lengths)
    alone = np.array([auto.predict(cells[i:i + 1], lengths[i:i + 1])[0] for i in range(8)])
    assert np.abs(whole - alone).max() <= auto.host_check["batch_tolerance"]


def test_auto_stays_fp32_on_cuda_and_without_a_passed_check(int8_bundle, bundle_dir, tmp_path):
    bundle = load_bundle(int8_bundle)
    assert choose_graph(bundle, "auto", "cuda").precision == "fp32"
    assert choose_graph(bundle, "int8", "cuda").precision == "int8"  # asked for: given
    assert choose_graph(load_bundle(bundle_dir), "auto", "cpu").precision == "fp32"
    failed = tmp_path / "failed"
    shutil.copytree(int8_bundle, failed)
    card = json.loads((failed / "card.json").read_text())
    card["variants"]["int8"]["check"]["passed"] = False
    (failed / "card.json").write_text(json.dumps(card))
    assert choose_graph(load_bundle(failed), "auto", "cpu").precision == "fp32"


def test_int8_is_refused_when_missing_or_altered(int8_bundle, bundle_dir, tmp_path):
    with pytest.raises(BundleError, match="no int8 variant"):
        OnnxModel(load_bundle(bundle_dir), "cpu", precision="int8")
    altered = tmp_path / "altered"
    shutil.copytree(int8_bundle, altered)
    with (altered / "model.int8.onnx").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match="does not match"):
        OnnxModel(load_bundle(altered), "cpu", precision="auto")


def test_stored_predictions_record_the_precision_that_made_them(settings, int8_bundle):
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    for precision, provider in (("int8", "CPUExecutionProvider int8"),
                                ("fp32", "CPUExecutionProvider")):
        s = settings.model_copy(update={"model_dir": int8_bundle, "model_precision": precision})
        with TestClient(create_app(s)) as client:
            body = client.post("/v1/predictions", json=prediction_body(precision)).json()
            assert body["model"]["provider"] == provider
            sha = client.app.state.hct.online_model.graph.sha256
            assert body["model"]["onnx_sha256"] == sha
            stored = client.get(f"/v1/predictions/{body['id']}").json()
            assert stored["model"]["provider"] == provider


def test_the_shipped_int8_variant_passed_its_check_and_matches_fp32():
    bundle = load_bundle(DEFAULT_MODEL_DIR)
    section = bundle.card["variants"]["int8"]
    check = section["check"]
    assert check["passed"] and check["cohort"]["patients"] >= 1000
    assert check["max_abs_diff_pct"] <= 0.5 and check["test_mse_change"] <= 0.01
    assert section["from_onnx_sha256"] == bundle.sha256
    from ingestion.synthetic.cohort import generate_patients

    block = next(generate_patients(4242, 16, 1000))
    cells = block.cells.astype(np.float32)
    lengths = np.full(cells.shape[0], cells.shape[1], dtype=np.int64)
    fp32 = OnnxModel(bundle, "cpu", precision="fp32").predict(cells, lengths)
    int8 = OnnxModel(bundle, "cpu", precision="int8").predict(cells, lengths)
    assert np.abs(int8 - fp32).max() <= 0.5


def test_an_int8_graph_that_disagrees_on_this_host_is_not_served(int8_bundle, tmp_path):
    # Another model's graph in the int8 slot, with its sha256 recorded: the card's check says
    # passed, but on this host it disagrees with fp32 far beyond the limit.
    from model.card import sha256_file

    odd = tmp_path / "odd"
    shutil.copytree(int8_bundle, odd)
    other = DEFAULT_MODEL_DIR.parent / "set_transformer_pp" / "model.onnx"
    shutil.copyfile(other, odd / "model.int8.onnx")
    card = json.loads((odd / "card.json").read_text())
    card["variants"]["int8"]["sha256"] = sha256_file(odd / "model.int8.onnx")
    (odd / "card.json").write_text(json.dumps(card))
    bundle = load_bundle(odd)
    auto = OnnxModel(bundle, "cpu", precision="auto")
    assert auto.precision == "fp32" and auto.graph.sha256 == bundle.sha256
    assert auto.host_check is not None and not auto.host_check["passed"]
    assert "on this host" in auto.graph.why
    with pytest.raises(BundleError, match="on this host the int8 graph differs"):
        OnnxModel(bundle, "cpu", precision="int8")

