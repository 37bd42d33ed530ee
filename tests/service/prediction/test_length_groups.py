"""Length-aware model calls: groups cover every sample once with little padding, and the
grouped call gives the values of one call over the whole padded batch."""

import numpy as np

from service.prediction.packing import length_groups, padded_cells, split_by_cells


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


def test_runs_hold_at_most_the_cell_cap_and_cover_every_set_once():
    lengths = np.array([1000, 900, 800, 700, 300, 200, 5000])
    group = np.argsort(-lengths, kind="stable")
    runs = split_by_cells(group, lengths, 2000)
    assert np.array_equal(np.concatenate(runs), group)
    assert [int(lengths[r].sum()) for r in runs] == [5000, 1900, 2000]  # 5000: a set alone
    assert all(int(lengths[r].sum()) <= 2000 for r in runs if r.size > 1)


def test_capped_model_calls_on_the_cpu_give_the_uncapped_values(bundle_dir):
    from service.prediction.predictor import CPU_CALL_CELLS, Predictor
    from service.runtime.bundle import load_bundle
    from service.runtime.onnx_model import OnnxModel

    model = OnnxModel(load_bundle(bundle_dir), "cpu", precision="fp32")
    capped = Predictor.for_model(model, 1000)
    assert capped.call_cells == CPU_CALL_CELLS
    uncapped = Predictor(model, capped.set_size, capped.baselines)
    rng = np.random.default_rng(2)
    sets = [np.stack([rng.normal(90, 12, 1000).clip(40, 180), rng.normal(30, 4, 1000)],
                     axis=1).astype(np.float32) for _ in range(20)]
    a, b = capped.run_model(sets), uncapped.run_model(sets)
    assert np.abs(a.values - b.values).max() <= 1e-4
