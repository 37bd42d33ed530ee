"""The runtime dependency set alone (no [train], no torch) installs, imports and serves.

Builds a clean virtualenv with `pip install .` (exactly what the Docker builder stage runs),
starts `hct serve` from it on the bundled model and a SQLite file, and asks for a prediction
over real HTTP. Slow (a minute or two: a real install), so it runs once per test session.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check"]
    build = tmp_path_factory.mktemp("build")  # build outside the checkout: no stray artefacts
    subprocess.run([*pip, str(ROOT)], check=True, cwd=build, timeout=900)
    return venv


def test_runtime_install_has_no_torch_and_no_plain_onnxruntime(runtime_venv):
    python = str(runtime_venv / "bin" / "python")
    assert subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0
    listed = subprocess.run([python, "-m", "pip", "list", "--format", "json"], check=True,
                            capture_output=True, text=True).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert "onnxruntime-gpu" in names and "onnxruntime" not in names
    assert "torch" not in names
    assert "ray" not in names  # Ray is the optional [ray] extra, never the service runtime


def test_runtime_venv_serves_a_prediction(runtime_venv, tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HCT_")}
    env |= {"HCT_MODEL_DIR": str(ROOT / "models" / "default"), "HCT_PORT": str(port),
            "HCT_DATABASE_URL": f"sqlite:///{tmp_path / 'hct.db'}", "HCT_RUN_JOBS": "false",
            "HCT_EXECUTION_PROVIDER": "cpu", "HCT_UPLOAD_DIR": str(tmp_path / "uploads")}
    server = subprocess.Popen([str(runtime_venv / "bin" / "hct"), "serve"], env=env,
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, server.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "server not ready in 90 s"
            time.sleep(0.5)
        # An in-distribution sample (a synthetic patient), so the quality verdict gives a value
        from ingestion.synthetic.cohort import generate_block

        cells = generate_block(9400, 0, 600).cells[0]  # [600, 2]
        body = json.dumps({"patient_id": "P", "sample_id": "S",
                           "volume_fl": cells[:, 0].tolist(),
                           "hemoglobin_pg": cells[:, 1].tolist()}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/predictions", data=body,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 201
            answer = json.loads(r.read())
        assert 10 < answer["hematocrit_pct"] < 70
        # auto keeps fp32 on the CPU: the shipped int8 variant's values depend on the other
        # samples in a model call (dynamic activation quantisation)
        assert answer["model"]["provider"] == "CPUExecutionProvider"
    finally:
        server.terminate()
        server.wait(timeout=30)
