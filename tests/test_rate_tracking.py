"""Per-example statistics the relevance claims compute (pmt_core.explain.relevance)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pmt_core.explain import relevance as R
from pmt_core.features.scattering import path_table
from pmt_core.stats.correlation import within_class_rho as _rate_rho
from pmt_core.techniques import MODULATION_BAND_HZ

PATHS = path_table()
LAM2 = np.unique(PATHS.modulation_hz[PATHS.second_order])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(2.0, 60.0), min_size=3, max_size=30), st.integers(0, 3))
def test_a_class_constant_peak_has_no_lift_over_permuted_rates(rates, k):
    rates = np.array(rates)
    peak = np.full(len(rates), LAM2[4 + k])  # the same lambda2 for the whole class
    classes = np.zeros(len(rates), int)
    hits = R.octave_distance(peak, rates) <= 0.5
    expected = R.expected_permuted_hits(peak, rates, classes, 0.5)
    assert hits.mean() - expected.mean() == pytest.approx(0.0, abs=1e-12)


def test_a_map_at_each_rate_beats_the_permutation():
    rng = np.random.default_rng(0)
    rates = np.exp2(rng.uniform(1, 6, 200))
    classes = rng.integers(0, 3, 200)
    peak = LAM2[np.argmin(np.abs(np.log2(LAM2[None, :] / rates[:, None])), axis=1)]
    lift = (R.octave_distance(peak, rates) <= 0.5) - R.expected_permuted_hits(peak, rates,
                                                                              classes, 0.5)
    assert lift.mean() > 0.4


def _pooled_rho_by_hand(x, y, classes):
    """The peak claim's statistic for one replicate, the plain way: scipy's Spearman
    per class (a constant counting as 0), pooled by Fisher z with weights n - 3."""
    zs, ws = [], []
    for c in np.unique(classes):
        keep = classes == c
        if np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
            rho = 0.0
        else:
            rho = stats.spearmanr(x[keep], y[keep]).statistic
        zs.append(np.arctanh(np.clip(rho, -0.999999, 0.999999)))
        ws.append(keep.sum() - 3)
    return float(np.tanh(np.average(zs, weights=ws)))


def test_within_class_rank_correlation_pools_classes_and_counts_constants_as_zero():
    x = np.r_[np.arange(10.0), np.arange(10.0)]
    y = np.r_[np.arange(10.0), np.full(10, 3.0)]
    classes = np.r_[np.zeros(10), np.ones(10)]
    pooled = _pooled_rho_by_hand(x, y, classes)
    assert pooled == pytest.approx(np.tanh(np.arctanh(0.999999) / 2))  # rho 1 and 0, n 10
    # the vectorised statistic of the peak claim equals it row by row
    grid = (np.stack([x, x]), np.stack([y, y]), np.stack([classes, classes]))
    assert _rate_rho(grid) == pytest.approx(pooled)


def test_ordered_pairs_come_from_the_bands():
    pairs = R.ordered_pairs(MODULATION_BAND_HZ, list(MODULATION_BAND_HZ))
    assert ("vibrato", "flatterzunge") in pairs and ("vibrato", "tremolo") in pairs
    assert ("trill", "vibrato") not in pairs and ("trill", "tremolo") not in pairs
    names = ("vibrato", "flatterzunge")
    share, rows = R.ordered_pair_share([5, 6, 30, 25], [0, 0, 1, 1], names, MODULATION_BAND_HZ)
    assert share == 1.0 and rows[0]["ordered"]
    share, _ = R.ordered_pair_share([30, 30, 5, 6], [0, 0, 1, 1], names, MODULATION_BAND_HZ)
    assert share == 0.0


def test_restrict_below_and_window_share():
    maps = np.ones((2, len(PATHS)))
    cut = R.restrict_below(maps, PATHS, [10.0, 1e9])
    dropped = PATHS.second_order & (PATHS.modulation_hz >= 10.0)
    assert np.all(np.isneginf(cut[0, dropped])) and np.all(np.isfinite(cut[1]))
    assert np.all(cut[:, PATHS.first_order] == 1)
    share = R.window_share(maps, PATHS, [8.0, 8.0], 0.25)
    lam2 = PATHS.modulation_hz[PATHS.second_order]
    assert share[0] == pytest.approx(np.mean(np.abs(np.log2(lam2 / 8.0)) <= 0.25))
