"""Power: the test examples and replicates a bound needs to be decided.

A figure pooled over R replicates and n test examples has variance
``c0 / R + c1 / n + c2 / (R n)`` (the components :func:`pmt_core.stats.intervals.
crossed_t` estimates). A bound is decided with power ``1 - beta`` at the
smallest effect that matters (the figure ``effect`` away from its bar, on either
side) when ``(z_{1 - alpha / 2} + z_{1 - beta}) sqrt(V) <= effect`` (the normal
approximation of a two-sided test at level alpha; alpha is divided by the size
of the Holm family the bound belongs to, Bonferroni's worst case).
"""

from __future__ import annotations

import math

from scipy import stats

__all__ = ["POWER", "sizes_needed"]

#: Power a profile must reach to be "sized to decide" a bound.
POWER = 0.80
ALPHA = 0.05


def sizes_needed(components, effect: float, n: int, replicates: int, *,
                 family_size: int = 1, alpha: float = ALPHA, power: float = POWER) -> dict:
    """Sizes that decide a bound at ``power`` for a figure ``effect`` from its bar.

    Parameters
    ----------
    components : tuple of float
        ``(c0, c1, c2)``: replicate, example and interaction variance per unit.
    effect : float
        Smallest distance from the bar that matters (> 0).
    n, replicates : int
        This run's test examples and replicates.
    family_size : int
        Holm family size (alpha is split over it).

    Returns
    -------
    dict
        ``minimum_effect``; ``power`` at this run's size; ``n_needed`` (examples at
        this run's replicates; None: unreachable with this many replicates);
        ``replicates_needed`` (at this run's examples; None: unreachable);
        ``decided`` (this run reaches ``power``).
    """
    c0, c1, c2 = (max(float(c), 0.0) for c in components)
    a = alpha / max(family_size, 1)
    z_a, z_b = stats.norm.ppf(1 - a / 2), stats.norm.ppf(power)
    target = (effect / (z_a + z_b)) ** 2
    n, replicates = max(int(n), 1), max(int(replicates), 1)
    var = c0 / replicates + c1 / n + c2 / (replicates * n)
    achieved = 1.0 if var == 0 else float(stats.norm.cdf(effect / math.sqrt(var) - z_a))
    rest_n = target - c0 / replicates
    n_needed = math.ceil((c1 + c2 / replicates) / rest_n) if rest_n > 0 else None
    rest_r = target - c1 / n
    r_needed = math.ceil((c0 + c2 / n) / rest_r) if rest_r > 0 else None
    return {"minimum_effect": effect, "power": achieved, "n_needed": n_needed,
            "replicates_needed": r_needed, "decided": var <= target, "alpha": a}
