"""Claim families run on every explainer: the shared machinery of the matrix.

A family (``relevance.localisation``, ``sanity.deletion``, ...) computes one
figure per explainer from per-example values of every replicate
(:class:`FamilyResult`) and checks it against one bound, its *criterion*.
Three kinds of claims read a family:

* the per-reading claims (``relevance.localisation.<composite>``): the LRP
  reading must meet the criterion; where a family declares a margin, it must
  also beat *every* null it must reject by that margin (an intersection-union
  of paired crossed t tests, Berger 1982: no null is picked by its point
  estimate first). The nulls that pass a physics criterion legitimately (the
  input and its energy carry the modulation) are shown beside the reading, not
  required to fail: whether the *model* uses the rate is decided by
  interventions, not by a harder bar;
* the family's power claim (``power.relevance.localisation``): planted controls
  built from the ground truth the criterion is about. Every *oracle* (a map that
  has the property by construction, such as a peak at each example's true rate)
  must meet the criterion, and every *adversary* (a peak at the distractor's rate,
  at another same-class example's rate, at f0 / 8) must fail it (MetaQuantus'
  idea of testing the test, Hedstroem et al. 2023). A control left inconclusive
  means the test cannot decide at this size;
* the report's verdict matrix: every explainer's figure and verdict.

Values are tuples of (replicates, examples) arrays (NaN: not scored), so that a
statistic may combine several per-example quantities (a rank correlation of two
of them, a macro average over a class array); intervals come from
:func:`pmt_core.stats.intervals.crossed_t`, which resamples all of a tuple's
arrays alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pmt_core.claims.core import AtLeast, Bound, Measurement
from pmt_core.stats.intervals import (
    Estimate,
    MacroMean,
    crossed_t,
    minimum,
    paired_t,
)

__all__ = [
    "ALL_NULLS",
    "FAMILIES",
    "INPUT_NULLS",
    "MODEL_FREE_NULLS",
    "Nulls",
    "Family",
    "FamilyResult",
    "cells",
    "class_macro",
    "family",
    "family_result",
    "power_bounds",
    "power_measurement",
    "reading_bounds",
    "reading_measurement",
    "rejected_nulls",
    "stack",
]

@dataclass(frozen=True)
class Nulls:
    """The registered null explainers that ignore one of ``ignoring`` (every null if empty).

    A family's ``must_reject``: resolved when the family is evaluated, from each
    null's :attr:`~pmt_core.explain.explainers.Explainer.ignores`, so one registered
    from a plugin is held to the bars of the built-in nulls that ignore what it does.
    """

    ignoring: tuple = ()

    def names(self) -> tuple[str, ...]:
        """Return the nulls' names, in registration order."""
        from pmt_core.explain.explainers import null_explainer_names

        return null_explainer_names(*self.ignoring)


#: The null explainers a faithful-explanation claim must reject unless its family
#: says otherwise: every one (the guide's list: class-constant, input alone, energy,
#: randomised model; and i.i.d. random maps).
ALL_NULLS = Nulls()
#: The nulls that ignore the example or the model: whatever is done to the model
#: leaves them as they are.
MODEL_FREE_NULLS = Nulls(("example", "model"))
#: The nulls computed from the input alone.
INPUT_NULLS = Nulls(("model",))


