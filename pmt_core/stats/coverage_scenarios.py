"""The calibration scenarios: each interval method in the suite's own layouts.

Each :class:`Scenario` simulates one data set the way a run produces it and
returns the method's :class:`~pmt_core.stats.intervals.Estimate` with the *true*
value of what it estimates. The target of inference is the population value over
new test examples **and** new trainings, so every simulation draws replicate
effects, example effects and interaction noise afresh; the truth is computed once
per scenario, analytically or by quadrature. :data:`SCENARIOS` lists them, in the
order that seeds their runs (:func:`pmt_core.stats.coverage.run_coverage`).

The layouts are those of the ci profile: R = 5 replicates (trainings of one
network) explain the same n = 200 test examples, in 5 classes of 60/50/40/25/25
examples; about 10 % of the (replicate, example) cells are unscored (only
correctly classified examples are scored); sanity checks use 64 examples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from pmt_core.stats.bulk_statistics import FiniteMedian, WithinClassRho
from pmt_core.stats.correlation import model_specific_agreement
from pmt_core.stats.intervals import (
    N_VARIANCE_DRAWS_GENERIC,
    Estimate,
    MacroMean,
    crossed_t,
    minimum,
    paired_t,
    per_replicate_estimate,
    proportion,
)

__all__ = ["CLASS_SIZES", "SCENARIOS", "Scenario"]

#: Replicates (trainings) and test examples of the ci profile.
N_REPLICATES = 5
N_EXAMPLES = 200
#: Test examples per class (300/250/200/125/125 clips, 20 % test).
CLASS_SIZES = (60, 50, 40, 25, 25)
#: Examples of the sanity checks.
N_SANITY = 64
#: Share of (replicate, example) cells left unscored.
MISSING = 0.10

#: Gauss-Hermite nodes for the truths (expectations over normal effects).
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(96)
_GH_W = _GH_W / _GH_W.sum()

# --------------------------------------------------------------- layouts --
def _seed(rng: np.random.Generator) -> int:
    """Seed of a method's own example resamples, drawn from the scenario's stream."""
    return int(rng.integers(2**31))


def _normal_effects(rng, sa: float, sb: float, se: float, n: int, n_rep: int = N_REPLICATES,
                    skew: bool = False) -> np.ndarray:
    """Replicate + example + interaction effects (R, n), each of mean 0.

    With ``skew`` the example effects are a centred log-normal (skewness about
    6): per-example lifts and AOPC gaps have long right tails.
    """
    if skew:
        s = 1.0
        b = (np.exp(s * rng.standard_normal(n)) - math.exp(s**2 / 2)) / math.sqrt(
            (math.exp(s**2) - 1) * math.exp(s**2))
    else:
        b = rng.standard_normal(n)
    return (sa * rng.standard_normal((n_rep, 1)) + sb * b[None, :]
            + se * rng.standard_normal((n_rep, n)))


def _unscored(rng, v: np.ndarray, share: float = MISSING) -> np.ndarray:
    """``v`` with a random ``share`` of its cells set to NaN."""
    return np.where(rng.random(v.shape) < share, np.nan, v)


def _class_labels(sizes: Sequence[int] = CLASS_SIZES) -> np.ndarray:
    return np.repeat(np.arange(len(sizes)), sizes)


def _mean_layout(sa, sb, se, n=N_EXAMPLES, skew=False, strata=False):
    classes = _class_labels() if strata else None

    def simulate(rng):
        v = _unscored(rng, 0.3 + _normal_effects(rng, sa, sb, se, n, skew=skew))
        return crossed_t(v, strata=classes, seed=_seed(rng)), 0.3
    return simulate


def _macro_layout(sizes=CLASS_SIZES):
    """Class means 0.1-0.9, class-specific example spreads and replicate x class effects."""
    classes = _class_labels(sizes)
    means = np.linspace(0.1, 0.9, len(sizes))
    spread = np.linspace(0.5, 1.5, len(sizes))[classes]
    truth = float(means.mean())

    def simulate(rng):
        n, k = len(classes), len(sizes)
        v = (means[classes] + 0.2 * rng.standard_normal((N_REPLICATES, 1))
             + 0.2 * rng.standard_normal((N_REPLICATES, k))[:, classes]
             + spread * rng.standard_normal(n) + 0.5 * rng.standard_normal((N_REPLICATES, n)))
        v = _unscored(rng, v)
        labels = np.broadcast_to(classes, v.shape)
        return crossed_t((v, labels), MacroMean(), strata=classes, seed=_seed(rng)), truth
    return simulate


def _logit_location(p: float, scale: float) -> float:
    """Location m such that E[expit(m + scale Z)] = p (population share over effects)."""
    return optimize.brentq(lambda m: float(_GH_W @ special.expit(m + scale * _GH_X)) - p,
                           -30, 30, xtol=1e-12)


def _outcomes(rng, m, sa, sb, n, n_rep=N_REPLICATES):
    """0/1 outcomes (R, n) with logit m + replicate effect + example effect."""
    logit = m + sa * rng.standard_normal((n_rep, 1)) + sb * rng.standard_normal(n)
    return (rng.random((n_rep, n)) < special.expit(logit)).astype(float)


def _proportion_layout(p, n, sa=0.5, sb=1.5):
    """Per-class recall: examples differ in difficulty (sb), trainings in skill (sa)."""
    m = _logit_location(p, math.hypot(sa, sb))

    def simulate(rng):
        return proportion(_outcomes(rng, m, sa, sb, n), seed=_seed(rng)), p
    return simulate


def _paired_layout(shared: float, n=N_EXAMPLES):
    """Two explainers on the same cells: a ``shared`` share of each effect in common."""
    classes = _class_labels()
    own = math.sqrt(1 - shared)

    def simulate(rng):
        common = _normal_effects(rng, 0.3, 1.0, 0.7, n) * math.sqrt(shared)
        a = 0.5 + common + own * _normal_effects(rng, 0.3, 1.0, 0.7, n)
        b = 0.3 + common + 1.5 * own * _normal_effects(rng, 0.3, 1.0, 0.7, n)
        scored = rng.random(a.shape) >= MISSING  # the same cells for both explainers
        a, b = np.where(scored, a, np.nan), np.where(scored, b, np.nan)
        return paired_t((a,), (b,), strata=classes, seed=_seed(rng)), 0.2
    return simulate


# Peak-rate model: per class, rate x_i ~ N(0, 1) and the peak of replicate r
# lambda_r x_i + S s_i + E e_ri, lambda_r = lambda0 + T u_r (u_r ~ N(0, 1)): the
# Pearson correlation is rho_r = lambda_r / sqrt(lambda_r^2 + S^2 + E^2) and the
# population Spearman rho 6/pi asin(rho_r / 2) (Pearson 1907), the same in every
# class, so the Fisher pooling over classes leaves it as it is; the truth is its
# mean over trainings.
_RHO_SHARED, _RHO_NOISE, _RHO_TRAINING = 0.7, 0.7, 0.15


def _spearman_of(lam):
    r = lam / np.sqrt(lam**2 + _RHO_SHARED**2 + _RHO_NOISE**2)
    return 6 / np.pi * np.arcsin(r / 2)


def _rho_truth(lam0: float) -> float:
    return float(_GH_W @ _spearman_of(lam0 + _RHO_TRAINING * _GH_X))


def _rho_slope(target: float) -> float:
    if target == 0:
        return 0.0
    return optimize.brentq(lambda lam: _rho_truth(lam) - target, 0.0, 20.0, xtol=1e-12)


def _peak_rate(rng, lam0, classes, rate=None, shared=None):
    """(peak, rate, x, s) with peak and rate (R, n): class offsets and the model above."""
    n = classes.size
    offsets = np.array([0.0, 1.0, 2.0, 3.0, 4.0])[classes]
    x = rng.standard_normal(n) if rate is None else rate
    s = rng.standard_normal(n) if shared is None else shared
    lam = lam0 + _RHO_TRAINING * rng.standard_normal((N_REPLICATES, 1))
    peak = (offsets + lam * x + _RHO_SHARED * s
            + _RHO_NOISE * rng.standard_normal((N_REPLICATES, n)))
    return peak, np.broadcast_to(offsets + x, peak.shape), x, s


def _rho_layout(target: float, paired: bool = False):
    """Simulate the within-class rho (``target``) of the peak-rate model.

    Parameters
    ----------
    target : float
        The true Spearman rho of the explainer (:func:`_rho_slope`).
    paired : bool
        Estimate that explainer minus a null (rho 0) scored on the same cells, with
        the same rates and shared effects, instead of the explainer alone.
    """
    classes = _class_labels()
    labels = np.broadcast_to(classes, (N_REPLICATES, classes.size))
    lam0 = _rho_slope(target)
    truth = _rho_truth(lam0)
    statistic = WithinClassRho()

    def simulate(rng):
        peak, rate, x, s = _peak_rate(rng, lam0, classes)
        if not paired:
            peak = _unscored(rng, peak)
            est = crossed_t((peak, rate, labels), statistic, strata=classes,
                            seed=_seed(rng), n_draws=N_VARIANCE_DRAWS_GENERIC)
            return est, truth
        null, _, _, _ = _peak_rate(rng, 0.0, classes, rate=x, shared=s)
        scored = rng.random(peak.shape) >= MISSING  # the same cells for both explainers
        peak, null = np.where(scored, peak, np.nan), np.where(scored, null, np.nan)
        est = paired_t((peak, rate, labels), (null, rate, labels), statistic,
                       strata=classes, seed=_seed(rng), n_draws=N_VARIANCE_DRAWS_GENERIC)
        return est, truth
    return simulate


#: lambda2 bands of an occlusion profile in the simulated agreement layout.
N_BANDS = 10


def _agreement_null_layout(sizes=CLASS_SIZES):
    """Simulate maps that ignore which replicate they explain (agreement lift truth 0).

    Each example has a band profile every model uses (the input's physics), each
    replicate its own use on top of it, with a replicate-specific strength (some
    trainings lean more on the shared part); each replicate's map is the shared
    profile plus its own noise, of replicate-specific size. Exchangeable over
    replicates, so the expected lift is exactly 0: the layout checks the size of
    the test at its bar.
    """
    classes = _class_labels(sizes)
    n = len(classes)

    def simulate(rng):
        shared = rng.standard_normal((n, N_BANDS)) * (1 + 0.5 * classes[:, None])
        own = 0.5 + rng.random((N_REPLICATES, 1, 1))
        drops = shared[None] + own * rng.standard_normal((N_REPLICATES, n, N_BANDS))
        noise = 0.5 + rng.random((N_REPLICATES, 1, 1))
        maps = shared[None] + noise * rng.standard_normal((N_REPLICATES, n, N_BANDS))
        lift, _ = model_specific_agreement(list(maps), list(drops))
        lift = _unscored(rng, lift)
        labels = np.broadcast_to(classes, lift.shape)
        return crossed_t((lift, labels), MacroMean(), strata=classes, seed=_seed(rng)), 0.0
    return simulate


def _median_layout(sa, sb, se, n=N_EXAMPLES):
    """Log-normal per-example shares: log v = -1 + effects; the median is exp(-1)."""
    truth = math.exp(-1.0)
    statistic = FiniteMedian()

    def simulate(rng):
        v = np.exp(-1.0 + _normal_effects(rng, sa, sb, se, n))
        est = crossed_t(v, statistic, seed=_seed(rng), n_draws=N_VARIANCE_DRAWS_GENERIC)
        return est, truth
    return simulate


def _per_replicate_layout(sa, sb, se, n=N_EXAMPLES):
    """Simulate a per-replicate figure: each replicate's mean over the same examples."""
    def simulate(rng):
        v = _unscored(rng, 0.3 + _normal_effects(rng, sa, sb, se, n))
        return per_replicate_estimate(np.nanmean(v, axis=1).tolist(), n=n), 0.3
    return simulate


def _minimum_layout(recalls: Sequence[float], sa=0.5, sb=1.5, shared=0.5):
    """Smallest per-class recall: a training's skill shared by a ``shared`` share."""
    locs = [_logit_location(p, math.hypot(sa, sb)) for p in recalls]
    truth = float(min(recalls))

    def simulate(rng):
        skill = rng.standard_normal((N_REPLICATES, 1))
        out = {}
        for k, (m, n) in enumerate(zip(locs, CLASS_SIZES, strict=True)):
            own = rng.standard_normal((N_REPLICATES, 1))
            rep = sa * (math.sqrt(shared) * skill + math.sqrt(1 - shared) * own)
            logit = m + rep + sb * rng.standard_normal(n)
            correct = (rng.random((N_REPLICATES, n)) < special.expit(logit)).astype(float)
            out[f"class {k}"] = proportion(correct, seed=_seed(rng))
        return minimum(out)[1], truth
    return simulate


# -------------------------------------------------------------- registry --
@dataclass(frozen=True)
class Scenario:
    """One method in one layout.

    Attributes
    ----------
    method : str
        The interval method (a function of :mod:`pmt_core.stats.intervals`, with
        its statistic where that matters).
    layout : str
        The simulated layout, in short.
    simulate : callable
        ``numpy.random.Generator -> (Estimate, truth)``: one data set.
    expect : str
        What the coverage must be: ``"calibrated"`` (0.93-0.97), or a documented
        limit: ``"over-covers"`` (at least 0.93: conservative), ``"under-covers"``
        (below 0.93), ``"pass side"`` (the truth below the lower end at most 2.5 %).
    known : str or None
        Why, for a documented limit.
    cost : float
        Rough time of one simulation relative to a mean's (parallel runs start
        the costly scenarios first).
    """

    method: str
    layout: str
    simulate: Callable[[np.random.Generator], tuple[Estimate, float]]
    expect: str = "calibrated"
    known: str | None = None
    cost: float = 1.0


_CI = f"R={N_REPLICATES}, n={N_EXAMPLES}, 10 % NaN"
_SHARED_EXAMPLES = ("the replicates score the same test examples: their spread misses the "
                    "example sample's deviation, so the t over replicates under-covers")
_TIED_MINIMUM = ("tied true values: the upper end is the smallest of 5 upper ends and misses "
                 "up to 5 x 2.5 %; only the lower end (the pass side) is guaranteed")
_CLOSE_MINIMUM = ("the lower end is the smallest of all 5 lower ends: conservative when another "
                  "class's recall lies within the smallest one's interval")
_FEW_FAILURES = ("about one failure per replicate (n (1 - p) near 1): the effective-n Wilson "
                 "interval's lower end is conservative, the truth is almost never below it")

_DEPENDENT_LIFTS = ("each replicate's lift subtracts the other replicates' agreement, so the "
                    "lifts of one example are negatively dependent and their spread overstates "
                    "the pooled lift's: conservative (measured 1.00 with 400 simulations), the "
                    "truth never above the lower end, so the test's size at its bar is below "
                    "2.5 %")

#: Every calibration scenario, in a fixed order (the index seeds its simulations).
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("crossed_t mean", f"training noise dominates (sa,sb,se=1,.1,.1), {_CI}",
             _mean_layout(1.0, 0.1, 0.1)),
    Scenario("crossed_t mean", f"examples dominate (.05,1,.1), {_CI}",
             _mean_layout(0.05, 1.0, 0.1)),
    Scenario("crossed_t mean", f"interaction dominates (.1,.1,1), {_CI}",
             _mean_layout(0.1, 0.1, 1.0)),
    Scenario("crossed_t mean", f"mixed (.3,1,.5), {_CI}", _mean_layout(0.3, 1.0, 0.5)),
    Scenario("crossed_t mean", f"mixed, skewed examples (.2,1,1), {_CI}, strata",
             _mean_layout(0.2, 1.0, 1.0, skew=True, strata=True)),
    Scenario("crossed_t mean", f"sanity subset (.2,1,1), R=5, n={N_SANITY}, 10 % NaN",
             _mean_layout(0.2, 1.0, 1.0, n=N_SANITY)),
    Scenario("crossed_t MacroMean", "5 classes 60/50/40/25/25, replicate x class effects, "
             "10 % NaN, strata", _macro_layout()),
    *(Scenario("proportion", f"class recall p={p}, R=5, n={n}, logit sd replicate .5 "
               "example 1.5", _proportion_layout(p, n),
               **({"expect": "over-covers", "known": _FEW_FAILURES} if n * (1 - p) < 1.5
                  else {}))
      for p, n in ((0.8, 60), (0.8, 25), (0.9, 60), (0.9, 25), (0.95, 60), (0.95, 25),
                   (0.98, 40))),
    Scenario("proportion", "sign-inverted share p=0.05, R=5, n=200, logit sd replicate .5 "
             "example 2", _proportion_layout(0.05, N_EXAMPLES, sb=2.0)),
    Scenario("paired_t mean", f"explainers sharing 80 % of each effect, {_CI}, strata",
             _paired_layout(0.8)),
    Scenario("paired_t mean", f"explainers sharing 30 % of each effect, {_CI}, strata",
             _paired_layout(0.3)),
    *(Scenario("crossed_t within-class rho", f"true rho {rho}, 5 classes 60/50/40/25/25, "
               "R=5, 10 % NaN, strata", _rho_layout(rho), cost=3) for rho in (0.0, 0.3, 0.5)),
    Scenario("paired_t within-class rho", "composite rho 0.5 minus a null's 0, same cells, "
             "strata", _rho_layout(0.5, paired=True), cost=6),
    Scenario("crossed_t median", f"log-normal shares, examples dominate (.1,.7,.3), "
             f"R=5, n={N_EXAMPLES}", _median_layout(0.1, 0.7, 0.3), cost=2.5),
    Scenario("crossed_t median", f"log-normal shares, training dominates (.3,.3,.3), "
             f"R=5, n={N_EXAMPLES}", _median_layout(0.3, 0.3, 0.3), cost=2.5),
    Scenario("per_replicate_estimate", f"training noise dominates (1,.1,.1), {_CI}",
             _per_replicate_layout(1.0, 0.1, 0.1)),
    Scenario("per_replicate_estimate", f"same test examples, mixed (.2,1,1), {_CI}",
             _per_replicate_layout(0.2, 1.0, 1.0), expect="under-covers",
             known=_SHARED_EXAMPLES),
    Scenario("minimum of proportions", "5 class recalls .90/.85/.80/.95/.98 on 60/50/40/25/25",
             _minimum_layout((0.90, 0.85, 0.80, 0.95, 0.98)), expect="over-covers",
             known=_CLOSE_MINIMUM, cost=2.5),
    Scenario("minimum of proportions", "5 class recalls all .90 on 60/50/40/25/25",
             _minimum_layout((0.9,) * 5), expect="pass side", known=_TIED_MINIMUM,
             cost=2.5),
    Scenario("crossed_t MacroMean agreement lift", f"model-free maps (truth 0), R=5, "
             f"classes 60/50/40/25/25, {N_BANDS} bands, replicate-specific use and noise, "
             "10 % NaN", _agreement_null_layout(), expect="over-covers",
             known=_DEPENDENT_LIFTS, cost=6.0),
)
