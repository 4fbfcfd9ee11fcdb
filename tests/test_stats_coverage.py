"""Calibration of the interval methods (pmt_core.stats.coverage) and their known answers.

Every scenario runs 2,000 simulations: a calibrated method (true coverage 0.95)
falls outside [0.93, 0.97] by chance with probability about 1e-4 (0.02 is four
Monte Carlo errors). Scenarios with a documented limit (``expect``) are checked
for what the documentation says instead. The figures are seeded, so a failure
is a change in a method, not bad luck of the draw. Two layouts sit near the lower
edge (crossed_t with training and example noise mixed, true coverage about 0.94:
see pmt_core.stats.coverage); a change that reshuffles their draws can fail them
with a probability of a few per cent.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import special, stats

from pmt_core.__main__ import main
from pmt_core.stats import coverage as cov
from pmt_core.stats import coverage_scenarios as scenarios
from pmt_core.stats.bulk_statistics import FiniteMedian, WithinClassRho
from pmt_core.stats.correlation import within_class_rho
from pmt_core.stats.intervals import (
    N_VARIANCE_DRAWS_GENERIC,
    MeanOfFinite,
    crossed_t,
    paired_t,
    per_replicate_estimate,
    proportion,
)

N_SIMS = 2000
BAND = (0.93, 0.97)
#: Above ~20 s each on a 2-core runner: the generic statistics and the minima.
SLOW_METHODS = {"crossed_t within-class rho", "paired_t within-class rho", "crossed_t median",
                "minimum of proportions", "crossed_t MacroMean agreement lift"}


def _scenario_params():
    return [pytest.param(k, id=f"{k}-{s.method}-{s.layout[:40]}",
                         marks=[pytest.mark.slow] if s.method in SLOW_METHODS else [])
            for k, s in enumerate(scenarios.SCENARIOS)]


# ------------------------------------------------------------------- coverage --
@pytest.mark.parametrize("index", _scenario_params())
def test_coverage_in_the_suites_layouts(index):
    scenario = scenarios.SCENARIOS[index]
    row = cov.run_scenario(index, N_SIMS, seed=0)
    assert row["n_sims"] == N_SIMS
    assert row["mc_error"] == pytest.approx(
        math.sqrt(row["coverage"] * (1 - row["coverage"]) / N_SIMS))
    assert row["coverage"] + row["truth_below"] + row["truth_above"] == pytest.approx(1.0)
    text = (f"{scenario.method} ({scenario.layout}): coverage {row['coverage']:.3f} "
            f"+- {row['mc_error']:.3f}, truth below {row['truth_below']:.3f}, "
            f"above {row['truth_above']:.3f}")
    if scenario.expect == "calibrated":
        assert BAND[0] <= row["coverage"] <= BAND[1], text
    elif scenario.expect == "over-covers":
        # documented: conservative, never liberal
        assert row["coverage"] >= BAND[0], text
    elif scenario.expect == "under-covers":
        # documented (per_replicate_estimate on shared examples): still below the band,
        # so the documentation stays true; if this fails, the limit is gone
        assert row["coverage"] < BAND[0], text
    elif scenario.expect == "pass side":
        # documented (minimum): the truth lies below the lower end at most 2.5 % (the
        # intersection-union pass side); the upper end misses up to K x 2.5 %, K = 5
        assert row["truth_below"] <= 0.025 + 3 * math.sqrt(0.025 * 0.975 / N_SIMS), text
        assert row["coverage"] >= 1 - 0.025 - 5 * 0.025, text
    else:  # a new kind of limit needs its own check here
        pytest.fail(f"no check for {scenario.expect!r}: {scenario.known}")


def test_run_coverage_is_seeded_and_a_subset_reproduces_the_full_run():
    a = cov.run_coverage(n_sims=20, seed=3, methods=["proportion", "per_replicate_estimate"])
    b = cov.run_coverage(n_sims=20, seed=3, methods=["per_replicate_estimate"])
    drop = ("seconds",)
    same = [{k: v for k, v in r.items() if k not in drop} for r in a
            if r["method"] == "per_replicate_estimate"]
    assert same == [{k: v for k, v in r.items() if k not in drop} for r in b]
    assert {r["method"] for r in a} == {"proportion", "per_replicate_estimate"}
    assert all(r["nominal"] == 0.95 and r["n_sims"] == 20 for r in a)


def test_parallel_run_gives_the_serial_figures():
    methods = ["per_replicate_estimate", "proportion"]
    serial = cov.run_coverage(n_sims=10, seed=1, methods=methods)
    parallel = cov.run_coverage(n_sims=10, seed=1, methods=methods, workers=2)
    for a, b in zip(serial, parallel, strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"}


def test_run_coverage_rejects_no_simulation():
    with pytest.raises(ValueError, match="n_sims"):
        cov.run_coverage(n_sims=0)


# ------------------------------------------------------------------- truths --
def test_logit_location_gives_the_population_share():
    rng = np.random.default_rng(0)
    for p, scale in ((0.8, 1.6), (0.95, 2.0), (0.05, 2.1)):
        m = scenarios._logit_location(p, scale)
        mc = special.expit(m + scale * rng.standard_normal(1_000_000)).mean()
        assert mc == pytest.approx(p, abs=2e-3)


def test_rho_truth_is_the_population_spearman_of_the_model():
    rng = np.random.default_rng(0)
    lam0 = scenarios._rho_slope(0.3)
    assert scenarios._rho_truth(lam0) == pytest.approx(0.3, abs=1e-9)
    # one large "class" per training: the sample rho converges to the row's truth
    n, rows = 100_000, []
    for _ in range(10):
        lam = lam0 + scenarios._RHO_TRAINING * rng.standard_normal()
        x = rng.standard_normal(n)
        peak = lam * x + scenarios._RHO_SHARED * rng.standard_normal(n) + (
            scenarios._RHO_NOISE * rng.standard_normal(n))
        rows.append((stats.spearmanr(peak, x)[0], float(scenarios._spearman_of(lam))))
    sample, truth = np.array(rows).T
    assert np.max(np.abs(sample - truth)) < 0.01


# ------------------------------------------------- fast statistics = generic --
#: Resamples in these comparisons: the two paths agree draw by draw, so a few
#: dozen show it (the generic path evaluates the statistic 6 times per draw).
N_DRAWS = 40


def _rho_data(rng, ties: bool):
    classes = np.repeat(np.arange(5), scenarios.CLASS_SIZES)
    labels = np.broadcast_to(classes, (5, classes.size))
    peak = rng.standard_normal((5, classes.size))
    peak[rng.random(peak.shape) < 0.1] = np.nan
    rate = rng.standard_normal(classes.size)
    if ties:  # rounded values tie, as log2 of binned peak frequencies do
        peak, rate = np.round(peak, 1), np.round(rate, 1)
    return classes, labels, peak, np.broadcast_to(rate, peak.shape)


@pytest.mark.parametrize("ties", [False, True])
def test_within_class_rho_fast_path_gives_the_generic_interval(rng, ties):
    classes, labels, peak, rate = _rho_data(rng, ties)
    values = (peak, rate, labels)
    fast = crossed_t(values, WithinClassRho(), strata=classes, seed=5, n_draws=N_DRAWS)
    generic = crossed_t(values, within_class_rho, strata=classes, seed=5, n_draws=N_DRAWS)
    for f in ("value", "low", "high", "se", "df"):
        assert getattr(fast, f) == pytest.approx(getattr(generic, f), rel=1e-12, abs=1e-14)
    assert fast.replicates == pytest.approx(generic.replicates, rel=1e-12, abs=1e-14)


def test_within_class_rho_fast_path_draws_what_the_generic_one_draws(rng):
    # The peak-modulation claims use the fast path with the generic resample count,
    # so their figures are the generic statistic's without passing n_draws.
    classes, labels, peak, rate = _rho_data(rng, False)
    values = (peak, rate, labels)
    fast = crossed_t(values, WithinClassRho(n_draws=N_VARIANCE_DRAWS_GENERIC), strata=classes)
    generic = crossed_t(values, within_class_rho, strata=classes)
    assert (fast.low, fast.high) == pytest.approx((generic.low, generic.high), rel=1e-12)
    assert WithinClassRho().n_draws == MeanOfFinite.n_draws  # the simulations' default kept


def test_within_class_rho_fast_path_per_replicate_rates(rng):
    # a rate that differs by replicate is ranked row by row, not shared
    classes, labels, peak, _ = _rho_data(rng, False)
    rate = rng.standard_normal(peak.shape)
    fast = WithinClassRho().resampled((peak, rate, labels), np.ones((1, classes.size)))
    assert fast[0][0] == pytest.approx(within_class_rho((peak, rate, labels)), rel=1e-12)


def test_paired_within_class_rho_fast_path_gives_the_generic_interval(rng):
    classes, labels, peak, rate = _rho_data(rng, False)
    null = np.where(np.isfinite(peak), rng.standard_normal(peak.shape), np.nan)
    a, b = (peak, rate, labels), (null, rate, labels)
    fast = paired_t(a, b, WithinClassRho(), strata=classes, seed=2, n_draws=N_DRAWS)
    generic = paired_t(a, b, within_class_rho, strata=classes, seed=2, n_draws=N_DRAWS)
    assert (fast.low, fast.high) == pytest.approx((generic.low, generic.high), rel=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_median_fast_path_gives_the_generic_interval(rng, ties):
    v = np.exp(rng.standard_normal((5, 200)))
    v[rng.random(v.shape) < 0.1] = np.nan
    if ties:
        v = np.round(v, 1)
    fast = crossed_t(v, FiniteMedian(), seed=4, n_draws=N_DRAWS)
    generic = crossed_t(v, lambda a: float(np.nanmedian(a)), seed=4, n_draws=N_DRAWS)
    assert (fast.value, fast.low, fast.high) == pytest.approx(
        (generic.value, generic.low, generic.high), rel=1e-12)


# ------------------------------------------------------------ known answers --
def test_crossed_t_with_one_replicate_is_a_t_over_examples(rng):
    x = rng.normal(1.0, 2.0, 150)
    est = crossed_t(x[None, :], seed=0)
    assert est.method == "t over examples"
    assert est.value == pytest.approx(x.mean())
    assert est.df == pytest.approx(x.size - 1)
    # the example resamples estimate s^2 / n (400 draws: about 7 % on the variance)
    se = x.std(ddof=1) / math.sqrt(x.size)
    assert est.se == pytest.approx(se, rel=0.1)
    half = stats.t.ppf(0.975, x.size - 1) * est.se
    assert (est.low, est.high) == pytest.approx((est.value - half, est.value + half))
    assert est.components[0] == 0 and est.components[2] == 0


def test_crossed_t_identical_replicates_have_no_replicate_component(rng):
    x = rng.normal(0.0, 1.0, 120)
    same = crossed_t(np.tile(x, (5, 1)), seed=7)
    one = crossed_t(x[None, :], seed=7)
    assert same.components[0] == 0.0
    assert same.components[2] == pytest.approx(0.0, abs=1e-12)  # rounding of v_single - v_ex
    assert same.spread == 0.0
    # the same resamples: the pooled figure is the single replicate's
    assert (same.value, same.se, same.df) == pytest.approx((one.value, one.se, one.df))


def test_crossed_t_training_noise_alone_is_a_t_over_replicates(rng):
    # no example effect: every replicate is a constant, and the interval is the t
    # interval over the replicate means with R - 1 degrees of freedom
    levels = rng.normal(0, 1, 5)
    est = crossed_t(np.tile(levels[:, None], (1, 80)), seed=0)
    ref = per_replicate_estimate(levels)
    assert (est.low, est.high, est.df) == pytest.approx((ref.low, ref.high, ref.df))


def test_paired_t_of_an_array_with_itself_is_exactly_zero(rng):
    v = rng.normal(size=(5, 100))
    v[rng.random(v.shape) < 0.1] = np.nan
    est = paired_t((v,), (v,), seed=1)
    assert (est.value, est.low, est.high, est.se) == (0.0, 0.0, 0.0, 0.0)
    rho = paired_t(*[(v, np.broadcast_to(v[0], v.shape), np.zeros_like(v))] * 2,
                   WithinClassRho(), seed=1)
    assert (rho.value, rho.low, rho.high) == (0.0, 0.0, 0.0)


def test_paired_t_of_a_constant_shift_is_exact(rng):
    v = rng.normal(size=(5, 100))
    est = paired_t((v + 0.25,), (v,), seed=1)
    assert est.value == pytest.approx(0.25)
    assert (est.low, est.high) == pytest.approx((0.25, 0.25), abs=1e-12)


def test_proportion_at_one_and_zero(rng):
    n = 40
    ones = proportion(np.ones((5, n)), seed=0)
    assert ones.value == 1.0 and ones.high == 1.0
    # the replicates agree on every example: Wilson with n examples
    z = stats.norm.ppf(0.975)
    assert ones.low == pytest.approx(n / (n + z**2))
    zeros = proportion(np.zeros((5, n)), seed=0)
    assert zeros.value == 0.0 and zeros.low == 0.0
    assert zeros.high == pytest.approx(1 - ones.low)


def test_proportion_of_one_replicate_is_wilson_over_the_examples(rng):
    # one replicate: the variance is the bootstrap's p (1 - p) / n, so the interval
    # is the Wilson interval at n (shrunk by (z / t_{n-1})^2, a 0.5 % change)
    c = (rng.random((1, 400)) < 0.8).astype(float)
    est = proportion(c, seed=0)
    p, n = c.mean(), c.size
    z = stats.norm.ppf(0.975)
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    assert est.value == pytest.approx(p)
    assert (est.high - est.low) == pytest.approx(2 * half, rel=0.1)
    assert (est.low + est.high) / 2 == pytest.approx(centre, abs=0.005)


def test_per_replicate_estimate_is_the_t_interval():
    est = per_replicate_estimate([1.0, 2.0, 3.0, 4.0, 5.0])
    half = stats.t.ppf(0.975, 4) * math.sqrt(2.5 / 5)
    assert (est.value, est.low, est.high, est.df) == pytest.approx((3.0, 3 - half, 3 + half, 4))


def test_mean_of_finite_resampled_with_unit_counts_is_the_statistic(rng):
    v = rng.normal(size=(5, 50))
    v[rng.random(v.shape) < 0.2] = np.nan
    pooled, single = MeanOfFinite().resampled((v,), np.ones((3, 50)))
    assert pooled == pytest.approx([np.nanmean(v)] * 3)
    assert single[0] == pytest.approx(np.nanmean(v, axis=1))


# --------------------------------------------------------------------- CLI --
def test_cli_stats_coverage_json_lists_every_method(capsys):
    assert main(["stats", "coverage", "--json", "--sims", "50"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["method"] for r in rows} == {s.method for s in scenarios.SCENARIOS}
    assert len(rows) == len(scenarios.SCENARIOS)
    for r in rows:
        assert r["n_sims"] == 50 and r["nominal"] == 0.95
        assert 0.0 <= r["coverage"] <= 1.0 and r["mc_error"] >= 0.0
        assert set(r) >= {"method", "layout", "nominal", "coverage", "mc_error", "n_sims",
                          "mean_width"}


def test_cli_stats_coverage_table(capsys):
    assert main(["stats", "coverage", "--sims", "3", "--seed", "2", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["method", "coverage", "MC", "err"]
    assert "crossed_t within-class rho" in out and "known limit" in out


def test_cli_stats_coverage_rejects_zero_simulations(capsys):
    assert main(["stats", "coverage", "--sims", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
