"""Fault generators change what they claim to and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from ingestion.synthetic.cohort import generate_block
from ingestion.synthetic.faults import (
    PG_PER_FMOL,
    SAMPLE_FAULTS,
    faulty_samples,
    hemoglobin_fmol,
    swapped_channels,
    volume_calibration,
)


@pytest.fixture(scope="module")
def cells() -> np.ndarray:
    return generate_block(4242, 0, 1000).cells[:8]  # [8, 1000, 2]


def test_unit_and_channel_faults_are_exact_transformations(cells) -> None:
    rng = np.random.default_rng(0)
    one = cells[0]
    np.testing.assert_allclose(hemoglobin_fmol(one, rng)[:, 1], one[:, 1] / PG_PER_FMOL, rtol=1e-6)
    np.testing.assert_array_equal(swapped_channels(one, rng), one[:, ::-1])
    shifted = volume_calibration(one, rng, factor=1.05)
    np.testing.assert_allclose(shifted[:, 0], one[:, 0] * 1.05, rtol=1e-6)
    np.testing.assert_array_equal(shifted[:, 1], one[:, 1])


def test_faults_leave_the_input_untouched_and_stay_in_valid_ranges(cells) -> None:
    before = cells.copy()
    for name in SAMPLE_FAULTS:
        for out in faulty_samples(cells, name, seed=0):
            assert out.ndim == 2 and out.shape[1] == 2 and np.all(out > 0), name
            assert np.all(out[:, 0] <= 300.0), name
    np.testing.assert_array_equal(cells, before)


def test_contamination_replaces_a_share_of_events(cells) -> None:
    out = faulty_samples(cells, "platelet_debris", seed=0)
    share = [np.mean(o[:, 0] < 30) - np.mean(c[:, 0] < 30) for o, c in zip(out, cells, strict=True)]
    assert 0.04 <= min(share) and max(share) <= 0.16


def test_faults_are_seeded_and_unknown_names_refused(cells) -> None:
    a = faulty_samples(cells, "extra_noise", seed=5)
    b = faulty_samples(cells, "extra_noise", seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    with pytest.raises(ValueError, match="fault = 'bogus'"):
        faulty_samples(cells, "bogus", seed=0)
