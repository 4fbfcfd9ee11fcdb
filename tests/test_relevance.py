"""Known answers and properties of pmt_core.explain.relevance on constructed maps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from pmt_core.explain import relevance as rel
from pmt_core.features.scattering import PathTable

# A small path table shaped like the real one: S1 paths first, then S2 paths whose
# lambda2 exists only well below their carrier (fewer S2 paths at high lambda2).
CARRIERS = np.array([100.0, 200.0, 400.0, 800.0])
MODULATIONS = np.array([2.0, 4.0, 8.0, 16.0, 32.0])


def _table() -> PathTable:
    order, carrier, modulation = [], [], []
    for c in CARRIERS:
        order.append(1)
        carrier.append(c)
        modulation.append(np.nan)
    for c in CARRIERS:
        for m in MODULATIONS:
            if m <= c / 25:  # 100 Hz: 2, 4; 200: 2..8; 400: 2..16; 800: all
                order.append(2)
                carrier.append(c)
                modulation.append(m)
    known = {
        "order": np.array(order),
        "carrier_hz": np.array(carrier),
        "modulation_hz": np.array(modulation),
        "kymatio_index": np.arange(len(order)),
    }
    # Filter metadata (j, n, ...) is irrelevant here: fill whatever else the table holds.
    extra = {f.name: np.full((len(order), 2), np.nan) for f in dataclasses.fields(PathTable)
             if f.name not in known}
    return PathTable(**known, **extra)


PATHS = _table()
N_PATHS = len(PATHS)
S2 = np.flatnonzero(PATHS.second_order)


def _path(carrier, modulation=None) -> int:
    if modulation is None:
        hit = (PATHS.order == 1) & (PATHS.carrier_hz == carrier)
    else:
        hit = (PATHS.carrier_hz == carrier) & (PATHS.modulation_hz == modulation)
    (idx,) = np.flatnonzero(hit)
    return int(idx)


def test_table_shape():
    assert PATHS.first_order.sum() == 4
    assert PATHS.second_order.sum() == 2 + 3 + 4 + 5


def test_local_maps_mean_over_frames():
    r = np.arange(2 * N_PATHS * 3, dtype=float).reshape(2, N_PATHS, 3)
    np.testing.assert_allclose(rel.local_maps(r), r.mean(-1))
    with pytest.raises(ValueError):
        rel.local_maps(r[0])


def test_local_maps_accepts_torch():
    torch = pytest.importorskip("torch")
    r = torch.ones(1, N_PATHS, 4)
    np.testing.assert_allclose(rel.local_maps(r), 1.0)


def test_kurtosis_matches_scipy():
    rng = np.random.default_rng(0)
    maps = rng.standard_t(3, size=(7, 1200))
    expected = [stats.kurtosis(m, fisher=True) for m in maps]
    np.testing.assert_allclose(rel.kurtosis_per_example(maps), expected, rtol=1e-12)


def test_kurtosis_constant_map_is_nan_and_summary_skips_it():
    maps = np.vstack([np.zeros(50), np.r_[np.zeros(49), 1.0]])
    k = rel.kurtosis_per_example(maps)
    assert np.isnan(k[0]) and k[1] > 40
    s = rel.kurtosis_summary(k)
    assert s.n == 1 and s.mean == pytest.approx(k[1]) and s.sd == 0.0


def test_kurtosis_summary_ddof():
    s0 = rel.kurtosis_summary([1.0, 3.0])
    s1 = rel.kurtosis_summary([1.0, 3.0], ddof=1)
    assert (s0.mean, s0.sd) == (2.0, 1.0)
    assert s1.sd == pytest.approx(np.sqrt(2.0))


def test_top_n_aggregate_known_counts():
    maps = np.zeros((3, N_PATHS))
    # example 0 (class 0): top-2 at paths 5, 7; example 1 (class 0): 5, 0;
    # example 2 (class 1): 3 and S1 path 1 (S1 paths count: Eq. 13 in the code).
    maps[0, [5, 7]] = [2.0, 1.0]
    maps[1, [5, 0]] = [3.0, 1.0]
    maps[2, [3, 1]] = [-0.1 + 1, 0.5]
    maps[:, 10] = -5.0  # large magnitude but negative: never a top (signed)
    counts = rel.top_n_aggregate(maps, [0, 0, 1], n=2, n_classes=3)
    assert counts.shape == (3, N_PATHS)
    assert counts[0, 5] == 2 and counts[0, 7] == 1 and counts[0, 0] == 1
    assert counts[1, 3] == 1 and counts[1, 1] == 1
    assert counts[:, 10].sum() == 0
    assert counts[2].sum() == 0


def test_top_n_positions_order_and_errors():
    maps = np.array([[0.1, 0.5, 0.3, 0.9]])
    np.testing.assert_array_equal(rel.top_n_positions(maps, 3), [[3, 1, 2]])
    with pytest.raises(ValueError):
        rel.top_n_positions(maps, 5)
    with pytest.raises(ValueError):
        rel.top_n_aggregate(maps, [0, 1])


@settings(max_examples=40, deadline=None)
@given(
    maps=hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.just(N_PATHS)),
                    elements=st.floats(-1e3, 1e3)),
    n=st.integers(1, 6),
    data=st.data(),
)
def test_top_n_aggregate_counts_sum(maps, n, data):
    labels = np.array(data.draw(st.lists(st.integers(0, 2), min_size=len(maps),
                                         max_size=len(maps))))
    counts = rel.top_n_aggregate(maps, labels, n=n, n_classes=3)
    np.testing.assert_array_equal(counts.sum(1), n * np.bincount(labels, minlength=3))
    assert counts.max() <= np.bincount(labels).max()  # a path counts once per example


def test_peak_modulation_of_planted_peak():
    maps = np.zeros((2, N_PATHS))
    maps[0, _path(800.0, 16.0)] = 1.0
    maps[1, _path(200.0, 4.0)] = 1.0
    maps[1, _path(400.0)] = 9.0  # an S1 peak is ignored: no lambda2 there
    np.testing.assert_array_equal(rel.peak_modulation_hz(maps, PATHS), [16.0, 4.0])
    np.testing.assert_array_equal(rel.peak_carrier_hz(maps, PATHS), [800.0, 200.0])
    assert rel.peak_carrier_hz(maps, PATHS, order=None)[1] == 400.0
    assert rel.peak_carrier_hz(maps, PATHS, order=1)[1] == 400.0


@settings(max_examples=40, deadline=None)
@given(
    maps=hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.just(N_PATHS)),
                    elements=st.floats(-1e3, 1e3)),
    scale=st.floats(1e-3, 1e3),
)
def test_peaks_invariant_to_positive_scaling(maps, scale):
    np.testing.assert_array_equal(rel.peak_path(maps, PATHS), rel.peak_path(maps * scale, PATHS))
    np.testing.assert_array_equal(
        rel.top_n_aggregate(maps, np.zeros(len(maps), int), 3),
        rel.top_n_aggregate(maps * scale, np.zeros(len(maps), int), 3),
    )


def test_octave_distance():
    np.testing.assert_allclose(rel.octave_distance([8.0, 4.0, 10.0], [4.0, 8.0, 10.0]),
                               [1.0, 1.0, 0.0])
    assert rel.octave_distance(2.0, 2.0 * 2**0.25) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        rel.octave_distance(0.0, 1.0)


@given(a=st.floats(1e-2, 1e4), b=st.floats(1e-2, 1e4))
def test_octave_distance_symmetric(a, b):
    assert rel.octave_distance(a, b) == pytest.approx(rel.octave_distance(b, a))


def test_chance_hit_rate_counts_paths_not_columns():
    # 8 Hz +- 0.5 octave covers lambda2 = 8 only: S2 paths with lambda2 = 8 are at
    # carriers 200, 400, 800 -> 3 of 14 S2 paths (3 / 5 columns would be wrong).
    np.testing.assert_allclose(rel.chance_hit_rate(PATHS, [8.0], 0.5), [3 / 14])
    # 2 Hz exists under all four carriers; tolerance 1 octave adds 4 Hz (4 paths)
    np.testing.assert_allclose(rel.chance_hit_rate(PATHS, [2.0], 1.0), [8 / 14])


def test_s1_share():
    maps = np.zeros((2, N_PATHS))
    maps[0, _path(100.0)] = -1.0  # signs do not matter: |relevance|
    maps[0, _path(800.0, 2.0)] = 3.0
    np.testing.assert_allclose(rel.s1_share(maps, PATHS)[0], 0.25)
    assert np.isnan(rel.s1_share(maps, PATHS)[1])
    uniform = np.ones((1, N_PATHS))
    np.testing.assert_allclose(rel.s1_share(uniform, PATHS), PATHS.first_order.mean())


def test_rowwise_spearman_matches_scipy_and_constant_is_nan():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 4, 30))
    expected = [stats.spearmanr(x, y).statistic for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(rel.rowwise_spearman(a, b), expected)
    a[0] = 1.0
    assert np.isnan(rel.rowwise_spearman(a, b)[0])


def test_lambda2_profile_sums_over_carriers():
    counts = np.zeros(N_PATHS)
    counts[_path(400.0, 8.0)] = 2
    counts[_path(800.0, 8.0)] = 3
    counts[_path(800.0, 32.0)] = 1
    counts[_path(100.0)] = 7  # S1: no lambda2, left out
    freqs, profile = rel.lambda2_profile(counts, PATHS)
    np.testing.assert_array_equal(freqs, MODULATIONS)
    np.testing.assert_array_equal(profile, [0, 0, 5, 0, 1])
    # leading axes are kept
    _, stacked = rel.lambda2_profile(np.vstack([counts, 2 * counts]), PATHS)
    np.testing.assert_array_equal(stacked[1], 2 * profile)


# --- grouped similarity and its random-split reference -------------------------
def _pitch_maps(moving: bool, n_per_group=6, n_groups=3, seed=0):
    """Noisy maps of one class whose S2 peak is fixed in law (invariant) or moves with 'f0'.

    Each example gets up to 3 bumped S2 paths sharing one lambda2, drawn from the same
    law in every group (invariant: 4, 8 or 16 Hz) or set by the group (moving: 2, 8,
    32 Hz). The draw and the noise on the other top-5 places make small-group
    profiles differ even when nothing depends on the group, as with the real 3-16
    examples per f0 tercile.
    """
    rng = np.random.default_rng(seed)
    n = n_per_group * n_groups
    groups = np.repeat(np.arange(n_groups), n_per_group)
    maps = rng.standard_normal((n, N_PATHS))
    for i, g in enumerate(groups):
        hz = [2.0, 8.0, 32.0][g] if moving else rng.choice([4.0, 8.0, 16.0])
        cells = np.flatnonzero(PATHS.modulation_hz == hz)
        maps[i, rng.choice(cells, size=min(3, cells.size), replace=False)] += 6.0
    order = rng.permutation(n)  # groups need not be contiguous
    return maps[order], groups[order]


def test_peak_presence_reads_the_input_at_the_peak():
    maps = np.zeros((2, N_PATHS))
    maps[:, _path(800.0, 16.0)] = 1.0
    reference = np.ones(N_PATHS)
    inputs = np.ones((2, N_PATHS))
    inputs[0, _path(800.0, 16.0)] = 3.0   # more of this modulation than usual: presence
    inputs[1, _path(800.0, 16.0)] = 0.2   # less than usual: the peak is an absence
    inputs[1, _path(400.0, 8.0)] = 9.0    # presence elsewhere does not count
    np.testing.assert_array_equal(rel.peak_on_present(maps, inputs, reference, PATHS),
                                  [True, False])


def test_chance_hit_rate_matches_random_maps():
    # a random map's S2 peak is uniform over the S2 paths: 3 of 14 lie within
    # half an octave of 8 Hz, the localisation claims' chance hit rate
    rng = np.random.default_rng(1)
    maps = rng.standard_normal((20000, N_PATHS))
    rate = np.full(len(maps), 8.0)
    hits = (rel.octave_distance(rel.peak_modulation_hz(maps, PATHS), rate) <= 0.5).mean()
    assert hits == pytest.approx(3 / 14, abs=0.01)
    assert rel.chance_hit_rate(PATHS, rate, 0.5) == pytest.approx(3 / 14)
