"""Figures with intervals: what every claim measures, and how sure it is.

A claim's figure is an :class:`Estimate`: the pooled value over replicates and
test examples, a 95 % interval, its standard error and degrees of freedom (so a
verdict has a p-value and a power), and the replicates' spread (for the
regression gate).

The suite's layout is *crossed*: R replicates (a handful of trainings of the same
network) explain the same n test examples. A figure pooled over both varies with
the training (a replicate effect), with the choice of test examples (an example
effect) and with their interaction, and five replicates cannot be resampled as
if they were many (a percentile bootstrap over 5 replicates covers 0.83-0.87 when
training noise dominates: audit M1). :func:`crossed_t` therefore estimates the
three variance components of the pooled figure, as a two-way random-effects
ANOVA does for a mean (Searle, Casella & McCulloch 1992, ch. 4):

* ``V_rep``: the variance of the per-replicate figures over R (training noise
  plus the interaction's share), with R - 1 degrees of freedom;
* ``V_ex``: the variance of the pooled figure over example resamples that keep
  every replicate (example noise plus the interaction's share);
* ``V_int``: the interaction's share, counted in both, from how much more a single
  replicate's figure varies over the same example resamples than the pooled one;

and puts a t interval around the figure with ``V = V_rep + V_ex - V_int`` and
Satterthwaite's degrees of freedom (Satterthwaite 1946), so that five replicates
give a wide t quantile when the training dominates and a normal one when the
examples do. For a proportion, :func:`proportion` turns the same variance into an
effective sample size and a Wilson interval (Korn & Graubard 1998), which keeps
its coverage near 0 and 1.

Every method here is calibrated by simulation in the suite's own layouts
(:mod:`pmt_core.stats.coverage`; ``python -m pmt_core stats coverage``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

__all__ = [
    "CONFIDENCE",
    "Estimate",
    "MacroMean",
    "MeanOfFinite",
    "crossed_t",
    "exact",
    "minimum",
    "paired_t",
    "per_replicate_estimate",
    "proportion",
    "shifted",
]

#: Two-sided confidence of every interval.
CONFIDENCE = 0.95
#: Example resamples behind ``V_ex`` and ``V_int``: the variance of 400 draws has a
#: relative error of about 7 % (sqrt(2 / 400)); 200 for statistics evaluated in
#: Python per draw (rank correlations, medians), 10 %.
N_VARIANCE_DRAWS = 400
N_VARIANCE_DRAWS_GENERIC = 200


@dataclass(frozen=True)
class Estimate:
    """A figure with its interval.

    Attributes
    ----------
    value : float
        Point estimate (pooled over replicates and examples).
    low, high : float
        Two-sided interval at ``confidence``; equal to ``value`` for an exact figure.
    method : str
        How the interval was made ("crossed t", "Wilson (effective n)", "exact", ...).
    n : int or None
        Independent units behind it (test examples, tones).
    replicates : tuple of float
        The figure per replicate (empty when it does not depend on training).
    se : float or None
        Standard error of ``value`` (None: the method gives none).
    df : float or None
        Degrees of freedom of the t reference distribution (inf: normal).
    components : tuple of float
        Variance components per unit ``(replicate, example, interaction)``: the
        variance of the pooled figure over R replicates and n examples is
        ``c0 / R + c1 / n + c2 / (R n)`` (power analysis, :mod:`pmt_core.stats.power`).
    confidence : float
    """

    value: float
    low: float
    high: float
    method: str = "exact"
    n: int | None = None
    replicates: tuple = field(default_factory=tuple)
    se: float | None = None
    df: float | None = None
    components: tuple = ()
    confidence: float = CONFIDENCE

    @property
    def spread(self) -> float | None:
        """Standard deviation over replicates (None with fewer than two)."""
        r = [v for v in self.replicates if v is not None and math.isfinite(v)]
        return float(np.std(r, ddof=1)) if len(r) > 1 else None

    @property
    def finite(self) -> bool:
        """Whether the value and both ends are finite numbers."""
        return all(v is not None and math.isfinite(v) for v in (self.value, self.low, self.high))

    def p_value(self, bar: float, op: str) -> float:
        """One-sided p-value of "the figure is on the wrong side of ``bar``".

        Small when the data show the figure on the right side (``op`` "at least":
        above ``bar``; "at most": below). From the t reference when the method
        gives a standard error, else from the interval's half-width read as 1.96
        standard errors; an exact figure gives 0 or 1.
        """
        if not self.finite:
            return math.nan
        sign = 1.0 if op == "at least" else -1.0
        distance = sign * (self.value - bar)
        se = self.se
        if se is None and self.method != "exact":
            z = stats.norm.ppf(0.5 + self.confidence / 2)
            se = (self.high - self.low) / (2 * z)
        if not se:
            return 0.0 if distance > 0 else 1.0
        df = self.df if self.df is not None else math.inf
        return float(stats.t.sf(distance / se, df))

    def to_dict(self) -> dict:
        """JSON form."""
        return {"value": _clean(self.value), "interval": [_clean(self.low), _clean(self.high)],
                "method": self.method, "n": self.n,
                "replicates": [_clean(v) for v in self.replicates], "spread": _clean(self.spread),
                "se": _clean(self.se), "df": _clean(self.df),
                "confidence": self.confidence}


def _clean(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def exact(value: float, n: int | None = None) -> Estimate:
    """Return a deterministic figure: its interval is the value itself."""
    value = float(value)
    return Estimate(value, value, value, "exact", n)


def shifted(e: Estimate, delta: float) -> Estimate:
    """Return ``e`` moved by ``delta`` (a figure minus its bar)."""
    return Estimate(e.value + delta, e.low + delta, e.high + delta, e.method, e.n,
                    tuple(v + delta for v in e.replicates), e.se, e.df, e.components,
                    e.confidence)


# ---------------------------------------------------------------- statistics --
class MeanOfFinite:
    """Statistic: mean of the finite values of ``values[0]`` (R, n).

    Vectorised for :func:`crossed_t`: :meth:`resampled` evaluates the pooled and
    the per-replicate figure over many example resamples in two matrix products.
    """

    by_class = False
    #: Example resamples :func:`crossed_t` draws for it by default.
    n_draws = N_VARIANCE_DRAWS

    def __call__(self, values) -> float:
        """Return the statistic of ``values`` (a tuple of (R, n) arrays)."""
        v = np.asarray(values[0], dtype=np.float64)
        if self.by_class:
            return _macro_of(v, np.asarray(values[1]))
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else math.nan

    def resampled(self, values, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pooled (B,) and per-replicate (B, R) figures for example ``counts`` (B, n)."""
        v = np.asarray(values[0], dtype=np.float64)
        finite = np.isfinite(v)
        vz, f = np.where(finite, v, 0.0), finite.astype(float)
        if not self.by_class:
            num, den = counts @ vz.T, counts @ f.T  # (B, R)
            with np.errstate(invalid="ignore", divide="ignore"):
                return num.sum(1) / den.sum(1), num / den
        classes = np.asarray(values[1])[0]
        pooled, single = [], []
        for c in np.unique(classes):
            cols = classes == c
            num, den = counts[:, cols] @ vz[:, cols].T, counts[:, cols] @ f[:, cols].T
            with np.errstate(invalid="ignore", divide="ignore"):
                pooled.append(num.sum(1) / den.sum(1))
                single.append(num / den)
        with np.errstate(invalid="ignore"), _quiet():
            return np.nanmean(np.stack(pooled), axis=0), np.nanmean(np.stack(single), axis=0)


