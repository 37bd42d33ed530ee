"""`auto` asks onnxruntime for CUDA only where an NVIDIA GPU is, and says in one INFO line what
runs and why: a CPU host starts without a single error."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.runtime.gpu import nvidia_gpu_evidence

ROOT = Path(__file__).resolve().parents[3]


def test_gpu_evidence_reads_device_nodes_and_the_driver_folder(tmp_path):
    assert nvidia_gpu_evidence(tmp_path) is None
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "nvidiactl").write_text("")  # the control node alone is no GPU
    assert nvidia_gpu_evidence(tmp_path) is None
    (tmp_path / "dev" / "nvidia0").write_text("")
    assert nvidia_gpu_evidence(tmp_path) == str(tmp_path / "dev" / "nvidia0")
    other = tmp_path / "other"
    (other / "proc/driver/nvidia/gpus/0000:01:00.0").mkdir(parents=True)
    assert nvidia_gpu_evidence(other) == str(other / "proc/driver/nvidia/gpus")


@pytest.mark.skipif(nvidia_gpu_evidence() is not None, reason="this host has an NVIDIA GPU")
def test_auto_on_a_cpu_host_logs_no_error_and_says_why_cpu(bundle_dir, tmp_path):
    """The real app started with `auto` in a fresh process: onnxruntime writes its own errors
    to stderr, so only a separate process shows them."""
    script = (
        "import logging\n"
        "from fastapi.testclient import TestClient\n"
        "from service.api.app import create_app\n"
        "from service.settings import Settings\n"
        "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s %(message)s')\n"
        f"s = Settings(environment='test', database_url='sqlite:///{tmp_path}/a.db', "
        f"model_dir=r'{bundle_dir}', upload_dir=r'{tmp_path}/up', execution_provider='auto', "
        "run_jobs=False, _env_file=None)\n"
        "with TestClient(create_app(s)) as c:\n"
        "    assert c.get('/readyz').status_code == 200\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HCT_")}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert not [line for line in lines if line.startswith(("ERROR", "CRITICAL"))], lines
    assert "onnxruntime" not in result.stderr.replace("hct.runtime", ""), result.stderr
    assert "CUDA" not in result.stderr
    chosen = [x for x in lines if x.startswith("INFO hct.runtime") and "loaded on" in x]
    assert chosen and all("CPUExecutionProvider" in x for x in chosen)
    assert "auto, no NVIDIA GPU" in chosen[0]  # the first session says what auto chose, why


def test_cpu_preference_says_it_was_asked_for(bundle_dir, caplog):
    from service.runtime.bundle import load_bundle
    from service.runtime.onnx_model import OnnxModel

    with caplog.at_level(logging.INFO, logger="hct.runtime"):
        model = OnnxModel(load_bundle(bundle_dir), "cpu")
    assert model.provider == "CPUExecutionProvider"
    assert any("HCT_EXECUTION_PROVIDER=cpu" in r.getMessage() for r in caplog.records)
