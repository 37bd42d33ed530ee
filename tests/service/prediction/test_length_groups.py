"""Length-aware model calls: groups cover every sample once with little padding, and the
grouped call gives the values of one call over the whole padded batch."""

import numpy as np

from service.prediction.packing import length_groups, padded_cells


def test_groups_cover_every_sample_once_with_bounded_padding():
    lengths = np.random.default_rng(0).integers(200, 1001, 64)
    groups = length_groups(lengths, max_padding=0.15)
    assert sorted(np.concatenate(groups).tolist()) == list(range(64))
    for g in groups:
        width = lengths[g].max()
        assert width * g.size - lengths[g].sum() <= 0.15 * width * g.size
    assert padded_cells(lengths, groups) < 0.8 * lengths.max() * lengths.size


def test_equal_lengths_make_one_group():
    assert len(length_groups(np.full(32, 1000))) == 1


def test_grouped_model_calls_match_one_padded_call(client):
    predictor = client.app.state.hct.predictor
    rng = np.random.default_rng(1)
    sets = [np.stack([rng.normal(90, 12, n).clip(40, 180), rng.normal(30, 4, n).clip(10, 60)],
                     axis=1).astype(np.float32) for n in rng.integers(200, 1001, 24)]
    grouped = predictor.run_model(sets)
    whole = predictor.run_model(sets, by_length=False)
    assert np.abs(grouped.values - whole.values).max() <= 1e-4
    assert np.array_equal(grouped.lengths, whole.lengths)
