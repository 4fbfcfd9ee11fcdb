"""AM/FM test signals and the peak/ratio predictions of scattering theory."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmt_core.features import theory
from pmt_core.features.scattering import ScatteringConfig, path_table

PAPER = ScatteringConfig()


@pytest.fixture(scope="module")
def paths():
    return path_table()


def test_tones_have_the_requested_shape_and_depth():
    am = theory.am_tone(1000.0, 8.0, 0.5, PAPER)
    assert am.shape == (PAPER.n_samples,)
    assert am.max() == pytest.approx(1.5, abs=1e-3)
    fm = theory.fm_tone(1000.0, 8.0, 20.0, PAPER)
    assert np.abs(fm).max() <= 1.0
    with pytest.raises(ValueError, match="depth"):
        theory.am_tone(1000.0, 8.0, 1.2, PAPER)


def test_domain(paths):
    assert theory.in_theory_domain(1000.0, 8.0, paths)
    assert not theory.in_theory_domain(100.0, 20.0, paths)  # w1 < 16 w2
    assert not theory.in_theory_domain(1000.0, 0.5, paths)  # below the S2 filter bank


@settings(max_examples=30, deadline=None)
@given(path_index=st.integers(0, 1125))
def test_a_planted_peak_is_found_exactly(paths, path_index):
    s2 = np.flatnonzero(paths.second_order)
    planted = s2[path_index]
    averaged = np.zeros(len(paths))
    averaged[planted] = 1.0
    check = theory.check_s2_peak(averaged, paths, paths.carrier_hz[planted],
                                 paths.modulation_hz[planted])
    assert check.peak_path == planted
    assert check.carrier_error_octaves == 0 and check.modulation_error_octaves == 0
    assert check.hit


def test_a_peak_two_filters_away_is_a_miss(paths):
    s2 = np.flatnonzero(paths.second_order & (paths.carrier_hz > 900) & (paths.carrier_hz < 1100))
    planted = s2[0]
    averaged = np.zeros(len(paths))
    averaged[planted] = 1.0
    check = theory.check_s2_peak(averaged, paths, paths.carrier_hz[planted] * 2 ** 0.25,
                                 paths.modulation_hz[planted])
    assert not check.hit


def test_fm_band_contains_the_carrier_and_widens_by_half_a_bandwidth():
    low, high = theory.fm_carrier_band(1000.0, 50.0, 8)
    assert low == pytest.approx(950 * (1 - 1 / 16))
    assert high == pytest.approx(1050 * (1 + 1 / 16))


def test_am_ratio_prediction_is_half_depth_times_filter_gain(paths):
    s2 = np.flatnonzero(paths.second_order)
    path = s2[len(s2) // 2]
    centre = paths.modulation_hz[path]
    ratio = theory.am_ratio_prediction(paths, PAPER, path, centre, 0.8)
    assert 0.3 < ratio <= 0.4 + 1e-6  # |psi^| peaks near 1 at its centre
