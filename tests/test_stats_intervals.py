"""Known answers of the statistics library: p-values, minima, Holm, power, vectorised means."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmt_core.stats.intervals import (
    Estimate,
    MacroMean,
    crossed_t,
    exact,
    minimum,
    paired_t,
    per_replicate_estimate,
    proportion,
)
from pmt_core.stats.multiplicity import holm
from pmt_core.stats.power import sizes_needed


def test_p_value_reads_the_t_reference():
    e = Estimate(1.96, 0.0, 3.92, "t", 100, (), 1.0, math.inf)
    assert e.p_value(0.0, "at least") == pytest.approx(0.025, abs=1e-4)
    assert e.p_value(0.0, "at most") == pytest.approx(0.975, abs=1e-4)
    assert exact(2.0).p_value(1.0, "at least") == 0.0
    assert exact(0.5).p_value(1.0, "at least") == 1.0


def test_minimum_is_an_intersection_union():
    a, b = Estimate(0.3, 0.1, 0.5, "t"), Estimate(0.2, -0.1, 0.6, "t")
    name, m = minimum({"a": a, "b": b})
    assert name == "b" and (m.value, m.low, m.high) == (0.2, -0.1, 0.5)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_is_monotone_and_at_least_the_raw_p(ps):
    adj = holm(ps)
    assert np.all(adj >= np.asarray(ps) - 1e-12) and np.all(adj <= 1.0)
    order = np.argsort(ps, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-12)


def test_holm_known_answer():
    # Holm (1979): p = (0.01, 0.04, 0.03) -> (0.03, 0.06, 0.06)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(holm([np.nan, 0.01])[0]) and holm([np.nan, 0.01])[1] == 0.01


def test_power_sizes_scale_as_the_variance():
    out = sizes_needed((0.0, 1.0, 0.0), effect=0.28, n=100, replicates=5)
    # V = 1 / n; (1.96 + 0.84)^2 / 0.28^2 = 100 examples for 80 % power
    assert out["n_needed"] == pytest.approx(100, abs=1)
    assert out["power"] == pytest.approx(0.80, abs=0.01)
    # replicate noise alone cannot be beaten with more examples
    out = sizes_needed((1.0, 0.0, 0.0), effect=0.1, n=100, replicates=5)
    assert out["n_needed"] is None and out["replicates_needed"] > 5


def test_vectorised_macro_mean_matches_its_generic_form():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(4, 90))
    v[rng.random(v.shape) < 0.2] = np.nan
    classes = np.broadcast_to(rng.integers(0, 3, 90), v.shape).astype(float)
    fast = crossed_t((v, classes), MacroMean(), strata=classes[0], seed=3)
    slow = crossed_t((v, classes), lambda a: MacroMean()(a), strata=classes[0], seed=3,
                     n_draws=400)
    assert fast.value == pytest.approx(slow.value)
    assert fast.se == pytest.approx(slow.se, rel=0.15)


def test_identical_replicates_have_no_replicate_component():
    rng = np.random.default_rng(2)
    row = rng.normal(size=60)
    e = crossed_t(np.tile(row, (5, 1)))
    assert e.components[0] == pytest.approx(0.0, abs=1e-12)
    assert e.df > 30  # the examples' degrees of freedom, not the replicates'


def test_paired_difference_with_itself_is_exactly_zero():
    rng = np.random.default_rng(3)
    a = (rng.normal(size=(5, 40)),)
    e = paired_t(a, a)
    assert (e.value, e.low, e.high) == (0.0, 0.0, 0.0)


def test_per_replicate_t_and_proportion_ends():
    e = per_replicate_estimate([1.0, 2.0, 3.0])
    assert e.value == 2.0 and e.df == 2
    p = proportion(np.ones((5, 30)))
    assert p.value == 1.0 and p.high == 1.0 and p.low < 1.0
