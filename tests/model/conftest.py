from pathlib import Path

import numpy as np
import pytest

from ingestion.flowrbc import write_flowrbc


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Flow-RBC file whose label shifts cell volume, so a model can learn something."""
    rng = np.random.default_rng(0)
    n = 400
    hct = rng.normal(42, 5, n)
    volume = rng.normal(90, 10, (n, 300)) * (1 + (hct[:, None] - 42) / 60)
    cells = np.stack([volume, volume * 0.33], axis=-1).astype(np.float32)  # [n, 300, 2]
    path = tmp_path_factory.mktemp("cohort") / "small.h5"
    write_flowrbc(path, {"train": (cells[:320], hct[:320]), "test": (cells[320:], hct[320:])})
    return path
