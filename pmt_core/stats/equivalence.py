"""Equivalence to pitch invariance: the slope of the relevance peak on pitch.

The paper says relevance lands at each playing technique's modulation rate
"regardless of pitch". Read physically: within a class, where an example's
relevance peaks along lambda2 (the modulation frequency, Hz, of its most relevant
second-order path) should not move with the example's f0. :func:`class_slopes`
measures, per class, the ordinary least-squares slope of ``log2(peak lambda2)``
on ``log2(f0)`` over the test examples (octaves of peak per octave of pitch): a
map that ignores pitch has slope 0, one that follows pitch (a peak at f0 / 8, at
a harmonic's beating) has slope 1.

"Regardless of pitch" is an equivalence claim, so it is tested as one: two
one-sided tests (TOST; Schuirmann 1987) of the slope against
``+-MARGIN_OCTAVES_PER_OCTAVE``, each at alpha = 0.05, which is the same as asking
the 90 % two-sided interval to lie inside the margin. A class is "equivalent"
when it does; it "follows pitch" when a 95 % two-sided interval lies entirely
outside the margin (2.5 % per side, either side; a slope below ``-margin`` moves
against pitch, which is no invariance either); otherwise the data do not decide
("not shown"). Classes combine by intersection-union (Berger 1982): the claim
holds when every class is equivalent, with no multiplicity correction, and
:func:`combine` turns that into two bounds on two estimates.

The slope's interval is :func:`pmt_core.stats.intervals.crossed_t`'s: the R
replicates (trainings) explain the same test examples, so the figure, the mean
over replicates of each replicate's slope, varies with the training, with the
examples and with their interaction. :class:`RowSlope` is a vectorised statistic
for it (weighted least squares with the resampling counts as weights).

The peaks sit on the second-order filter grid (Q2 = 2: half an octave apart), so
the slope of one example set is quantised noise around the truth; the simulators
here (:func:`simulate_planted`, :func:`simulate_continuous`) plant maps with a
known slope in the suite's ci layout, and :func:`outcome_rates` /
:func:`slope_coverage` measure the test's power, size and coverage on them
(``tests/test_stats_equivalence.py``; the coverage command reuses them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from pmt_core.stats.intervals import Estimate, MeanOfFinite, crossed_t

__all__ = [
    "CI_CLASSES",
    "CONFIDENCE_EQUIVALENCE",
    "CONFIDENCE_FOLLOWS",
    "LAMBDA2_STEP_OCTAVES",
    "MARGIN_OCTAVES_PER_OCTAVE",
    "OUTCOMES",
    "PLANTED_KINDS",
    "RowSlope",
    "SimClass",
    "Simulated",
    "SlopeResult",
    "class_slopes",
    "combine",
    "lambda2_grid_hz",
    "outcome_rates",
    "quantise_log2_lambda2",
    "simulate_continuous",
    "simulate_planted",
    "slope_coverage",
]

#: Spacing of the second-order (lambda2) filters in octaves: Q2 = 2 wavelets per
#: octave (``ScatteringConfig.Q = (8, 2)``).
LAMBDA2_STEP_OCTAVES = 0.5
#: Centre of the lowest second-order filter of the paper's transform (Hz); the
#: others are 2**(k / 2) times it (1.33, 1.89, 2.67, 3.77, 5.33, 7.54, ... Hz).
LAMBDA2_LOWEST_HZ = 4.0 / 3.0
#: Equivalence margin on the slope (octaves of peak per octave of f0): half the
#: lambda2 filter spacing (0.5 octave / 2) per octave of pitch. A peak that slides
#: by less than this drifts by under one filter over the two octaves or more that
#: a class's f0 spans, i.e. stays on its filter or the next, which is as close to
#: "regardless of pitch" as the quantised read-out can say; a peak that follows
#: pitch moves four times as fast.
MARGIN_OCTAVES_PER_OCTAVE = 0.25
#: Two-sided confidence of the TOST interval: each one-sided test at alpha = 0.05.
CONFIDENCE_EQUIVALENCE = 0.90
#: Two-sided confidence of the "follows pitch" interval: 2.5 % per side.
CONFIDENCE_FOLLOWS = 0.95
#: The outcomes of one class.
OUTCOMES = ("equivalent", "not shown", "follows pitch", "degenerate")


# ----------------------------------------------------------------- statistic --
def _centred(values: np.ndarray, finite: np.ndarray) -> np.ndarray:
    # the slope does not depend on the origin; centring keeps the normal equations'
    # differences (n Sxx - Sx^2) away from cancellation
    centre = values[finite].mean() if finite.any() else 0.0
    return np.where(finite, values - centre, 0.0)


def _slopes_from_sums(sw, sx, sy, sxx, sxy) -> np.ndarray:
    """OLS slopes from weighted sums (any shape); NaN where fewer than 3 points or no x spread."""
    den = sw * sxx - sx * sx
    num = sw * sxy - sx * sy
    ok = (sw >= 3) & (den > 1e-12 * np.maximum(sw, 1.0) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, num / np.where(ok, den, 1.0), np.nan)


def _widened(draws: np.ndarray, m) -> np.ndarray:
    """Return ``draws`` (B, ...) spread about their mean over B by ``sqrt(m / (m - 2))`` (HC1).

    ``m`` (scalar or one per column) counts the examples behind each column; a
    column with 2 or fewer is left as it is.
    """
    m = np.asarray(m, dtype=np.float64)
    factor = np.sqrt(np.where(m > 2, m / np.maximum(m - 2, 1.0), 1.0))
    centre = _nanmean_rows(draws, axis=0)
    return centre + factor * (draws - centre)


def _nanmean_rows(a: np.ndarray, axis: int) -> np.ndarray:
    """Mean of the finite entries along ``axis``; NaN where there is none.

    A row (replicate) without a slope is left out of the mean over rows.
    """
    finite = np.isfinite(a)
    count = finite.sum(axis=axis)
    total = np.where(finite, a, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


class RowSlope(MeanOfFinite):
    """Statistic: mean over replicate rows of the OLS slope of ``values[0]`` on ``values[1]``.

    ``values`` is a tuple ``(y, x)`` of (R, n) arrays (x repeated over rows); each
    row's slope uses that row's cells where both are finite, and needs at least 3
    such cells and some spread in x (else the row is left out; no row: NaN).

    A :class:`~pmt_core.stats.intervals.MeanOfFinite` so that
    :func:`~pmt_core.stats.intervals.crossed_t` calls :meth:`resampled`, which fits
    every example resample at once: a resample that draws example i k times is a
    least-squares fit with weight k on it, so five weighted sums per (resample,
    row) are five matrix products.

    The variance of a slope over example resamples (the pairs bootstrap) is the
    heteroskedasticity-consistent sandwich HC0, low by about 2 / m for a fit of two
    parameters to m examples; HC1 (MacKinnon & White 1985) scales it by
    m / (m - 2), and so does :meth:`resampled` (``small_sample``). Without it the
    90 % interval covered 0.885-0.895 in the ci layout and the TOST's size at the
    margin was 0.05-0.067 per class (2,000 simulations, :func:`slope_coverage`,
    :func:`outcome_rates`).
    """

    #: Widen the resampled spread by m / (m - 2) (HC1).
    small_sample = True

    def _parts(self, values):
        y = np.asarray(values[0], dtype=np.float64)
        x = np.broadcast_to(np.asarray(values[1], dtype=np.float64), y.shape)
        finite = np.isfinite(y) & np.isfinite(x)
        return _centred(y, finite), _centred(x, finite), finite.astype(np.float64)

    def per_row(self, values) -> np.ndarray:
        """Return each row's slope, shape (R,)."""
        y, x, w = self._parts(values)
        return _slopes_from_sums(w.sum(1), x.sum(1), y.sum(1), (x * x).sum(1),
                                 (x * y).sum(1))

    def __call__(self, values) -> float:
        """Return the mean over rows of the rows' slopes (NaN: no row has one)."""
        return float(_nanmean_rows(self.per_row(values), axis=0))

    def resampled(self, values, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pooled (B,) and per-replicate (B, R) slopes for example ``counts`` (B, n).

        With :attr:`small_sample`, each column's spread about its mean over the
        resamples is widened by ``sqrt(m / (m - 2))`` (m: the examples behind it), so
        that only the variances :func:`~pmt_core.stats.intervals.crossed_t` reads
        change, not the figures' centre.
        """
        y, x, w = self._parts(values)
        single = _slopes_from_sums(counts @ w.T, counts @ x.T, counts @ y.T,
                                   counts @ (x * x).T, counts @ (x * y).T)
        pooled = _nanmean_rows(single, axis=1)
        if self.small_sample:
            pooled = _widened(pooled, (w > 0).any(axis=0).sum())
            single = _widened(single, w.sum(axis=1))
        return pooled, single


# --------------------------------------------------------------- class slopes --
@dataclass(frozen=True)
class SlopeResult:
    """The slope of one class and its equivalence outcome.

    Attributes
    ----------
    estimate : Estimate or None
        Slope of log2 peak lambda2 on log2 f0 (octaves per octave), mean over
        replicates, with its 90 % crossed t interval (the TOST interval); None
        when degenerate.
    n : int
        Examples of the class scored (finite f0 and a peak in at least one replicate).
    degenerate : str or None
        Why no slope is read (too few examples, too narrow an f0 span, a flat
        peak, no interval); None otherwise.
    outcome : str
        One of :data:`OUTCOMES`.
    follows : Estimate or None
        The same slope with a 95 % interval (the "follows pitch" test).
    f0_octaves : float
        Span of the scored examples' f0 (octaves).
    margin : float
    """

    estimate: Estimate | None
    n: int
    degenerate: str | None
    outcome: str
    follows: Estimate | None = None
    f0_octaves: float = math.nan
    margin: float = MARGIN_OCTAVES_PER_OCTAVE

    def to_dict(self) -> dict:
        """JSON form."""
        return {"estimate": None if self.estimate is None else self.estimate.to_dict(),
                "interval_95": None if self.follows is None else [float(self.follows.low),
                                                                  float(self.follows.high)],
                "n": self.n, "degenerate": self.degenerate, "outcome": self.outcome,
                "f0_octaves": self.f0_octaves, "margin": self.margin}


def _at_confidence(e: Estimate, confidence: float) -> Estimate | None:
    """Return ``e`` with a t interval at another confidence (same se and df)."""
    if e.se is None or not math.isfinite(e.se) or not math.isfinite(e.value):
        return None
    df = e.df if e.df is not None else math.inf
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * e.se
    return Estimate(e.value, e.value - half, e.value + half, e.method, e.n, e.replicates,
                    e.se, e.df, e.components, confidence)


def _outcome(e: Estimate, wide: Estimate | None, margin: float) -> str:
    if -margin <= e.low and e.high <= margin:
        return "equivalent"
    if wide is not None and (wide.low > margin or wide.high < -margin):
        return "follows pitch"
    return "not shown"


def class_slopes(log2_peak, log2_f0, classes, class_names: Sequence[str], *, seed: int = 0,
                 confidence: float = CONFIDENCE_EQUIVALENCE, min_examples: int = 9,
                 min_f0_octaves: float = 1.0,
                 margin: float = MARGIN_OCTAVES_PER_OCTAVE) -> dict[str, SlopeResult]:
    """Per class, the slope of log2 peak lambda2 on log2 f0 and its equivalence outcome.

    Parameters
    ----------
    log2_peak : numpy.ndarray, shape (R, n)
        log2 of the peak lambda2 (Hz) of each replicate's map of each test example;
        NaN where the example is not scored for that replicate (misclassified).
    log2_f0 : numpy.ndarray, shape (n,)
        log2 f0 (Hz) of each example (NaN: unknown, not scored).
    classes : numpy.ndarray of int, shape (n,)
        Index into ``class_names`` of each example's (true) class.
    class_names : sequence of str
    seed : int
        Seed of the example resamples behind the interval.
    confidence : float
        Two-sided confidence of the TOST interval (0.90: each side at 0.05).
    min_examples : int
        Fewer scored examples make the class degenerate.
    min_f0_octaves : float
        A narrower f0 span (max - min of the scored examples, octaves) makes the
        class degenerate: a slope over less than an octave of pitch says little
        about "regardless of pitch" and its interval is wide anyway.
    margin : float
        Equivalence margin (octaves per octave).

    Returns
    -------
    dict
        Class name -> :class:`SlopeResult`, for every name (a class with no
        example is degenerate).

    Notes
    -----
    A class whose peaks do not vary within any replicate (a flat profile: every
    example's peak on the same filter) is degenerate, not "slope 0": its slope is
    0 with a zero-width interval whatever the map does with pitch, because the
    read-out cannot move.
    """
    y = np.asarray(log2_peak, dtype=np.float64)
    y = y[None, :] if y.ndim == 1 else y
    x = np.asarray(log2_f0, dtype=np.float64)
    classes = np.asarray(classes)
    if x.shape != (y.shape[1],) or classes.shape != x.shape:
        raise ValueError(f"log2_peak {y.shape}, log2_f0 {x.shape} and classes "
                         f"{classes.shape} do not match")
    statistic = RowSlope()
    out = {}
    for k, name in enumerate(class_names):
        cols = np.flatnonzero((classes == k) & np.isfinite(x))
        yk = y[:, cols]
        scored = np.isfinite(yk).any(axis=0)
        yk, xk = yk[:, scored], x[cols][scored]
        n = int(xk.size)
        span = float(xk.max() - xk.min()) if n else math.nan
        reason = None
        if n < min_examples:
            reason = f"{n} examples scored (fewer than {min_examples})"
        elif span < min_f0_octaves:
            reason = f"f0 spans {span:.2f} octaves (less than {min_f0_octaves:g})"
        elif not any(np.ptp(row[np.isfinite(row)]) > 0 for row in yk
                     if np.isfinite(row).any()):
            reason = "flat profile: the peak does not move within the class in any replicate"
        if reason is not None:
            out[name] = SlopeResult(None, n, reason, "degenerate", None, span, margin)
            continue
        e = crossed_t((yk, np.broadcast_to(xk, yk.shape)), statistic, seed=seed,
                      confidence=confidence)
        if not e.finite:
            out[name] = SlopeResult(None, n, "no finite interval (too few scored cells per "
                                    "replicate)", "degenerate", None, span, margin)
            continue
        wide = _at_confidence(e, CONFIDENCE_FOLLOWS)
        out[name] = SlopeResult(e, n, None, _outcome(e, wide, margin), wide, span, margin)
    return out


def combine(results: Mapping[str, SlopeResult]) -> tuple[Estimate, Estimate]:
    """Return the largest and the smallest class slope, for an intersection-union verdict.

    Over the non-degenerate classes, the "largest" estimate's value, low and high
    ends are the maxima over classes of theirs, the "smallest"'s the minima. Then

    * ``largest.high <= margin and smallest.low >= -margin`` exactly when every
      class's 90 % interval lies inside the margin (every class equivalent; the
      intersection-union test of Berger 1982 at the classes' own level), so the
      claim reads ``AtMost(largest, margin)`` and ``AtLeast(smallest, -margin)``;
    * ``largest.low > margin`` (or ``smallest.high < -margin``) exactly when some
      class's interval lies entirely beyond the margin.

    Degenerate classes are left out here: the caller must report them (a claim
    with degenerate classes is not shown for those classes).

    Returns
    -------
    (Estimate, Estimate)
        Largest and smallest; standard error, df and replicates are those of the
        class with the largest (smallest) value, whose name ends ``method``.
        NaN estimates when no class has a slope.
    """
    scored = {k: r.estimate for k, r in results.items()
              if r.estimate is not None and r.estimate.finite}
    if not scored:
        nan = Estimate(math.nan, math.nan, math.nan, "no class slope",
                       confidence=CONFIDENCE_EQUIVALENCE)
        return nan, nan

    def pick(fn, word):
        name = fn(scored, key=lambda k: scored[k].value)
        first = scored[name]
        return Estimate(
            float(fn(e.value for e in scored.values())),
            float(fn(e.low for e in scored.values())),
            float(fn(e.high for e in scored.values())),
            f"{word} of {len(scored)} class slopes ({first.method}; {name})",
            sum(e.n or 0 for e in scored.values()), first.replicates, first.se, first.df,
            first.components, first.confidence)

    return pick(max, "largest"), pick(min, "smallest")


# ------------------------------------------------------------------ simulation --
def lambda2_grid_hz(n_filters: int = 24) -> np.ndarray:
    """Centres of the second-order filters (Hz): 4/3 Hz times 2**(k / 2)."""
    return LAMBDA2_LOWEST_HZ * np.exp2(LAMBDA2_STEP_OCTAVES * np.arange(n_filters))


def quantise_log2_lambda2(log2_hz, n_filters: int = 24) -> np.ndarray:
    """Snap log2 frequencies to the nearest lambda2 filter centre (log2 Hz), within the grid."""
    base = math.log2(LAMBDA2_LOWEST_HZ)
    k = np.clip(np.round((np.asarray(log2_hz, float) - base) / LAMBDA2_STEP_OCTAVES),
                0, n_filters - 1)
    return base + LAMBDA2_STEP_OCTAVES * k


@dataclass(frozen=True)
class SimClass:
    """One class of a simulated layout.

    Attributes
    ----------
    name : str
    rate_hz : (float, float)
        Range of the true modulation rates (log-uniform, independent of f0).
    f0_hz : (float, float)
        Range of f0 (log-uniform).
    n : int
        Test examples.
    """

    name: str
    rate_hz: tuple[float, float]
    f0_hz: tuple[float, float]
    n: int


#: The ci profile's test split (a fifth of ``CI_CLASS_SIZES``: 25-60 per class),
#: the techniques' rough modulation rates and a plausible f0 span per class (2-4
#: octaves: the instruments' ranges in SOL).
CI_CLASSES = (
    SimClass("tremolo", (8.0, 24.0), (98.0, 784.0), 60),          # strings, 3 octaves
    SimClass("flatterzunge", (16.0, 64.0), (165.0, 933.0), 50),   # winds, 2.5 octaves
    SimClass("trill", (5.0, 16.0), (131.0, 1047.0), 40),          # 3 octaves
    SimClass("bisbigliando", (6.0, 20.0), (65.0, 1047.0), 25),    # harp, 4 octaves
    SimClass("vibrato", (4.0, 8.0), (131.0, 1047.0), 25),         # 3 octaves
)

#: Planted maps: where each example's peak sits.
#: invariant - at its true modulation rate (slope 0);
#: follows_pitch - at f0 / 8 (slope 1);
#: mixture - at the true rate for 70 % of examples, at f0 / 8 for 30 % (slope ~0.3);
#: at_margin - at the true rate slid by ``MARGIN_OCTAVES_PER_OCTAVE`` per octave
#: of f0 (slope at the margin: equivalence must be claimed at most 5 % of the time).
PLANTED_KINDS = ("invariant", "follows_pitch", "mixture", "at_margin")
#: f0 / 8: a peak following pitch (harmonic beating), as the suite's planted map.
PITCH_DIVISOR = 8.0


@dataclass(frozen=True)
class Simulated:
    """A simulated data set in :func:`class_slopes`' layout.

    Attributes
    ----------
    log2_peak : numpy.ndarray, shape (R, n)
    log2_f0 : numpy.ndarray, shape (n,)
    classes : numpy.ndarray of int, shape (n,)
    class_names : tuple of str
    true_slope : dict
        Class name -> the slope the map was planted with (before quantisation;
        for "mixture" the expected OLS slope, the share at f0 / 8).
    """

    log2_peak: np.ndarray
    log2_f0: np.ndarray
    classes: np.ndarray
    class_names: tuple
    true_slope: dict


def _log_uniform(rng, bounds, size) -> np.ndarray:
    lo, hi = np.log2(bounds)
    return rng.uniform(lo, hi, size)


def simulate_planted(kind, rng: np.random.Generator, *, layout: Sequence[SimClass] = CI_CLASSES,
                     n_rep: int = 5, nan_rate: float = 0.1, shift_rate: float = 0.2,
                     mixture_share: float = 0.3) -> Simulated:
    """Simulate peaks of a planted map, quantised to the lambda2 grid.

    Parameters
    ----------
    kind : str or mapping
        One of :data:`PLANTED_KINDS`, or class name -> kind (classes not named are
        "invariant"), e.g. one class at the margin and the rest invariant, the
        least favourable case of the intersection-union test.
    rng : numpy.random.Generator
    layout : sequence of SimClass
    n_rep : int
        Replicates, explaining the same examples.
    nan_rate : float
        Share of (replicate, example) cells not scored (misclassified).
    shift_rate : float
        Share of cells whose replicate puts the peak one filter up or down
        (training noise; symmetric, so no slope of its own).
    mixture_share : float
        Share of examples at f0 / 8 in "mixture".

    Returns
    -------
    Simulated
    """
    kinds = ({c.name: kind for c in layout} if isinstance(kind, str)
             else {c.name: kind.get(c.name, "invariant") for c in layout})
    unknown = set(kinds.values()) - set(PLANTED_KINDS)
    if unknown:
        raise ValueError(f"unknown planted kind(s) {sorted(unknown)}; use {PLANTED_KINDS}")
    peaks, f0s, labels, true = [], [], [], {}
    for k, c in enumerate(layout):
        f0 = _log_uniform(rng, c.f0_hz, c.n)
        rate = _log_uniform(rng, c.rate_hz, c.n)
        pitch = f0 - math.log2(PITCH_DIVISOR)
        centre = float(np.mean(np.log2(c.f0_hz)))
        kind_k = kinds[c.name]
        if kind_k == "invariant":
            target, slope = rate, 0.0
        elif kind_k == "follows_pitch":
            target, slope = pitch, 1.0
        elif kind_k == "mixture":
            target = np.where(rng.random(c.n) < mixture_share, pitch, rate)
            slope = mixture_share
        else:
            target = rate + MARGIN_OCTAVES_PER_OCTAVE * (f0 - centre)
            slope = MARGIN_OCTAVES_PER_OCTAVE
        shift = rng.choice([-1.0, 1.0], (n_rep, c.n)) * (rng.random((n_rep, c.n)) < shift_rate)
        y = quantise_log2_lambda2(quantise_log2_lambda2(target)[None, :]
                                  + LAMBDA2_STEP_OCTAVES * shift)
        y[rng.random(y.shape) < nan_rate] = np.nan
        peaks.append(y)
        f0s.append(f0)
        labels.append(np.full(c.n, k))
        true[c.name] = slope
    return Simulated(np.concatenate(peaks, axis=1), np.concatenate(f0s),
                     np.concatenate(labels), tuple(c.name for c in layout), true)


def simulate_continuous(rng: np.random.Generator, *, slope: float = 0.0,
                        layout: Sequence[SimClass] = CI_CLASSES, n_rep: int = 5,
                        nan_rate: float = 0.1, replicate_slope_sd: float = 0.05,
                        replicate_noise_sd: float = 0.15) -> Simulated:
    """Simulate unquantised peaks with a known pooled slope (for coverage).

    Each example's log2 peak is its true rate (log-uniform over the class's range)
    plus ``slope`` times its centred log2 f0; each replicate adds its own slope
    deviation (normal, ``replicate_slope_sd``: a training that follows pitch a
    little) and cell noise (``replicate_noise_sd`` octaves). The pooled slope the
    interval is for, over trainings and examples, is ``slope``.
    """
    peaks, f0s, labels = [], [], []
    for k, c in enumerate(layout):
        f0 = _log_uniform(rng, c.f0_hz, c.n)
        dx = f0 - float(np.mean(np.log2(c.f0_hz)))
        rate = _log_uniform(rng, c.rate_hz, c.n)
        u = rng.normal(0.0, replicate_slope_sd, (n_rep, 1))
        y = (rate + slope * dx)[None, :] + u * dx[None, :] \
            + rng.normal(0.0, replicate_noise_sd, (n_rep, c.n))
        y[rng.random(y.shape) < nan_rate] = np.nan
        peaks.append(y)
        f0s.append(f0)
        labels.append(np.full(c.n, k))
    names = tuple(c.name for c in layout)
    return Simulated(np.concatenate(peaks, axis=1), np.concatenate(f0s),
                     np.concatenate(labels), names, dict.fromkeys(names, slope))


# ----------------------------------------------------------------- calibration --
def outcome_rates(kind, n_sims: int, *, seed: int = 0, **simulate) -> dict:
    """Rates of each outcome over ``n_sims`` simulated data sets of a planted kind.

    Parameters
    ----------
    kind : str or mapping
        As :func:`simulate_planted`.
    n_sims : int
    seed : int
    **simulate
        Passed to :func:`simulate_planted` (``layout``, ``n_rep``, ``nan_rate``, ...).

    Returns
    -------
    dict
        ``"classes"``: class name -> outcome -> share of data sets;
        ``"all equivalent"``: share in which :func:`combine`'s bounds hold (every
        class equivalent, the claim's verdict); ``"any follows pitch"``;
        ``"n_sims"``.
    """
    rng = np.random.default_rng(seed)
    counts: dict = {}
    all_eq = any_follows = 0
    margin = MARGIN_OCTAVES_PER_OCTAVE
    for s in range(n_sims):
        sim = simulate_planted(kind, rng, **simulate)
        res = class_slopes(sim.log2_peak, sim.log2_f0, sim.classes, sim.class_names, seed=s)
        for name, r in res.items():
            counts.setdefault(name, dict.fromkeys(OUTCOMES, 0))[r.outcome] += 1
        largest, smallest = combine(res)
        degenerate = any(r.degenerate for r in res.values())
        all_eq += bool(not degenerate and largest.high <= margin and smallest.low >= -margin)
        any_follows += any(r.outcome == "follows pitch" for r in res.values())
    return {"classes": {k: {o: v / n_sims for o, v in c.items()} for k, c in counts.items()},
            "all equivalent": all_eq / n_sims, "any follows pitch": any_follows / n_sims,
            "n_sims": n_sims}


def slope_coverage(n_sims: int, *, slope: float = 0.0, seed: int = 0,
                   confidence: float = CONFIDENCE_EQUIVALENCE, **simulate) -> dict:
    """Coverage of the slope's interval for the true pooled slope (continuous peaks).

    Returns
    -------
    dict
        Class name -> share of :func:`simulate_continuous` data sets whose interval
        at ``confidence`` contains ``slope``, with ``"n_sims"``.
    """
    rng = np.random.default_rng(seed)
    hits: dict = {}
    for s in range(n_sims):
        sim = simulate_continuous(rng, slope=slope, **simulate)
        res = class_slopes(sim.log2_peak, sim.log2_f0, sim.classes, sim.class_names, seed=s,
                           confidence=confidence)
        for name, r in res.items():
            e = r.estimate
            hits[name] = hits.get(name, 0) + bool(e is not None and e.low <= slope <= e.high)
    return {**{k: v / n_sims for k, v in hits.items()}, "n_sims": n_sims}
