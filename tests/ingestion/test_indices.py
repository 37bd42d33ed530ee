import numpy as np
import pytest

from ingestion.batching import pad_sets
from ingestion.cells import CellSet
from ingestion.indices import indices_table, red_cell_indices
from ingestion.moments import moment_names, moments_table


def _sample(n: int, seed: int, mcv: float = 90.0, cv: float = 0.13) -> np.ndarray:
    rng = np.random.default_rng(seed)
    volume = rng.normal(mcv, mcv * cv, n)
    hemoglobin = volume * 0.33 * rng.normal(1.0, 0.03, n)
    return np.stack([volume, hemoglobin], axis=1).astype(np.float32)


def test_indices_match_textbook_formulas():
    cells = _sample(1000, 0)
    cs = CellSet("p", "s", cells[:, 0], cells[:, 1])
    idx = red_cell_indices(cs)
    v = cells[:, 0].astype(np.float64)
    h = cells[:, 1].astype(np.float64)
    assert idx.mcv_fl == pytest.approx(v.mean())
    assert idx.mch_pg == pytest.approx(h.mean())
    assert idx.mchc_g_dl == pytest.approx(100 * h.mean() / v.mean())
    assert idx.chcm_g_dl == pytest.approx((100 * h / v).mean())
    assert idx.rdw_cv_pct == pytest.approx(100 * v.std() / v.mean())
    assert idx.hdw_g_dl == pytest.approx((100 * h / v).std())
    assert idx.mentzer_index(5.0) == pytest.approx(v.mean() / 5.0)


def test_rdw_sd_tracks_width_of_a_gaussian_histogram():
    # For a Gaussian, the width at 20 % of the peak is 2·sqrt(2 ln 5)·SD ≈ 3.59·SD.
    cells = _sample(100_000, 1, mcv=90, cv=0.13)
    x, lengths = pad_sets([cells])
    width = indices_table(x, lengths)["rdw_sd_fl"][0]
    assert width == pytest.approx(2 * np.sqrt(2 * np.log(5)) * 90 * 0.13, rel=0.03)


def test_padding_never_leaks_into_indices_or_moments():
    a, b = _sample(1000, 2), _sample(400, 3, mcv=70)
    x, lengths = pad_sets([a, b])
    alone, alone_len = pad_sets([b])
    for table in (indices_table, moments_table):
        batched = table(x, lengths)
        single = table(alone, alone_len)
        for name in batched:
            assert batched[name][1] == pytest.approx(single[name][0], rel=1e-9), name


def test_moments_match_numpy():
    cells = _sample(1000, 4)
    x, lengths = pad_sets([cells], size=1200)
    m = moments_table(x, lengths)
    v = cells[:, 0].astype(np.float64)
    h = cells[:, 1].astype(np.float64)
    assert tuple(m) == moment_names()
    assert m["volume_mean"][0] == pytest.approx(v.mean())
    assert m["volume_sd"][0] == pytest.approx(v.std())
    z = (v - v.mean()) / v.std()
    assert m["volume_skew"][0] == pytest.approx((z**3).mean())
    assert m["volume_kurt"][0] == pytest.approx((z**4).mean() - 3)
    for q in (5, 25, 50, 75, 95):
        assert m[f"hemoglobin_q{q:02d}"][0] == pytest.approx(np.quantile(h, q / 100))
    assert m["corr_volume_hemoglobin"][0] == pytest.approx(np.corrcoef(v, h)[0, 1])


def test_microcytic_sample_has_lower_mcv_and_higher_rdw():
    normal = _sample(1000, 5, mcv=90, cv=0.12)
    micro = _sample(1000, 6, mcv=70, cv=0.18)
    x, lengths = pad_sets([normal, micro])
    t = indices_table(x, lengths)
    assert t["mcv_fl"][1] < 80 < t["mcv_fl"][0]
    assert t["rdw_cv_pct"][1] > t["rdw_cv_pct"][0]
    assert t["rdw_sd_fl"][1] > t["rdw_sd_fl"][0]


def test_batched_indices_match_one_sample_at_a_time():
    """The service computes indices for a whole micro-batch of differently sized samples."""
    from ingestion.indices import red_cell_indices_many

    rng = np.random.default_rng(3)
    samples = []
    for i, n in enumerate((1000, 250, 1300, 999, 4000)):
        volume = rng.normal(85 + i, 11, n).clip(30, 250)
        samples.append(CellSet(f"P{i}", f"S{i}", volume, volume * rng.normal(0.33, 0.02, n)))
    batched = red_cell_indices_many(samples, batch_size=2)
    for one, many in zip((red_cell_indices(s) for s in samples), batched, strict=True):
        assert many.n_cells == one.n_cells
        assert many.as_dict() == pytest.approx(one.as_dict(), rel=1e-12)
