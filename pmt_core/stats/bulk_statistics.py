"""Two statistics of the coverage simulations, with their example resamples in bulk.

Generic statistics (a median, a within-class rank correlation) are evaluated by
:func:`~pmt_core.stats.intervals.crossed_t` once per example resample, in
Python. :class:`WithinClassRho` and :class:`FiniteMedian` compute the *same*
resampled figures in a few array operations (weighted ranks and weighted
medians over the resample counts instead of materialised resamples), so that
each calibration scenario (:mod:`pmt_core.stats.coverage_scenarios`) can afford
about 2,000 simulations at the full 200 resamples;
``tests/test_stats_coverage.py`` checks that they give the generic path's
interval to rounding.
"""

from __future__ import annotations

import numpy as np

from pmt_core.stats.intervals import MeanOfFinite

__all__ = ["FiniteMedian", "WithinClassRho"]



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
    """:func:`~pmt_core.stats.correlation.within_class_rho`, its example resamples in bulk.

    A :class:`~pmt_core.stats.intervals.MeanOfFinite` only so that
    :func:`~pmt_core.stats.intervals.crossed_t` takes its vectorised branch
    (``resampled``); the figures are those of the generic branch, to rounding
    (``WithinClassRho(n_draws=N_VARIANCE_DRAWS_GENERIC)`` draws its resamples too).
    All classes are handled at once, padded to the largest (padding weighs 0).
    Keeps work arrays between calls: reuse one instance.
    """

    def __init__(self, n_draws: int | None = None):
        self._buffers = _Buffers()
        if n_draws is not None:
            self.n_draws = n_draws

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
