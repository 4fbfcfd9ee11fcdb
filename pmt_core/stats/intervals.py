"""Figures with intervals: what every claim measures, and how sure it is.

A claim's figure is an :class:`Estimate`: the pooled value over replicates and
test examples, a 95 % interval, and the replicates' spread (for the regression
gate). Three ways to get the interval, each where it fits:

* :func:`wilson` for a proportion of independent trials (accuracy per class,
  hit rates of test tones): the Wilson score interval (Wilson 1927; Brown, Cai
  & DasGupta 2001 recommend it over the normal one for small n);
* :func:`crossed_bootstrap` for a statistic of per-example values of several
  replicates trained on the same split: replicates and test examples are
  resampled independently (a two-way, "crossed" bootstrap: Owen 2007, "The
  pigeonhole bootstrap", Ann. Appl. Stat.), so both the training noise and the
  choice of test examples widen the interval;
* :func:`exact` for a deterministic figure (a count, a shape): no interval.
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
    "crossed_bootstrap",
    "exact",
    "minimum",
    "per_replicate_estimate",
    "wilson",
]

#: Two-sided confidence of every interval.
CONFIDENCE = 0.95
#: Bootstrap resamples: 2,000 for the vectorised means (cheap); the quantiles of
#: 1,000 draws move by about 1 % of the interval's width between seeds, which is
#: what the generic path (medians, rank correlations) affords per claim.
N_BOOTSTRAP = 2000
N_BOOTSTRAP_GENERIC = 1000


@dataclass(frozen=True)
class Estimate:
    """A figure with its interval.

    Attributes
    ----------
    value : float
        Point estimate (pooled over replicates and examples).
    low, high : float
        Two-sided :data:`CONFIDENCE` interval; equal to ``value`` for an exact figure.
    method : str
        How the interval was made ("Wilson", "crossed bootstrap", "exact", ...).
    n : int or None
        Independent units behind it (test examples, tones).
    replicates : tuple of float
        The figure per replicate (empty when it does not depend on training).
    """

    value: float
    low: float
    high: float
    method: str = "exact"
    n: int | None = None
    replicates: tuple = field(default_factory=tuple)

    @property
    def spread(self) -> float | None:
        """Standard deviation over replicates (None with fewer than two)."""
        r = [v for v in self.replicates if v is not None and math.isfinite(v)]
        return float(np.std(r, ddof=1)) if len(r) > 1 else None

    @property
    def finite(self) -> bool:
        """Whether the value and both ends are finite numbers."""
        return all(v is not None and math.isfinite(v) for v in (self.value, self.low, self.high))

    def to_dict(self) -> dict:
        """JSON form."""
        return {"value": _clean(self.value), "interval": [_clean(self.low), _clean(self.high)],
                "method": self.method, "n": self.n,
                "replicates": [_clean(v) for v in self.replicates], "spread": _clean(self.spread)}


def _clean(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def exact(value: float, n: int | None = None) -> Estimate:
    """Return a deterministic figure: its interval is the value itself."""
    value = float(value)
    return Estimate(value, value, value, "exact", n)


def wilson(successes: float, n: int, replicates: Sequence[float] = ()) -> Estimate:
    """Proportion ``successes / n`` with its Wilson score interval.

    Parameters
    ----------
    successes : float
        Number of successes; may be fractional (the mean over replicates of each
        example's success: the examples are the independent units, not the
        replicate x example pairs, since the replicates share the test set).
    n : int
        Number of independent trials.
    replicates : sequence of float
        The proportion per replicate, for the spread.
    """
    if n <= 0:
        return Estimate(math.nan, math.nan, math.nan, "Wilson", 0, tuple(replicates))
    p = successes / n
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    # At p = 0 or 1 an end is exactly 0 or 1 (rounding would leave 1 - 1e-16).
    low = 0.0 if p <= 0 else max(0.0, centre - half)
    high = 1.0 if p >= 1 else min(1.0, centre + half)
    return Estimate(float(p), low, high, "Wilson", int(n), tuple(float(v) for v in replicates))


def crossed_bootstrap(
    values,
    statistic: Callable | None = None,
    *,
    strata: np.ndarray | None = None,
    seed: int = 0,
    n_boot: int = N_BOOTSTRAP,
) -> Estimate:
    """Statistic of (replicates, examples) arrays, with a crossed-bootstrap interval.

    Parameters
    ----------
    values : numpy.ndarray (R, n), or a tuple of such arrays
        Per replicate and test example (NaN where undefined; ``statistic`` must
        cope, e.g. with ``nanmean``). With a tuple (say, two explainers' values on
        the same examples, for a paired difference), every array is resampled
        with the same replicates and examples.
    statistic : callable, optional
        ``(R', n') array -> float`` (or ``(*arrays) -> float`` for a tuple);
        default the mean of the finite values.
    strata : numpy.ndarray, shape (n,), optional
        Example groups (classes) resampled separately, so each keeps its size.
    seed : int
    n_boot : int

    Returns
    -------
    Estimate
        ``value`` = statistic of all of ``values``; the percentile interval of
        the statistic over draws that resample replicates and examples with
        replacement, independently; ``replicates`` = statistic of each row.
    """
    paired = isinstance(values, tuple | list)
    arrays = [np.asarray(v, dtype=np.float64) for v in (values if paired else (values,))]
    arrays = [a[None, :] if a.ndim == 1 else a for a in arrays]
    if statistic is None:
        statistic = _nanmean

    def stat(*parts):
        return float(statistic(*parts)) if paired else float(statistic(parts[0]))

    n_rep, n_ex = arrays[0].shape
    value = stat(*arrays)
    per_rep = tuple(stat(*(a[k : k + 1] for a in arrays)) for k in range(n_rep))
    if n_ex == 0:
        return Estimate(math.nan, math.nan, math.nan, "crossed bootstrap", 0, per_rep)
    rng = np.random.default_rng(seed)
    groups = [np.arange(n_ex)] if strata is None else [
        np.flatnonzero(np.asarray(strata) == s) for s in np.unique(strata)]
    draws = np.empty(n_boot)
    for b in range(n_boot):
        reps = rng.integers(0, n_rep, n_rep) if n_rep > 1 else np.zeros(1, int)
        ex = np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])
        draws[b] = stat(*(a[np.ix_(reps, ex)] for a in arrays))
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return Estimate(value, math.nan, math.nan, "crossed bootstrap", n_ex, per_rep)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    method = "crossed bootstrap" if n_rep > 1 else "bootstrap over examples"
    return Estimate(value, float(low), float(high), method, n_ex, per_rep)


def _nanmean(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else math.nan


def per_replicate_estimate(per_rep: Sequence[float], n: int | None = None) -> Estimate:
    """Mean over replicates with a t interval (figures defined per replicate only)."""
    r = np.asarray([v for v in per_rep if v is not None and math.isfinite(v)], float)
    if r.size == 0:
        return Estimate(math.nan, math.nan, math.nan, "t over replicates", n, tuple(per_rep))
    m = float(r.mean())
    if r.size < 2:
        return Estimate(m, math.nan, math.nan, "t over replicates", n, tuple(per_rep))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, r.size - 1) * r.std(ddof=1) / math.sqrt(r.size)
    return Estimate(m, m - half, m + half, "t over replicates", n, tuple(float(v) for v in r))


def minimum(estimates: dict) -> tuple[str, Estimate]:
    """Return the smallest of several estimates as one: (its name, the estimate).

    The combined interval runs from the smallest lower end to the smallest upper
    end, so "every estimate is at least b" holds exactly when ``low >= b`` and
    fails exactly when ``high < b`` (one estimate entirely below b).
    """
    finite = {k: e for k, e in estimates.items() if e is not None and math.isfinite(e.value)}
    if not finite:
        return "", Estimate(math.nan, math.nan, math.nan, "minimum")
    name = min(finite, key=lambda k: finite[k].value)
    lows = [e.low for e in finite.values()]
    highs = [e.high for e in finite.values()]
    first = finite[name]
    return name, Estimate(first.value, float(np.nanmin(lows)), float(np.nanmin(highs)),
                          f"minimum of {len(finite)} ({first.method})", first.n, first.replicates)


# --- vectorised bootstrap of means ------------------------------------------------
def _resample_counts(n_rep: int, n_ex: int, strata, seed: int, n_boot: int):
    """How often each replicate and example is drawn in each of ``n_boot`` resamples."""
    rng = np.random.default_rng(seed)
    rep = np.zeros((n_boot, n_rep))
    if n_rep > 1:
        draws = rng.integers(0, n_rep, (n_boot, n_rep))
        np.add.at(rep, (np.arange(n_boot)[:, None], draws), 1.0)
    else:
        rep[:] = 1.0
    ex = np.zeros((n_boot, n_ex))
    groups = [np.arange(n_ex)] if strata is None else [
        np.flatnonzero(np.asarray(strata) == s) for s in np.unique(strata)]
    for g in groups:
        picks = g[rng.integers(0, g.size, (n_boot, g.size))]
        np.add.at(ex, (np.arange(n_boot)[:, None], picks), 1.0)
    return rep, ex


class MeanOfFinite:
    """Statistic: mean of the finite values of ``values[0]`` (R, n).

    Also draws its crossed-bootstrap distribution in one vectorised pass
    (:meth:`draws`): a resample is a count per replicate times a count per
    example, so its mean is a ratio of two weighted sums.
    """

    by_class = False

    def __call__(self, values) -> float:
        v = np.asarray(values[0], dtype=np.float64)
        if self.by_class:
            return _macro_of(v, np.asarray(values[1]))
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else math.nan

    def draws(self, values, strata, seed: int, n_boot: int = N_BOOTSTRAP) -> np.ndarray:
        """Return the statistic over ``n_boot`` crossed resamples (same seed, same ones)."""
        v = np.asarray(values[0], dtype=np.float64)
        finite = np.isfinite(v)
        rep, ex = _resample_counts(v.shape[0], v.shape[1], strata, seed, n_boot)
        num = (rep @ np.where(finite, v, 0.0)) * ex  # (B, n)
        den = (rep @ finite.astype(float)) * ex
        if not self.by_class:
            with np.errstate(invalid="ignore", divide="ignore"):
                return num.sum(1) / den.sum(1)
        classes = np.asarray(values[1])[0]
        means = []
        for c in np.unique(classes):
            cols = classes == c
            with np.errstate(invalid="ignore", divide="ignore"):
                means.append(num[:, cols].sum(1) / den[:, cols].sum(1))
        with np.errstate(invalid="ignore"):
            return np.nanmean(np.stack(means), axis=0)


class MacroMean(MeanOfFinite):
    """Statistic: mean over classes (``values[1]``) of within-class means of ``values[0]``."""

    by_class = True


def _macro_of(values: np.ndarray, classes: np.ndarray) -> float:
    means = []
    for c in np.unique(classes):
        v = values[(classes == c) & np.isfinite(values)]
        if v.size:
            means.append(v.mean())
    return float(np.mean(means)) if means else math.nan


def bootstrap_estimate(values, statistic, *, strata=None, seed: int = 0,
                       n_boot: int = N_BOOTSTRAP) -> Estimate:
    """:func:`crossed_bootstrap` with the vectorised path of a :class:`MeanOfFinite`."""
    if not isinstance(statistic, MeanOfFinite):
        return crossed_bootstrap(tuple(values), lambda *a: statistic(a), strata=strata,
                                 seed=seed, n_boot=min(n_boot, N_BOOTSTRAP_GENERIC))
    return _from_draws(values, statistic, statistic.draws(values, strata, seed, n_boot))


def paired_estimate(a, b, statistic, sign: float = 1.0, *, strata=None, seed: int = 0,
                    n_boot: int = N_BOOTSTRAP) -> Estimate:
    """``sign * (statistic(a) - statistic(b))`` over the same crossed resamples."""
    if not isinstance(statistic, MeanOfFinite):
        k = len(a)
        return crossed_bootstrap(tuple(a) + tuple(b),
                                 lambda *p: sign * (statistic(p[:k]) - statistic(p[k:])),
                                 strata=strata, seed=seed,
                                 n_boot=min(n_boot, N_BOOTSTRAP_GENERIC))
    draws = sign * (statistic.draws(a, strata, seed, n_boot)
                    - statistic.draws(b, strata, seed, n_boot))
    value = sign * (statistic(a) - statistic(b))
    reps = tuple(sign * (statistic(tuple(x[k : k + 1] for x in a))
                         - statistic(tuple(x[k : k + 1] for x in b)))
                 for k in range(np.asarray(a[0]).shape[0]))
    return _interval(value, draws, np.asarray(a[0]).shape[1], reps)


def _from_draws(values, statistic, draws) -> Estimate:
    first = np.asarray(values[0])
    reps = tuple(float(statistic(tuple(np.asarray(x)[k : k + 1] for x in values)))
                 for k in range(first.shape[0]))
    return _interval(float(statistic(values)), draws, first.shape[1], reps)


def _interval(value, draws, n, reps) -> Estimate:
    draws = np.asarray(draws)[np.isfinite(draws)]
    method = "crossed bootstrap" if len(reps) > 1 else "bootstrap over examples"
    if draws.size == 0:
        return Estimate(value, math.nan, math.nan, method, n, reps)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return Estimate(value, float(low), float(high), method, n, reps)