class MacroMean(MeanOfFinite):
    """Statistic: mean over classes (``values[1]``) of within-class means of ``values[0]``."""

    by_class = True


class _quiet:
    """Silence numpy's "mean of empty slice" (an empty class is NaN, by design)."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def _macro_of(values: np.ndarray, classes: np.ndarray) -> float:
    means = []
    for c in np.unique(classes):
        v = values[(classes == c) & np.isfinite(values)]
        if v.size:
            means.append(v.mean())
    return float(np.mean(means)) if means else math.nan


def _nanmean(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else math.nan


# ----------------------------------------------------------------- crossed t --
def _example_counts(n: int, strata, seed: int, n_draws: int) -> np.ndarray:
    """How often each example is drawn in each of ``n_draws`` resamples (within strata)."""
    rng = np.random.default_rng(seed)
    counts = np.zeros(n_draws * n)
    groups = [np.arange(n)] if strata is None else [
        np.flatnonzero(np.asarray(strata) == s) for s in np.unique(strata)]
    rows = np.arange(n_draws)[:, None] * n
    for g in groups:
        if g.size:
            picks = rows + g[rng.integers(0, g.size, (n_draws, g.size))]
            counts += np.bincount(picks.ravel(), minlength=n_draws * n)
    return counts.reshape(n_draws, n)


def _variance(x: np.ndarray) -> float:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return float(np.var(x, ddof=1)) if x.size > 1 else math.nan


def crossed_t(values, statistic: Callable | None = None, *, strata=None, seed: int = 0,
              n_draws: int | None = None, confidence: float = CONFIDENCE) -> Estimate:
    """Statistic of (replicates, examples) arrays with a crossed t interval.

    Parameters
    ----------
    values : numpy.ndarray (R, n), or a tuple of such arrays
        Per replicate and test example (NaN where undefined; ``statistic`` must
        cope). With a tuple, every array is resampled alike (a rank correlation of
        two per-example quantities, a macro mean over a class array).
    statistic : callable, optional
        ``tuple of (R', n') arrays -> float``, or a :class:`MeanOfFinite`
        (vectorised); default the mean of the finite values.
    strata : numpy.ndarray, shape (n,), optional
        Example groups (classes) resampled separately, so each keeps its size.
    seed : int
    n_draws : int, optional
        Example resamples for ``V_ex`` and ``V_int`` (default by statistic kind).
    confidence : float

    Returns
    -------
    Estimate
        ``value`` = statistic of all of ``values``; interval ``value +- t_df
        sqrt(V)`` (module notes); ``replicates`` = statistic of each row.
    """
    arrays = tuple(np.asarray(v, dtype=np.float64) for v in (
        values if isinstance(values, tuple | list) else (values,)))
    arrays = tuple(a[None, :] if a.ndim == 1 else a for a in arrays)
    statistic = MeanOfFinite() if statistic is None else statistic
    n_rep, n_ex = arrays[0].shape
    value = float(statistic(arrays))
    per_rep = tuple(float(statistic(tuple(a[r:r + 1] for a in arrays))) for r in range(n_rep))
    method = "crossed t" if n_rep > 1 else "t over examples"
    if n_ex < 2 or not math.isfinite(value):
        return Estimate(value, math.nan, math.nan, method, n_ex, per_rep, confidence=confidence)
    counts = _counts_for(statistic, n_ex, strata, seed, n_draws)
    pooled, single = _resampled(arrays, statistic, counts)
    return _t_interval(value, per_rep, pooled, single, _units(arrays[0]), method, confidence)


def paired_t(a, b, statistic: Callable | None = None, sign: float = 1.0, *, strata=None,
             seed: int = 0, n_draws: int | None = None,
             confidence: float = CONFIDENCE) -> Estimate:
    """``sign * (statistic(a) - statistic(b))`` with a crossed t interval.

    ``a`` and ``b`` are tuples of (R, n) arrays on the same replicates and examples
    (two explainers' values): the same example resamples serve both, so what they
    share cancels in the difference.
    """
    a = tuple(np.asarray(x, dtype=np.float64) for x in a)
    b = tuple(np.asarray(x, dtype=np.float64) for x in b)
    statistic = MeanOfFinite() if statistic is None else statistic
    n_rep, n_ex = a[0].shape

    def diff(sa, sb):
        return sign * (sa - sb)

    value = diff(statistic(a), statistic(b))
    per_rep = tuple(diff(statistic(tuple(x[r:r + 1] for x in a)),
                         statistic(tuple(x[r:r + 1] for x in b))) for r in range(n_rep))
    method = "paired crossed t" if n_rep > 1 else "paired t over examples"
    if n_ex < 2 or not math.isfinite(value):
        return Estimate(value, math.nan, math.nan, method, n_ex, per_rep, confidence=confidence)
    counts = _counts_for(statistic, n_ex, strata, seed, n_draws)  # the same for both
    pa, sa = _resampled(a, statistic, counts)
    pb, sb = _resampled(b, statistic, counts)
    units = min(_units(a[0]), _units(b[0]))
    return _t_interval(value, per_rep, diff(pa, pb), diff(sa, sb), units, method, confidence)


def _units(values: np.ndarray) -> int:
    """Examples with a finite value for at least one replicate."""
    return int(np.isfinite(values).any(axis=0).sum())


def _counts_for(statistic, n_ex: int, strata, seed: int, n_draws: int | None) -> np.ndarray:
    """Return example resample counts, as many as the statistic's kind affords."""
    default = getattr(statistic, "n_draws", N_VARIANCE_DRAWS_GENERIC)
    return _example_counts(n_ex, strata, seed, n_draws or default)


def _resampled(arrays, statistic, counts) -> tuple[np.ndarray, np.ndarray]:
    """Pooled and per-replicate figures over the resamples (vectorised where it can)."""
    if isinstance(statistic, MeanOfFinite):
        return statistic.resampled(arrays, counts)
    return _resampled_generic(arrays, statistic, counts)


def _resampled_generic(arrays, statistic, counts) -> tuple[np.ndarray, np.ndarray]:
    n_draws, n_rep = counts.shape[0], arrays[0].shape[0]
    pooled, single = np.empty(n_draws), np.empty((n_draws, n_rep))
    for d in range(n_draws):
        idx = np.repeat(np.arange(counts.shape[1]), counts[d].astype(int))
        part = tuple(x[:, idx] for x in arrays)
        pooled[d] = statistic(part)
        for r in range(n_rep):
            single[d, r] = statistic(tuple(x[r:r + 1] for x in part))
    return pooled, single


def _t_interval(value, per_rep, pooled, single, n_units, method, confidence) -> Estimate:
    """Return the crossed t interval from the resampled figures (module notes)."""
    n_rep = len(per_rep)
    v_ex = _variance(pooled)
    if not math.isfinite(v_ex):
        return Estimate(value, math.nan, math.nan, method, n_units, per_rep,
                        confidence=confidence)
    if n_rep > 1:
        v_rep = _variance(per_rep) / n_rep
        v_single = np.nanmean([_variance(single[:, r]) for r in range(n_rep)])
        v_int = max(v_single - v_ex, 0.0) / (n_rep - 1) if math.isfinite(v_single) else 0.0
        v_rep = v_rep if math.isfinite(v_rep) else 0.0
    else:
        v_rep = v_int = 0.0
    v_b = max(v_ex - v_int, 0.0)
    # each part is at most the whole: V >= V_ex even when V_int is over-estimated
    v = max(v_rep + v_b, v_ex)
    denom = ((v_rep**2 / (n_rep - 1)) if n_rep > 1 else 0.0) + v_b**2 / max(n_units - 1, 1)
    df = v**2 / denom if denom > 0 else math.inf
    df = max(df, 1.0)
    se = math.sqrt(v)
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    components = (max(v_rep * n_rep - v_int * n_rep, 0.0), v_b * n_units,
                  v_int * n_rep * n_units)
    return Estimate(value, value - half, value + half, method, n_units, per_rep, se, df,
                    components, confidence)


# ---------------------------------------------------------------- proportion --
def proportion(correct, *, strata=None, seed: int = 0,
               confidence: float = CONFIDENCE) -> Estimate:
    """Share of successes in (R, n) 0/1 outcomes with an effective-n Wilson interval.

    The crossed t's variance ``V`` of the pooled share p gives an effective sample
    size ``n_eff = p (1 - p) / V`` (at most the R n outcomes), shrunk by
    ``(z / t_df)^2`` for the few replicates behind ``V`` (Korn & Graubard 1998),
    and the Wilson score interval at that size (Wilson 1927; Brown, Cai &
    DasGupta 2001). With p = 0 or 1 the replicates agree on every example and
    ``n_eff`` is the number of examples.
    """
    c = np.asarray(correct, dtype=np.float64)
    c = c[None, :] if c.ndim == 1 else c
    base = crossed_t(c, strata=strata, seed=seed, confidence=confidence)
    p, n = base.value, base.n or 0
    if n == 0 or not math.isfinite(p):
        return Estimate(p, math.nan, math.nan, "Wilson (effective n)", n, base.replicates,
                        confidence=confidence)
    z = stats.norm.ppf(0.5 + confidence / 2)
    var = (base.se or 0.0) ** 2
    if var > 0 and 0 < p < 1:
        t = stats.t.ppf(0.5 + confidence / 2, base.df)
        n_eff = min(p * (1 - p) / var, n * c.shape[0]) * (z / t) ** 2
    else:
        n_eff = float(n)
    low, high = _wilson(p, n_eff, z)
    return Estimate(p, low, high, "Wilson (effective n)", n, base.replicates, base.se, base.df,
                    base.components, confidence)


def _wilson(p: float, n: float, z: float) -> tuple[float, float]:
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    # at p = 0 or 1 an end is exactly 0 or 1 (rounding would leave 1 - 1e-16)
    return (0.0 if p <= 0 else max(0.0, centre - half)), (1.0 if p >= 1 else min(1.0,
                                                                                centre + half))


# ------------------------------------------------------- per replicate, minima --
def per_replicate_estimate(per_rep: Sequence[float], n: int | None = None,
                           confidence: float = CONFIDENCE) -> Estimate:
    """Mean over replicates with a t interval (figures defined per replicate only)."""
    r = np.asarray([v for v in per_rep if v is not None and math.isfinite(v)], float)
    if r.size == 0:
        return Estimate(math.nan, math.nan, math.nan, "t over replicates", n, tuple(per_rep))
    m = float(r.mean())
    if r.size < 2:
        return Estimate(m, math.nan, math.nan, "t over replicates", n, tuple(per_rep))
    se = r.std(ddof=1) / math.sqrt(r.size)
    half = stats.t.ppf(0.5 + confidence / 2, r.size - 1) * se
    return Estimate(m, m - half, m + half, "t over replicates", n, tuple(float(v) for v in r),
                    float(se), float(r.size - 1), (float(r.var(ddof=1)), 0.0, 0.0), confidence)


def minimum(estimates: dict) -> tuple[str, Estimate]:
    """Return the smallest of several estimates as one: (its name, the estimate).

    The combined interval runs from the smallest lower end to the smallest upper
    end, so "every estimate is at least b" holds exactly when ``low >= b`` and
    fails exactly when ``high < b`` (one estimate entirely below b): an
    intersection-union test, which needs no multiplicity correction (Berger 1982).
    The standard error and degrees of freedom are the smallest figure's.
    """
    finite = {k: e for k, e in estimates.items() if e is not None and math.isfinite(e.value)}
    if not finite:
        return "", Estimate(math.nan, math.nan, math.nan, "minimum")
    name = min(finite, key=lambda k: finite[k].value)
    lows = [e.low for e in finite.values()]
    highs = [e.high for e in finite.values()]
    first = finite[name]
    return name, Estimate(first.value, float(np.nanmin(lows)), float(np.nanmin(highs)),
                          f"minimum of {len(finite)} ({first.method})", first.n,
                          first.replicates, first.se, first.df, first.components,
                          first.confidence)
