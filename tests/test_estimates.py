"""Intervals: Wilson, the crossed bootstrap and its vectorised means, minima."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmt_core.claims.estimates import (
    Estimate,
    MacroMean,
    MeanOfFinite,
    bootstrap_estimate,
    crossed_bootstrap,
    minimum,
    paired_estimate,
    wilson,
)


def test_wilson_known_values():
    # Brown, Cai & DasGupta (2001), and the audit's 8/9 example: [0.57, 0.98]
    e = wilson(8, 9)
    assert (round(e.low, 2), round(e.high, 2)) == (0.57, 0.98)
    e = wilson(0, 10)
    assert e.low == 0.0 and 0.27 < e.high < 0.29
    assert math.isnan(wilson(0, 0).value)


@given(st.integers(0, 50), st.integers(1, 50))
def test_wilson_contains_the_proportion(k, n):
    k = min(k, n)
    e = wilson(k, n)
    assert 0 <= e.low <= k / n <= e.high <= 1


def test_crossed_bootstrap_covers_the_mean():
    # 95 % intervals of the mean of (R, n) normal values cover the true mean in
    # about 95 % of draws (the crossed bootstrap is conservative with replicates).
    rng = np.random.default_rng(0)
    hits = 0
    for k in range(200):
        values = rng.normal(0.0, 1.0, (3, 40)) + rng.normal(0.0, 0.3, (3, 1))
        e = crossed_bootstrap(values, seed=k, n_boot=400)
        hits += e.low <= 0.0 <= e.high
    assert 0.85 <= hits / 200 <= 0.995


def test_vectorised_means_match_the_generic_bootstrap():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(4, 90))
    v[rng.random(v.shape) < 0.2] = np.nan
    classes = np.broadcast_to(rng.integers(0, 3, 90), v.shape).astype(float)
    fast = bootstrap_estimate((v, classes), MacroMean(), strata=classes[0], seed=3)
    slow = crossed_bootstrap((v, classes), lambda a, c: MacroMean()((a, c)), strata=classes[0],
                             seed=3, n_boot=2000)
    assert fast.value == pytest.approx(slow.value)
    assert fast.low == pytest.approx(slow.low, abs=0.03)
    assert fast.high == pytest.approx(slow.high, abs=0.03)
    assert len(fast.replicates) == 4


def test_paired_difference_uses_the_same_resamples():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 60))
    b = a - 0.2  # a constant shift: the paired interval collapses onto it
    for stat in (MeanOfFinite(), lambda values: float(np.nanmedian(values[0]))):
        e = paired_estimate((a,), (b,), stat, strata=None, seed=0)
        assert e.value == pytest.approx(0.2)
        assert e.low == pytest.approx(0.2) and e.high == pytest.approx(0.2)
    flipped = paired_estimate((a,), (b,), MeanOfFinite(), sign=-1.0)
    assert flipped.value == pytest.approx(-0.2)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(-5, 5), st.floats(0, 2), st.floats(0, 2)), min_size=1,
                max_size=6))
def test_minimum_decides_every_bound_at_once(rows):
    estimates = {f"c{k}": Estimate(v, v - a, v + b, "t") for k, (v, a, b) in enumerate(rows)}
    _, m = minimum(estimates)
    for bar in np.linspace(-8, 8, 17):
        all_hold = all(e.low >= bar for e in estimates.values())
        one_fails = any(e.high < bar for e in estimates.values())
        assert (m.low >= bar) == all_hold
        assert (m.high < bar) == one_fails


def test_spread_and_json():
    e = Estimate(1.0, 0.5, 1.5, "t", 10, (0.9, 1.1))
    assert e.spread == pytest.approx(np.std([0.9, 1.1], ddof=1))
    d = Estimate(float("nan"), 0.0, 1.0, "t").to_dict()
    assert d["value"] is None and d["interval"] == [0.0, 1.0]
