"""Claim families run on every explainer: the shared machinery of the matrix.

A family (``relevance.localisation``, ``sanity.deletion``, ...) computes one
figure per explainer from per-example values of every replicate
(:class:`FamilyResult`) and checks it against one bound, its *criterion*.
Three kinds of claims read a family:

* the per-composite claims (``relevance.localisation.<composite>``): the LRP
  reading must meet the criterion AND beat the strongest null explainer the
  family must reject, by the family's margin, under a paired crossed bootstrap
  (the same replicates and examples resampled for both);
* the family's power claim (``power.relevance.localisation``): every null the
  family must reject must fail the criterion (MetaQuantus' idea of testing the
  test, Hedstroem et al. 2023: a claim a null passes cannot tell an explanation
  from one that ignores the example or the model);
* the report's verdict matrix: every explainer's figure and verdict.

Which nulls a family must reject is declared with it, with the reason for any
null left out (a null that has the claimed property by construction, such as a
class-constant map for pitch invariance).

Values are tuples of (replicates, examples) arrays (NaN: not scored), so that a
statistic may combine several per-example quantities (a rank correlation of two
of them, a macro average over a class array); the bootstrap resamples all of a
tuple's arrays alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pmt_core.claims.core import NOT_HOLD, AtLeast, Bound, Measurement
from pmt_core.claims.estimates import (
    Estimate,
    MacroMean,
    bootstrap_estimate,
    exact,
    paired_estimate,
)

__all__ = [
    "ALL_NULLS",
    "FAMILIES",
    "Family",
    "FamilyResult",
    "cells",
    "class_macro",
    "family",
    "family_result",
    "reading_bounds",
    "power_measurement",
    "reading_measurement",
    "stack",
]

#: The null explainers a faithful-explanation claim must reject unless its family
#: says otherwise: the guide's list (class-constant, input alone, energy,
#: randomised model) and i.i.d. random maps.
ALL_NULLS = ("random", "class_constant", "input", "energy_raw", "energy_norm",
             "lrp_randomised")


@dataclass
class FamilyResult:
    """Per-explainer values of one family on one run.

    Attributes
    ----------
    values : dict
        Explainer -> tuple of (R, n) arrays (see the module notes).
    strata : numpy.ndarray or None
        (n,) example classes, resampled separately by the bootstrap.
    n : int or None
        Examples scored.
    figures : dict
        Explainer -> further figures shown with its claim.
    tables : list of (rows, caption)
    plots : list of callables ``composite -> (Figure, caption)`` or None
    detail : str
    not_applicable : str or None
        Why the family cannot be measured on these data.
    estimates : dict
        Cache of the figure's Estimate per explainer.
    """

    values: dict = field(default_factory=dict)
    strata: np.ndarray | None = None
    n: int | None = None
    figures: dict = field(default_factory=dict)
    tables: list = field(default_factory=list)
    plots: list = field(default_factory=list)
    detail: str = ""
    not_applicable: str | None = None
    estimates: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    """A claim family (see the module notes).

    Attributes
    ----------
    id : str
        ``group.name``.
    criterion : Bound
        The bound every explainer is judged on (its figure is the family's).
    statistic : callable
        ``tuple of arrays -> float``: the figure from per-example values (also
        applied to bootstrap resamples).
    compute : callable
        ``run -> FamilyResult`` (memoised per run).
    must_reject : tuple of str
        Null explainers that must fail the criterion.
    excluded : str
        Why the other nulls are not required to fail it.
    margin : float or None
        Bar of "reading minus the strongest must-reject null" (None: none).
    extra_bounds : tuple of Bound
        Further bounds of the reading claims, on figures the family adds.
    """

    id: str
    criterion: Bound
    statistic: Callable
    compute: Callable
    must_reject: tuple = ALL_NULLS
    excluded: str = ""
    margin: float | None = 0.0
    extra_bounds: tuple = ()

    @property
    def figure(self) -> str:
        """Name of the family's figure."""
        return self.criterion.figure

    @property
    def higher_is_better(self) -> bool:
        """Whether the criterion is a lower bound."""
        return self.criterion.op == "at least"


#: Labels of the planted maps some families add to the explainers (power checks).
PLANTED_LABELS = {"planted_pitch": "planted: peak at f0 / 8 (null)",
                  "planted_distractor": "planted: peak at the distractor (null)"}

#: family id -> Family, filled by :func:`family`.
FAMILIES: dict[str, Family] = {}


def family(fam: Family) -> Family:
    """Register a family (ids unique)."""
    if fam.id in FAMILIES:
        raise ValueError(f"family {fam.id!r} is already registered")
    FAMILIES[fam.id] = fam
    return fam


def family_result(run, fam: Family) -> FamilyResult:
    """Return the family's result on ``run``, computed once per run."""
    return run.memo(f"family:{fam.id}", lambda: fam.compute(run))


def estimate(run, fam: Family, name: str) -> Estimate:
    """Return the family's figure for one explainer, with its crossed-bootstrap interval."""
    result = family_result(run, fam)
    if name not in result.estimates:
        result.estimates[name] = bootstrap_estimate(
            tuple(result.values[name]), fam.statistic, strata=result.strata,
            seed=run.settings.seed)
    return result.estimates[name]


def cells(run, fam: Family) -> dict:
    """Return the matrix row of a family: explainer -> figure, interval, verdict, null."""
    from pmt_core.claims.core import run_context
    from pmt_core.explain.explainers import EXPLAINERS

    result = family_result(run, fam)
    context = run_context(run)
    out = {}
    for name in result.values:
        est = estimate(run, fam, name)
        explainer = EXPLAINERS.get(name)
        null = explainer.null if explainer is not None else True
        label = explainer.label if explainer is not None else PLANTED_LABELS.get(name, name)
        out[name] = {"measured": est.value, "interval": [est.low, est.high],
                     "verdict": fam.criterion.check(est, context), "null": null,
                     "must_reject": name in fam.must_reject, "label": label}
    return out


def strongest_null(run, fam: Family) -> str | None:
    """Return the must-reject null whose figure lies furthest towards passing."""
    result = family_result(run, fam)
    finite = [n for n in fam.must_reject
              if n in result.values and math.isfinite(estimate(run, fam, n).value)]
    if not finite:
        return None
    pick = max if fam.higher_is_better else min
    return pick(finite, key=lambda n: estimate(run, fam, n).value)


def reading_bounds(fam: Family) -> list[Bound]:
    """Bounds of a family's reading claims: the criterion, the margin, the extras."""
    bounds = [fam.criterion]
    if fam.margin is not None:
        bounds.append(AtLeast("margin over the strongest null", fam.margin,
                              name="beats the nulls",
                              why="paired crossed bootstrap against the strongest "
                                  "must-reject null"))
    return bounds + list(fam.extra_bounds)


def reading_measurement(run, fam: Family, composite: str) -> Measurement:
    """Measurement of ``<family>.<composite>``: the criterion and the margin over nulls."""
    result = family_result(run, fam)
    if result.not_applicable:
        return Measurement.skip(result.not_applicable)
    if composite not in result.values:
        return Measurement.skip(f"no {composite!r} explanations in this run")
    figures = {fam.figure: estimate(run, fam, composite)}
    strongest = strongest_null(run, fam)
    if fam.margin is not None:
        if strongest is None:
            return Measurement.skip("no null explainer to compare with in this run")
        sign = 1.0 if fam.higher_is_better else -1.0
        figures["margin over the strongest null"] = paired_estimate(
            tuple(result.values[composite]), tuple(result.values[strongest]), fam.statistic,
            sign, strata=result.strata, seed=run.settings.seed)
        figures["strongest null"] = strongest
        figures["strongest null's figure"] = estimate(run, fam, strongest)
    figures.update(result.figures.get(composite, {}))
    m = Measurement(figures=figures, explainers=cells(run, fam), n=result.n)
    m.detail = result.detail
    for rows, caption in result.tables:
        m.table(rows, caption)
    for make in result.plots:
        drawn = make(composite)  # a maker may draw for some readings only
        if drawn is not None:
            m.plot(*drawn)
    return m


def power_measurement(run, fam: Family) -> Measurement:
    """Must-reject nulls that the criterion does not reject (the power claim)."""
    result = family_result(run, fam)
    if result.not_applicable:
        return Measurement.skip(result.not_applicable)
    row = cells(run, fam)
    missing = [n for n in fam.must_reject if n not in row]
    passing = [n for n in fam.must_reject if n in row and row[n]["verdict"] != NOT_HOLD]
    m = Measurement(figures={"nulls not rejected": exact(len(passing) + len(missing)),
                             "not rejected": ", ".join(passing + missing) or "none"},
                    explainers=row, n=result.n)
    from pmt_core.claims.core import run_context

    m.detail = (f"The criterion ({fam.criterion.describe(run_context(run))}) must reject "
                f"every null in "
                f"{', '.join(fam.must_reject)}; not rejected: "
                f"{', '.join(passing) or 'none'}"
                + (f"; not computed: {', '.join(missing)}" if missing else "") + ". "
                + (f"Not required: {fam.excluded}" if fam.excluded else ""))
    m.table([{"explainer": n, "figure": c["measured"], "interval": c["interval"],
              "verdict": c["verdict"], "null": c["null"], "must be rejected": c["must_reject"]}
             for n, c in row.items()], "The criterion for every explainer")
    return m


def stack(per_replicate) -> np.ndarray:
    """Stack per-replicate (n,) arrays to one (R, n) float64 array."""
    return np.stack([np.asarray(v, dtype=np.float64) for v in per_replicate])


def class_macro(values: np.ndarray, classes: np.ndarray) -> float:
    """Mean over classes of within-class means of the finite values.

    Parameters
    ----------
    values, classes : numpy.ndarray, (R, n)
        A resample keeps each column's class, so classes travel with the values.
    """
    return MacroMean()((values, classes))
