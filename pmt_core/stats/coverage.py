"""Calibration of the interval methods by simulation, in the suite's own layouts.

Each :class:`Scenario` simulates one data set the way a run produces it and
returns the method's :class:`~pmt_core.stats.intervals.Estimate` with the *true*
value of what it estimates. The target of inference is the population value over
new test examples **and** new trainings, so every simulation draws replicate
effects, example effects and interaction noise afresh; the truth is computed once
per scenario, analytically or by quadrature. :func:`run_coverage` repeats each
scenario and reports how often the 95 % interval holds the truth.

The layouts are those of the ci profile: R = 5 replicates (trainings of one
network) explain the same n = 200 test examples, in 5 classes of 60/50/40/25/25
examples; about 10 % of the (replicate, example) cells are unscored (only
correctly classified examples are scored); sanity checks use 64 examples.

Generic statistics (a median, a within-class rank correlation) are evaluated by
:func:`~pmt_core.stats.intervals.crossed_t` once per example resample, 200
resamples per interval, in Python. The statistics here compute the *same*
resampled figures in a few array operations (weighted ranks and weighted
medians over the resample counts instead of materialised resamples), so that
each scenario can afford about 2,000 simulations at the full 200 resamples;
``tests/test_stats_coverage.py`` checks that they give the generic path's
interval to rounding.

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
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from pmt_core.stats.correlation import model_specific_agreement, within_class_rho
from pmt_core.stats.intervals import (
    CONFIDENCE,
    N_VARIANCE_DRAWS_GENERIC,
    Estimate,
    MacroMean,
    MeanOfFinite,
    crossed_t,
    minimum,
    paired_t,
    per_replicate_estimate,
    proportion,
)

__all__ = [
    "CLASS_SIZES",
    "SCENARIOS",
    "Scenario",
    "WithinClassRho",
    "FiniteMedian",
    "format_table",
    "run_coverage",
    "run_scenario",
    "within_class_rho",
]

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


# ------------------------------------------------------------ statistics --


def _below(x: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """Per row of ``x`` (..., m): ``L[..., k, j]`` = 1 if x_k < x_j, 1/2 if equal, else 0.

    ``w @ L + 1/2`` is then the mid-rank of each entry in the multiset where entry
    k stands for ``w[k]`` copies (an example drawn w[k] times by a resample):
    copies and equal values share their mean rank, as ``scipy.stats.rankdata``
    ranks the materialised resample. A NaN compares as neither (weigh it 0).
    Written into ``out`` (float, ``(..., m, m)``) with ``scratch`` (bool, same shape).
    """
    a, b = x[..., :, None], x[..., None, :]
    np.equal(a, b, out=scratch)
    np.copyto(out, scratch)
    out *= 0.5
    np.less(a, b, out=scratch)
    out += scratch
    return out


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Inner products along the last axis."""
    return np.einsum("...j,...j->...", a, b)


class _Buffers:
    """Work arrays kept between calls, by name and shape.

    The resampled figures are computed in arrays of a few MB; allocated afresh at
    every call, each is mapped and faulted in anew, which doubled the time of a
    simulation.
    """

    def __init__(self):
        self._arrays = {}

    def get(self, name: str, shape: tuple, dtype) -> np.ndarray:
        key = (name, shape, np.dtype(dtype))
        if key not in self._arrays:
            self._arrays[key] = np.empty(shape, dtype)
        return self._arrays[key]


