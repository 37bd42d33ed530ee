import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestion.batching import (
    bucket_by_length,
    pad_sets,
    sample_seed,
    subsample,
)
from ingestion.cells import CellSet

cell_arrays = st.integers(min_value=1, max_value=400).flatmap(
    lambda n: st.builds(
        lambda seed: np.random.default_rng(seed).uniform(1, 200, (n, 2)).astype(np.float32),
        st.integers(0, 2**32 - 1),
    )
)


@settings(max_examples=60, deadline=None)
@given(cells=cell_arrays, size=st.integers(1, 500), key=st.text(min_size=1, max_size=20))
def test_subsample_is_deterministic_ordered_subset(cells, size, key):
    a = subsample(cells, size, key)
    b = subsample(cells.copy(), size, key)
    assert np.array_equal(a, b)
    assert a.shape == (min(size, cells.shape[0]), 2)
    # an ordered subset: every row exists in the input, in input order
    rows = {tuple(r): i for i, r in enumerate(cells.tolist())}
    positions = [rows[tuple(r)] for r in a.tolist()]
    assert positions == sorted(positions)


@settings(max_examples=60, deadline=None)
@given(sets=st.lists(cell_arrays, min_size=1, max_size=6), extra=st.integers(0, 50))
def test_padding_never_changes_valid_cells(sets, extra):
    size = max(s.shape[0] for s in sets) + extra
    x, lengths = pad_sets(sets, size)
    assert x.shape == (len(sets), size, 2) and x.dtype == np.float32
    assert lengths.dtype == np.int64
    for b, s in enumerate(sets):
        assert lengths[b] == s.shape[0]
        assert np.array_equal(x[b, : s.shape[0]], s)
        assert not x[b, s.shape[0] :].any()


def test_different_sample_ids_give_different_subsets():
    cells = np.random.default_rng(0).uniform(50, 120, (5000, 2)).astype(np.float32)
    assert not np.array_equal(subsample(cells, 1000, "s-1"), subsample(cells, 1000, "s-2"))
    assert sample_seed("s-1") == sample_seed("s-1") != sample_seed("s-2")


def test_pad_rejects_sets_longer_than_size():
    with pytest.raises(ValueError, match="more than size = 3"):
        pad_sets([np.ones((4, 2), np.float32)], size=3)


def batch_cellsets(cellsets, size=1000):
    """Subsample each sample (seeded by sample id) and pad them together, as the Predictor does."""
    return pad_sets([subsample(cs.cells(), size, cs.sample_id) for cs in cellsets])


def test_batch_cellsets_subsamples_by_sample_id():
    rng = np.random.default_rng(1)
    v = rng.uniform(60, 120, 1500)
    a = CellSet("p", "s-a", v, v * 0.33)
    b = CellSet("p", "s-b", v[:700], v[:700] * 0.33)
    x, lengths = batch_cellsets([a, b], size=1000)
    assert x.shape == (2, 1000, 2)
    assert lengths.tolist() == [1000, 700]
    assert np.array_equal(x[0], subsample(a.cells(), 1000, "s-a"))


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 1000), min_size=1, max_size=200),
       batch_size=st.integers(1, 64))
def test_buckets_cover_every_set_once_with_sorted_lengths(lengths, batch_size):
    arr = np.array(lengths)
    buckets = bucket_by_length(arr, batch_size)
    flat = np.concatenate(buckets)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert all(len(b) <= batch_size for b in buckets)
    maxima = [arr[b].max() for b in buckets]
    minima = [arr[b].min() for b in buckets]
    assert all(mx <= mn for mx, mn in zip(maxima, minima[1:], strict=False))
