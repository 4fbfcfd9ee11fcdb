"""Rank correlations of per-example figures, as the claims pool them.

Vectorised over replicate rows, since :func:`pmt_core.stats.intervals.crossed_t`
evaluates a statistic once per example resample and replicate.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

__all__ = ["model_specific_agreement", "rowwise_spearman", "within_class_rho"]


def within_class_rho(values) -> float:
    """Mean over replicate rows of the Fisher-pooled within-class Spearman rho.

    Parameters
    ----------
    values : tuple of numpy.ndarray, each (R, n)
        ``(peak, rate, classes)``: per replicate and example a peak and a rate
        (NaN: unscored) and the example's class.

    Returns
    -------
    float
        Per row, the Spearman rho of peak and rate within each class (scored
        pairs only, ties at their mean rank, a constant class counting as 0),
        pooled over classes with at least 4 pairs by Fisher's z weighted by
        n - 3; then the mean over rows (the figure of the
        ``relevance.peak_modulation`` claims).
    """
    peak, rate, classes = (np.asarray(v, dtype=np.float64) for v in values)
    zs, ws = np.zeros(peak.shape[0]), np.zeros(peak.shape[0])
    for c in np.unique(classes[0]):
        cols = classes[0] == c
        p, q = peak[:, cols], rate[:, cols]
        ok = np.isfinite(p) & np.isfinite(q)
        n = ok.sum(axis=1)
        rp = stats.rankdata(np.where(ok, p, np.inf), axis=1)
        rq = stats.rankdata(np.where(ok, q, np.inf), axis=1)
        rp, rq = np.where(ok, rp, np.nan), np.where(ok, rq, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            # a row with no scored pair in the class is NaN here, 0 below, by design
            warnings.simplefilter("ignore", RuntimeWarning)
            dp = rp - np.nanmean(rp, axis=1, keepdims=True)
            dq = rq - np.nanmean(rq, axis=1, keepdims=True)
            rho = np.nansum(dp * dq, 1) / np.sqrt(np.nansum(dp**2, 1) * np.nansum(dq**2, 1))
        rho = np.where(np.isfinite(rho), rho, 0.0)
        use = n >= 4
        zs += np.where(use, np.arctanh(np.clip(rho, -0.999999, 0.999999)) * (n - 3), 0.0)
        ws += np.where(use, n - 3, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = np.tanh(zs / ws)
    rows = rows[np.isfinite(rows)]
    return float(rows.mean()) if rows.size else math.nan


def rowwise_spearman(x, y) -> np.ndarray:
    """Spearman rho of each row of ``x`` with the same row of ``y`` (last axis).

    Parameters
    ----------
    x, y : array-like, (..., k)

    Returns
    -------
    numpy.ndarray, (...)
        NaN for a row with a non-finite value, fewer than 3 columns or no spread.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x, y = np.broadcast_arrays(x, y)
    if x.shape[-1] < 3:
        return np.full(x.shape[:-1], np.nan)
    finite = np.isfinite(x).all(axis=-1) & np.isfinite(y).all(axis=-1)
    rx = stats.rankdata(np.where(np.isfinite(x), x, 0.0), axis=-1)
    ry = stats.rankdata(np.where(np.isfinite(y), y, 0.0), axis=-1)
    rx -= rx.mean(axis=-1, keepdims=True)
    ry -= ry.mean(axis=-1, keepdims=True)
    scale = np.sqrt((rx**2).sum(axis=-1) * (ry**2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rx * ry).sum(axis=-1) / scale
    return np.where(finite & (scale > 0), rho, np.nan)


def model_specific_agreement(profiles, drops) -> tuple[np.ndarray, np.ndarray]:
    """Agreement of each replicate's map with its own model's use, beyond the others'.

    Parameters
    ----------
    profiles : sequence of R arrays (examples, bands)
        Band profiles of one explainer's maps, replicate by replicate.
    drops : sequence of R arrays (examples, bands)
        Each replicate's occlusion drops (NaN rows: not scored).

    Returns
    -------
    lift, own : numpy.ndarray, (R, examples)
        ``own[r]``: Spearman rho over bands of replicate r's profile with its own
        drops; ``lift[r]``: ``own[r]`` minus the mean rho with the other
        replicates' drops. A profile that does not depend on the replicate (the
        input, its energy) has lift summing to 0 over replicates, exactly: the
        test, not a bar, rejects it.
    """
    n_rep = len(drops)
    if n_rep < 2:
        raise ValueError("model_specific_agreement needs at least two replicates")
    agreement = np.stack([np.stack([rowwise_spearman(profiles[r], drops[s])
                                    for s in range(n_rep)]) for r in range(n_rep)])
    own = agreement[np.arange(n_rep), np.arange(n_rep)]
    others = (agreement.sum(axis=1) - own) / (n_rep - 1)
    return own - others, own