class WithinClassRho(MeanOfFinite):
    """:func:`within_class_rho`, with its example resamples computed in bulk.

    A :class:`~pmt_core.stats.intervals.MeanOfFinite` only so that
    :func:`~pmt_core.stats.intervals.crossed_t` takes its vectorised branch
    (``resampled``); the figures are those of the generic branch, to rounding
    (pass ``n_draws=N_VARIANCE_DRAWS_GENERIC`` to use its number of resamples too).
    All classes are handled at once, padded to the largest (padding weighs 0).
    Keeps work arrays between calls: reuse one instance.
    """

    def __init__(self):
        self._buffers = _Buffers()

    def __call__(self, values) -> float:
        """Return the figure of ``(peak, rate, classes)`` (each resample drawn once)."""
        n = np.asarray(values[0]).shape[-1]
        return float(self.resampled(values, np.ones((1, n)))[0][0])

    def resampled(self, values, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pooled (B,) and per-replicate (B, R) figures for example ``counts`` (B, n)."""
        peak, rate, classes = (np.asarray(v, dtype=np.float64) for v in values)
        labels = classes[0]
        members = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        n_classes, width = len(members), max(m.size for m in members)
        n_rep, n_draws = peak.shape[0], counts.shape[0]
        cols = np.zeros((n_classes, width), int)  # (K, m): each class's columns, padded
        real = np.zeros((n_classes, width), bool)
        for k, m in enumerate(members):
            cols[k, :m.size], real[k, :m.size] = m, True
        p, q = peak[:, cols].transpose(1, 0, 2), rate[:, cols].transpose(1, 0, 2)  # (K, R, m)
        ok = np.isfinite(p) & np.isfinite(q) & real[:, None, :]
        # Every sum below is of whole counts times half-integer ranks, at most about
        # 4 m^3 quarters: exact in float32 (twice as fast here) up to m = 100.
        dtype = np.float32 if width <= 100 else np.float64
        get = self._buffers.get
        big = (n_classes, n_rep, n_draws, width)
        drawn = get("drawn", (n_classes, n_draws, width), dtype)
        np.copyto(drawn, counts[:, cols].transpose(1, 0, 2) * real[:, None, :])
        w = np.multiply(drawn[:, None], ok[:, :, None, :], out=get("w", big, dtype))
        # ranks among the scored pairs only (mid-rank = a + 1/2): the others weigh 0,
        # so where they sort does not matter, and a rate shared by every replicate is
        # compared once
        shared = np.array_equal(q, np.broadcast_to(q[:, :1], q.shape), equal_nan=True)
        q = q[:, :1] if shared else q
        square = (n_classes, n_rep, width, width)
        a = np.matmul(w, _below(p, get("Lp", square, dtype), get("lt", square, bool)),
                      out=get("a", big, dtype))
        square = q.shape + (width,)
        b = np.matmul(w, _below(q, get("Lq", square, dtype), get("lt", square, bool)),
                      out=get("b", big, dtype))
        n = w @ np.ones(width, dtype)  # (K, R, B)
        # With sum(w a) = n^2 / 2, the centred sum of w (a + 1/2 - (n + 1) / 2) (b + ...)
        # is sum(w a b) - n^3 / 4 (likewise for the squares).
        cube = n**3 / 4
        wx = np.multiply(w, a, out=get("wx", big, dtype))
        spq, spp = (_dot(wx, b) - cube).astype(np.float64), (_dot(wx, a) - cube).astype(np.float64)
        np.multiply(w, b, out=wx)
        sqq = (_dot(wx, b) - cube).astype(np.float64)
        n = n.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = spq / np.sqrt(spp * sqq)
        rho = np.where(np.isfinite(rho), rho, 0.0)  # constant class: no association
        use = n >= 4
        z = np.where(use, np.arctanh(np.clip(rho, -0.999999, 0.999999)) * (n - 3), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            single = np.tanh(z.sum(0) / np.where(use, n - 3, 0.0).sum(0)).T  # (B, R)
        finite = np.isfinite(single)
        with np.errstate(invalid="ignore", divide="ignore"):
            pooled = np.where(finite, single, 0.0).sum(1) / finite.sum(1)
        return pooled, single


def _weighted_median(x: np.ndarray, w: np.ndarray, get, tag: str) -> np.ndarray:
    """Median of each row of ``x`` (R, m) weighted by ``w`` (B, R, m) -> (B, R); NaN if empty.

    Non-finite entries must weigh 0. The middle copies of the sorted multiset are
    found from the cumulative weights, so nothing is sorted per resample. ``get``
    hands out work arrays (:class:`_Buffers`), ``tag`` names them.
    """
    n_rows, m = x.shape
    key = np.where(np.isfinite(x), x, np.inf)
    order = np.argsort(key, axis=-1)
    xs = np.take_along_axis(key, order, axis=-1)
    flat = (np.arange(n_rows)[:, None] * m + order).ravel()
    shape = w.shape
    ws = np.take(w.reshape(shape[0], -1), flat, axis=1,
                 out=get(tag + "sorted", (shape[0], n_rows * m), w.dtype)).reshape(shape)
    cum = np.cumsum(ws, axis=-1, out=get(tag + "cum", shape, w.dtype))
    total = cum[..., -1]
    below = get(tag + "below", shape, bool)
    out = np.zeros(total.shape)
    rows = np.arange(n_rows)[None, :]
    for k in ((total - 1) // 2, total // 2):  # the two middle copies (one for odd counts)
        np.less_equal(cum, k[..., None], out=below)
        j = np.minimum(np.count_nonzero(below, axis=-1), m - 1)  # sorted position
        out += xs[rows, j] / 2
    return np.where(total > 0, out, np.nan)


class FiniteMedian(MeanOfFinite):
    """Statistic: median of the finite values of ``values[0]`` (R, n), resampled in bulk.

    As :class:`WithinClassRho`, a :class:`~pmt_core.stats.intervals.MeanOfFinite`
    only for :func:`~pmt_core.stats.intervals.crossed_t`'s vectorised branch;
    ``__call__`` is the suite's ``np.nanmedian``. Keeps work arrays between calls.
    """

    def __init__(self):
        self._buffers = _Buffers()

    def __call__(self, values) -> float:
        """Return the median of the finite values of ``values[0]``."""
        return float(np.nanmedian(np.asarray(values[0], dtype=np.float64)))

    def resampled(self, values, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pooled (B,) and per-replicate (B, R) medians for example ``counts`` (B, n)."""
        v = np.asarray(values[0], dtype=np.float64)
        get = self._buffers.get
        # whole counts: float32 sums are exact up to 2^24 copies
        dtype = np.float32 if v.size < 2**24 else np.float64
        w = np.multiply(counts[:, None, :], np.isfinite(v)[None],
                        out=get("w", (counts.shape[0],) + v.shape, dtype))
        single = _weighted_median(v, w, get, "single ")
        pooled = _weighted_median(v.reshape(1, -1), w.reshape(w.shape[0], 1, -1), get,
                                  "pooled ")[:, 0]
        return pooled, single


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


def _rho_layout(target: float):
    classes = _class_labels()
    labels = np.broadcast_to(classes, (N_REPLICATES, classes.size))
    lam0 = _rho_slope(target)
    truth = _rho_truth(lam0)
    statistic = WithinClassRho()

    def simulate(rng):
        peak, rate, _, _ = _peak_rate(rng, lam0, classes)
        peak = _unscored(rng, peak)
        est = crossed_t((peak, rate, labels), statistic, strata=classes,
                        seed=_seed(rng), n_draws=N_VARIANCE_DRAWS_GENERIC)
        return est, truth
    return simulate


def _paired_rho_layout(target: float):
    """Simulate a composite (rho ``target``) minus a null (rho 0) on the same cells."""
    classes = _class_labels()
    labels = np.broadcast_to(classes, (N_REPLICATES, classes.size))
    lam0 = _rho_slope(target)
    truth = _rho_truth(lam0)
    statistic = WithinClassRho()

    def simulate(rng):
        peak, rate, x, s = _peak_rate(rng, lam0, classes)
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
             "strata", _paired_rho_layout(0.5), cost=6),
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