def rejected_nulls(fam) -> tuple[str, ...]:
    """Names of the explainers ``fam`` must reject (its ``must_reject`` resolved)."""
    return fam.must_reject.names() if isinstance(fam.must_reject, Nulls) else fam.must_reject


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
    attenuation : dict
        Figure -> the share of its exact-input value it keeps
        (:attr:`pmt_core.claims.core.Measurement.attenuation`): set where the rates
        are estimated from the audio.
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
    attenuation: dict = field(default_factory=dict)


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
        ``ev -> FamilyResult`` (memoised per evidence).
    must_reject : Nulls or tuple of str
        Null explainers that must fail the criterion (:func:`rejected_nulls`).
    excluded : str
        Why the other nulls are not required to fail it.
    margin : float or None
        Bar of "reading minus each must-reject null" (None: no such bound).
    extra_bounds : tuple of Bound
        Further bounds of the reading claims, on figures the family adds.
    oracles, adversaries : tuple of str
        Planted maps (:data:`PLANTED_LABELS`) that must pass / fail the criterion
        (the family's power claim).
    beside : tuple of str
        Nulls whose figure is reported with each reading (what the input alone
        gives), without a bound.
    """

    id: str
    criterion: Bound
    statistic: Callable
    compute: Callable
    must_reject: Nulls | tuple = ALL_NULLS
    excluded: str = ""
    margin: float | None = None
    extra_bounds: tuple = ()
    oracles: tuple = ()
    adversaries: tuple = ()
    beside: tuple = ()

    @property
    def figure(self) -> str:
        """Name of the family's figure."""
        return self.criterion.figure

    @property
    def higher_is_better(self) -> bool:
        """Whether the criterion is a lower bound."""
        return self.criterion.op == "at least"


#: Labels of the planted maps the relevance families add to the explainers (the
#: power claims' controls): most peak, in every example, at one S2 modulation.
PLANTED_LABELS = {"oracle_rate": "planted oracle: peak at the example's true rate",
                  "adversary_distractor": "planted adversary: peak at the distractor's rate",
                  "adversary_permuted": "planted adversary: peak at another same-class "
                                        "example's rate",
                  "adversary_pitch": "planted adversary: peak at f0 / 8",
                  "oracle_use": "planted oracle: its own model's occlusion drops",
                  "adversary_other_model": "planted adversary: another replicate's drops",
                  "oracle_mechanism": "planted oracle: A at the rate, B at the tag",
                  "adversary_same_map": "planted adversary: one map for A and B",
                  "adversary_swapped": "planted adversary: A at the tag, B at the rate"}

#: family id -> Family, filled by :func:`family`.
FAMILIES: dict[str, Family] = {}


def family(fam: Family) -> Family:
    """Register a family (ids unique)."""
    if fam.id in FAMILIES:
        raise ValueError(f"family {fam.id!r} is already registered")
    FAMILIES[fam.id] = fam
    return fam


def family_result(ev, fam: Family) -> FamilyResult:
    """Return the family's result on ``ev``, computed once per evidence."""
    return ev.memo(f"family:{fam.id}", lambda: fam.compute(ev))


def estimate(ev, fam: Family, name: str) -> Estimate:
    """Return the family's figure for one explainer, with its crossed t interval."""
    result = family_result(ev, fam)
    if name not in result.estimates:
        result.estimates[name] = crossed_t(
            tuple(result.values[name]), fam.statistic, strata=result.strata,
            seed=ev.seed)
    return result.estimates[name]


def cells(ev, fam: Family) -> dict:
    """Return the matrix row of a family: explainer -> figure, interval, verdict, null."""
    from pmt_core.claims.core import run_context
    from pmt_core.explain.explainers import EXPLAINERS

    result = family_result(ev, fam)
    context = {**run_context(ev), "attenuation": result.attenuation}
    out = {}
    for name in result.values:
        est = estimate(ev, fam, name)
        explainer = EXPLAINERS.get(name)
        null = explainer.null if explainer is not None else True
        label = explainer.label if explainer is not None else PLANTED_LABELS.get(name, name)
        out[name] = {"measured": est.value, "interval": [est.low, est.high],
                     "verdict": fam.criterion.check(est, context), "null": null,
                     "must_reject": name in rejected_nulls(fam), "label": label}
    return out


def reading_bounds(fam: Family) -> list[Bound]:
    """Bounds of a family's reading claims: the criterion, the margin, the extras."""
    bounds = [fam.criterion]
    if fam.margin is not None:
        bounds.append(AtLeast("margin over every null", fam.margin,
                              name="beats the nulls",
                              why="paired crossed t against each must-reject null; the "
                                  "smallest margin (intersection-union)"))
    return bounds + list(fam.extra_bounds)


def reading_measurement(ev, fam: Family, composite: str) -> Measurement:
    """Measurement of ``<family>.<composite>``: the criterion (and margins over nulls)."""
    result = family_result(ev, fam)
    if result.not_applicable:
        return Measurement.skip(result.not_applicable)
    if composite not in result.values:
        return Measurement.skip(f"no {composite!r} explanations in this run")
    figures = {fam.figure: estimate(ev, fam, composite)}
    if fam.margin is not None:
        nulls = [n for n in rejected_nulls(fam) if n in result.values]
        if not nulls:
            return Measurement.skip("no null explainer to compare with in this run")
        sign = 1.0 if fam.higher_is_better else -1.0
        margins = {n: paired_t(tuple(result.values[composite]), tuple(result.values[n]),
                               fam.statistic, sign, strata=result.strata,
                               seed=ev.seed) for n in nulls}
        closest, figures["margin over every null"] = minimum(margins)
        figures["closest null"] = closest
    for null in fam.beside:
        if null in result.values:
            figures[f"{null} (beside)"] = estimate(ev, fam, null)
    figures.update(result.figures.get(composite, {}))
    m = Measurement(figures=figures, explainers=cells(ev, fam), n=result.n,
                    attenuation=dict(result.attenuation))
    m.detail = result.detail
    for rows, caption in result.tables:
        m.table(rows, caption)
    for make in result.plots:
        drawn = make(composite)  # a maker may draw for some readings only
        if drawn is not None:
            m.plot(*drawn)
    return m


def reversed_bound(bound: Bound, name: str) -> Bound:
    """Return the bound an adversary must meet: the criterion's bar, from the other side."""
    op = {"at least": "at most", "at most": "at least"}[bound.op]
    return Bound(f"{name}: {bound.figure}", op, bound.value, f"rejects {name}",
                 f"a map that lacks the property must fail '{bound.name}'")


def power_bounds(fam: Family) -> list[Bound]:
    """Bounds of a family's power claim: oracles meet every bound, adversaries fail one.

    An oracle must meet the criterion and the family's further bounds (both sides of
    the pitch TOST, the physical order); an adversary must fail the criterion.
    """
    return ([Bound(f"{o}: {b.figure}", b.op, b.value, f"accepts {o}" + (
                "" if b is fam.criterion else f" ({b.name})"),
                   f"a map with the property by construction must meet '{b.name}'")
             for o in fam.oracles for b in (fam.criterion, *fam.extra_bounds)]
            + [reversed_bound(fam.criterion, a) for a in fam.adversaries])


def power_measurement(ev, fam: Family) -> Measurement:
    """Measure the planted controls on the family's criterion (the power claim)."""
    result = family_result(ev, fam)
    if result.not_applicable:
        return Measurement.skip(result.not_applicable)
    missing = [n for n in fam.oracles + fam.adversaries if n not in result.values]
    if missing:
        return Measurement.skip(f"planted controls not computed on these data: {missing}")
    figures = {f"{n}: {fam.figure}": estimate(ev, fam, n)
               for n in fam.oracles + fam.adversaries}
    for n in fam.oracles:
        for b in fam.extra_bounds:
            figures[f"{n}: {b.figure}"] = result.figures.get(n, {}).get(b.figure)
    row = cells(ev, fam)
    m = Measurement(figures=figures, explainers=row, n=result.n)
    from pmt_core.claims.core import run_context

    m.detail = (f"Planted controls on the criterion ({fam.criterion.describe(run_context(ev))})"
                f": must pass {', '.join(PLANTED_LABELS[o] for o in fam.oracles)}; must fail "
                f"{'; '.join(PLANTED_LABELS[a] for a in fam.adversaries)}. A control left "
                "inconclusive: the criterion cannot decide at this size.")
    m.table([{"explainer": n, "figure": c["measured"], "interval": c["interval"],
              "verdict": c["verdict"], "null": c["null"]}
             for n, c in row.items()], "The criterion for every explainer and control")
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
