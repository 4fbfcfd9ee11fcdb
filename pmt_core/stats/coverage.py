"""Calibration of the interval methods by simulation, in the suite's own layouts.

Each scenario (:class:`~pmt_core.stats.coverage_scenarios.Scenario`) simulates
one data set the way a run produces it and returns the method's
:class:`~pmt_core.stats.intervals.Estimate` with the *true* value of what it
estimates: the population value over new test examples **and** new trainings.
:func:`run_coverage` repeats each scenario and reports how often the 95 %
interval holds the truth.

The layouts are those of the ci profile: R = 5 replicates (trainings of one
network) explain the same n = 200 test examples, in 5 classes of 60/50/40/25/25
examples; about 10 % of the (replicate, example) cells are unscored (only
correctly classified examples are scored); sanity checks use 64 examples.

Generic statistics (a median, a within-class rank correlation) are evaluated by
:func:`~pmt_core.stats.intervals.crossed_t` once per example resample, 200
resamples per interval, in Python; :mod:`pmt_core.stats.bulk_statistics`
computes the *same* resampled figures in a few array operations, so that each
scenario can afford about 2,000 simulations at the full 200 resamples.

What the simulations show (``python -m pmt_core stats coverage``, 2,000
simulations per layout, Monte Carlo error 0.003-0.006):

* :func:`~pmt_core.stats.intervals.crossed_t` (means, macro means, medians, the
  within-class rank correlation) and :func:`~pmt_core.stats.intervals.paired_t`
  cover 0.94-0.95 in every layout. Where training noise holds about 65-90 % of
  the variance (the "mixed" layouts) they run about 0.01 low (0.938 over 8,000
  simulations of the (.3, 1, .5) mean, 0.941 of the 80 %-shared paired
  difference): the plug-in Satterthwaite degrees of freedom grow exactly when
  the 4-df replicate variance is under-estimated, so the t quantile shrinks with
  it. In an idealised model (normal components, 4 and 199 df) the plug-in df
  cover 0.942 at a replicate share of 0.78, the true df 0.956, and the df
  computed with the replicate component doubled (the variance unchanged)
  0.950-0.956 at every share. Inside [0.93, 0.97], so
  :mod:`~pmt_core.stats.intervals` is unchanged.
* The interval of the within-class rank correlation lies above the truth more
  often than below it (0.035 against 0.021 at rho 0.3-0.5) although the figure
  is unbiased (mean error -0.002 +- 0.001 over 3,000 data sets): a correlation's
  standard error shrinks as it grows (as 1 - rho^2), so a high estimate gets a
  narrow interval. Symmetric on Fisher's z scale, the interval would balance the
  two sides; the total stays inside [0.93, 0.97].

Known limits (each row's ``expect`` and ``known``; tested as such):

* :func:`~pmt_core.stats.intervals.proportion` over-covers when a class has
  about one failure per replicate (n (1 - p) below 1.5; 0.981 at p = 0.95 and
  n = 25, 0.978 at p = 0.98 and n = 40): the variance is right, but the effective-n Wilson
  interval's lower end is conservative (the truth is almost never below it). A
  recall bar is then harder to clear than it need be, never easier.
* :func:`~pmt_core.stats.intervals.per_replicate_estimate` is a t over the R
  per-replicate figures. When the replicates score the *same* test examples, the
  figures share the example sample's deviation, which their spread cannot see:
  the interval covers the training noise only and under-covers a population
  value over new examples (0.917 when examples and training noise are alike).
  Its signature has no example-level data to do better; figures with a verdict
  need :func:`~pmt_core.stats.intervals.crossed_t` on the per-example values.
* :func:`~pmt_core.stats.intervals.minimum` guarantees one side: the true
  minimum lies below the lower end with probability at most 2.5 % (the pass side
  of an intersection-union test). Its upper end is the smallest of K upper ends,
  so with K tied true values it misses on the high side up to K times 2.5 %
  (0.909 with 5 tied recalls); its lower end, the smallest of all lower ends, is
  conservative when another value is close to the smallest (0.969).

Modules: the scenarios (layouts, truths, expected coverage) are
:mod:`pmt_core.stats.coverage_scenarios`; the two statistics resampled in bulk
:mod:`pmt_core.stats.bulk_statistics`; this module runs them and reports.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np

from pmt_core.stats.coverage_scenarios import SCENARIOS, Scenario
from pmt_core.stats.intervals import CONFIDENCE

__all__ = ["format_table", "run_coverage", "run_scenario"]


# ------------------------------------------------------------------ runs --
def _one_blas_thread():
    """Context limiting BLAS to one thread, where threadpoolctl is installed.

    The products here are small (200 x 60 by 60 x 60): BLAS threads only contend,
    and on a busy machine they make a simulation ten times slower.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional (a scikit-learn dependency): same figures, slower
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def run_scenario(index: int, n_sims: int = 2000, seed: int = 0) -> dict:
    """Coverage of ``SCENARIOS[index]`` (one row of :func:`run_coverage`)."""
    with _one_blas_thread():
        return _run_one(index, SCENARIOS[index], n_sims, seed)


