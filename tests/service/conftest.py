"""Service test fixtures: a real (small) model bundle exported through the project's own export
path, a real database (SQLite file, or a fresh PostgreSQL schema when HCT_TEST_DATABASE_URL is
set), and the real app behind TestClient (HTTP in-process, lifespan included).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from service.settings import Settings

torch = pytest.importorskip("torch")


def cells_for(hct: float, n: int, seed: int) -> np.ndarray:
    """Plausible cells whose volume tracks hematocrit a little, `[n, 2]`."""
    rng = np.random.default_rng(seed)
    volume = rng.normal(90 + (hct - 42) * 0.5, 11, n).clip(40, 180)
    hemoglobin = volume * rng.normal(0.33, 0.015, n)
    return np.stack([volume, hemoglobin], axis=1)


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.baselines import BaselineSet
    from model.deepsets import DeepSetsPP, ModelConfig
    from model.export import write_bundle

    torch.manual_seed(0)
    model = DeepSetsPP(ModelConfig(hidden=16, blocks=2, decoder_layers=2))
    model.set_normalisation(torch.tensor([90.0, 30.0]), torch.tensor([14.0, 4.6]), 42.0, 5.0)
    labels = np.random.default_rng(1).normal(42, 5, 200)
    x = np.stack([cells_for(h, 300, i) for i, h in enumerate(labels)]).astype(np.float32)
    baselines = BaselineSet.fit(x, None, labels)
    out = tmp_path_factory.mktemp("bundle")
    write_bundle(model, out, baselines=baselines, version="test-0", cells_per_set=1000,
                 training={"note": "untrained test model"}, metrics={},
                 reproduce=["pytest fixture"])
    return out


@pytest.fixture
def settings(bundle_dir: Path, database_url: str, tmp_path: Path) -> Settings:
    return Settings(environment="test", database_url=database_url, model_dir=bundle_dir,
                    upload_dir=tmp_path / "uploads", execution_provider="cpu",
                    max_queue_delay_ms=2.0, job_chunk_size=16, _env_file=None)


@pytest.fixture
def client(settings: Settings) -> Iterator:
    from fastapi.testclient import TestClient

    from service.api.app import create_app

    with TestClient(create_app(settings)) as test_client:
        yield test_client


class HeldModel:
    """Holds the app's real model at the door: calls wait until `release()` (deterministic
    queueing and batching in tests, without replacing the model).
    """

    def __init__(self, app) -> None:
        self.batcher = app.state.hct.online.batcher
        self._real = self.batcher.batch_fn
        self.inside = threading.Event()
        self._release = threading.Event()
        self.batch_sizes: list[int] = []
        self.batcher.batch_fn = self._held

    def _held(self, items: list) -> object:
        self.batch_sizes.append(len(items))
        self.inside.set()
        assert self._release.wait(30)
        return self._real(items)

    def release(self) -> None:
        self._release.set()

    def wait_until_queued(self, n: int, seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while self.batcher.depth < n:
            assert time.monotonic() < deadline, f"{n} requests never queued"
            time.sleep(0.005)


def prediction_body(patient: str, n: int = 300, seed: int = 0) -> dict:
    cells = cells_for(42.0, n, seed)
    return {"patient_id": patient, "sample_id": f"S-{patient}",
            "volume_fl": cells[:, 0].tolist(), "hemoglobin_pg": cells[:, 1].tolist()}


def metric_value(text: str, sample: str) -> float:
    """The value of one exposed Prometheus sample (name plus labels as exposed), 0 if absent.

    The registry is process-wide, so tests compare values before and after what they do.
    """
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
