"""Multiplicity: Holm's step-down adjustment of a family of p-values.

Holm (1979) controls the family-wise error rate at the level of each test, for
any dependence between the tests, and rejects everything Bonferroni does and
more. The suite uses it across the members of a claim family (one claim per LRP
reading) and across the paper's statements on the scoreboard; a claim that is
"every class" or "every control" is an intersection-union test and needs no
adjustment (Berger 1982).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["holm"]


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values (NaN stays NaN and does not count in the family).

    Parameters
    ----------
    p_values : sequence of float

    Returns
    -------
    numpy.ndarray
        ``p_adj[i] = max_{j <= rank(i)} min(1, (m - j) p_(j))`` over the sorted
        finite p-values; reject the i-th hypothesis at level alpha when
        ``p_adj[i] <= alpha``.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[i]))
        out[i] = running
    return out