def _run_one(index: int, scenario: Scenario, n_sims: int, seed: int) -> dict:
    rng = np.random.default_rng([seed, index])
    covered = below = above = 0
    widths = []
    start = time.perf_counter()
    for _ in range(n_sims):
        est, truth = scenario.simulate(rng)
        if est.finite:
            covered += est.low <= truth <= est.high
            below += truth < est.low
            above += truth > est.high
            widths.append(est.high - est.low)
        # an interval that is not finite counts as a miss (of neither side)
    c = covered / n_sims
    return {"method": scenario.method, "layout": scenario.layout, "nominal": CONFIDENCE,
            "coverage": c, "mc_error": math.sqrt(c * (1 - c) / n_sims), "n_sims": n_sims,
            "mean_width": float(np.mean(widths)) if widths else math.nan,
            "truth_below": below / n_sims, "truth_above": above / n_sims,
            "expect": scenario.expect, "known": scenario.known,
            "seconds": time.perf_counter() - start}


def run_coverage(n_sims: int = 2000, seed: int = 0, methods: Sequence[str] | None = None,
                 *, workers: int = 1) -> list[dict]:
    """Empirical coverage of every method in every layout.

    Parameters
    ----------
    n_sims : int
        Simulated data sets per scenario (2,000: Monte Carlo error about 0.005 at
        95 % coverage).
    seed : int
        Seed of all scenarios; scenario k draws from ``default_rng([seed, k])``
        (k its index in :data:`SCENARIOS`, so a subset reproduces the full run).
    methods : sequence of str, optional
        Only scenarios whose ``method`` is one of these (default: all).
    workers : int
        Processes to spread the scenarios over (the rows do not depend on it).

    Returns
    -------
    list of dict
        Per scenario: ``method``, ``layout``, ``nominal`` (0.95), ``coverage``,
        ``mc_error`` (sqrt(c (1 - c) / n_sims)), ``n_sims``, ``mean_width``,
        ``truth_below`` and ``truth_above`` (shares of intervals entirely above or
        below the truth), ``expect`` and ``known`` (a documented limit, see
        :class:`Scenario`) and ``seconds``.
    """
    if n_sims < 1:
        raise ValueError(f"n_sims must be at least 1, got {n_sims}")
    wanted = None if methods is None else set(methods)
    chosen = [k for k, s in enumerate(SCENARIOS) if wanted is None or s.method in wanted]
    if workers <= 1 or len(chosen) <= 1:
        return [run_scenario(k, n_sims, seed) for k in chosen]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(workers, len(chosen))) as pool:
        # costly scenarios first, so that no worker is left with one at the end
        futures = {k: pool.submit(run_scenario, k, n_sims, seed)
                   for k in sorted(chosen, key=lambda k: -SCENARIOS[k].cost)}
        return [futures[k].result() for k in chosen]


def format_table(rows: Sequence[dict]) -> str:
    """Plain-text table of :func:`run_coverage` rows (a ``*`` marks a known limit)."""
    lines = [f"{'method':<28} {'coverage':>8} {'MC err':>7} {'width':>8}  layout"]
    for r in rows:
        mark = "*" if r["known"] else " "
        lines.append(f"{r['method']:<28} {r['coverage']:>8.3f} {r['mc_error']:>7.3f} "
                     f"{r['mean_width']:>8.3g} {mark}{r['layout']}")
    if any(r["known"] for r in rows):
        lines.append("* known limit: " + "; ".join(
            dict.fromkeys(f"{r['method']}: {r['known']}" for r in rows if r["known"])))
    return "\n".join(lines)
