"""Claims declared once: bounds with a direction, a registry, and their evaluation.

A claim is declared in one place, beside its measurement function, in the
style of scikit-learn's estimator checks::

    @claim("relevance.localisation.{composite}", group="relevance",
           title="...", paper="...", params={"composite": PAPER_COMPOSITES},
           bounds=[AtLeast("lift over permuted rates", LOCALISATION_MIN_LIFT)])
    def localisation(ev, composite) -> Measurement: ...

The registry (:data:`CLAIMS`) expands the id template over ``params`` into one
:class:`ClaimCase` per claim id; the pytest plugin generates one test per case
(ids computed, never retyped), evaluates it with :func:`evaluate` and asserts its
bounds itself. A bound's verdict comes from the figure's interval:

* ``holds``: the whole interval lies on the right side of the bound;
* ``does not hold``: the whole interval lies on the wrong side;
* ``inconclusive``: the interval straddles the bound (more data, or more
  replicates, would be needed to decide).

A claim holds when all its bounds hold, does not hold when one does not, and is
inconclusive otherwise; a measurement may also declare the claim not applicable
(the data lack what it needs) or force it inconclusive (too few examples).

Multiplicity: the cases of one declaration (one claim per LRP reading) form a
family, and a bound's verdict is Holm-adjusted over it (pmt_core.stats.
multiplicity): with m members, the bound holds when its one-sided p-value, in
Holm's step-down order, is at most the interval's one-sided level over the
members left; a family of one is the interval rule itself.

Roles: a *gate* claim (mechanics, data integrity, planted controls) fails the
session when it does not hold; a *finding* (what the paper states) is reported
on the scoreboard whatever it says, and only a change of its verdict fails the
session (the regression gate). A profile lists the claims it is sized to decide
(:attr:`pmt_core.profiles.Profile.decides`): for those, inconclusive fails too.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pmt_core.claims.evidence import Evidence, evidence_of
from pmt_core.stats.intervals import Estimate, exact

__all__ = [
    "CLAIMS",
    "HOLDS",
    "INCONCLUSIVE",
    "NOT_APPLICABLE",
    "NOT_HOLD",
    "VERDICTS",
    "AtLeast",
    "AtMost",
    "Bound",
    "ClaimCase",
    "ClaimSpec",
    "Measurement",
    "Within",
    "claim",
    "evaluate",
    "measure",
]

GATE = "gate"
FINDING = "finding"
#: Groups whose claims are gate claims unless declared otherwise: the transform, the
#: LRP mechanics, the data's integrity and the planted controls (a test that cannot
#: accept its oracle or reject its adversary is broken).
GATE_GROUPS = ("scattering", "lrp", "data", "power")

HOLDS = "holds"
NOT_HOLD = "does not hold"
INCONCLUSIVE = "inconclusive"
NOT_APPLICABLE = "not applicable"
VERDICTS = (HOLDS, NOT_HOLD, INCONCLUSIVE, NOT_APPLICABLE)


# ------------------------------------------------------------------ bounds --
@dataclass(frozen=True)
class Bound:
    """A bound on one named figure of a claim.

    Attributes
    ----------
    figure : str
        Key of the figure in the claim's :class:`Measurement`.
    op : {"at least", "at most", "within"}
    value : float, (low, high), or callable
        The bar; a callable ``(context: dict) -> value`` for bars that depend on
        the run (the number of classes, the profile); ``context`` holds
        ``profile``, ``dataset``, ``n_classes`` and ``class_names``.
    name : str
        Short name, the key of known failures (default: the figure's name).
    why : str
        Where the bar comes from (its provenance), shown in the report.
    effect : float or None
        Smallest distance from the bar that matters (power analysis,
        pmt_core.stats.power); None: not declared.
    """

    figure: str
    op: str
    value: object
    name: str = ""
    why: str = ""
    effect: float | None = None

    def __post_init__(self):
        if self.op not in ("at least", "at most", "within"):
            raise ValueError(f"unknown bound operator {self.op!r}")
        if not self.name:
            object.__setattr__(self, "name", self.figure)

    def resolve(self, context: dict | None = None):
        """Return the bar for this run (a callable value is called with ``context``)."""
        return self.value(context or {}) if callable(self.value) else self.value

    def describe(self, context: dict | None = None) -> str:
        """Text such as ``hit rate at least 0.5``."""
        try:
            value = self.resolve(context)
        except (KeyError, TypeError, ValueError):
            value = "(depends on the run)"
        if isinstance(value, tuple):
            value = f"[{_short(value[0])}, {_short(value[1])}]"
        else:
            value = _short(value)
        return f"{self.figure} {self.op} {value}"

    def rejection_bar(self, context: dict | None = None):
        """Return the bar below which an "at least" figure does not hold.

        The bar itself, unless the measurement declares that its figure is
        attenuated (``context["attenuation"][figure]``, a factor in (0, 1]: the
        share of the exact-input figure it is expected to keep, for example with
        rates estimated from the audio): then a positive bar times that factor, so
        that the inputs' measured error alone cannot decide "does not hold".
        "Holds" keeps the bar.
        """
        bar = self.resolve(context)
        factor = ((context or {}).get("attenuation") or {}).get(self.figure, 1.0)
        if self.op != "at least" or isinstance(bar, tuple) or bar <= 0:
            return bar
        return bar * factor

    def check(self, estimate: Estimate, context: dict | None = None) -> str:
        """Verdict of ``estimate`` against this bound (see the module notes)."""
        if estimate is None or not estimate.finite:
            # a NaN figure is not evidence either way; an exact NaN cannot pass
            return NOT_HOLD if estimate is not None and estimate.method == "exact" \
                else INCONCLUSIVE
        bar = self.resolve(context)
        low, high = estimate.low, estimate.high
        if self.op == "at least":
            if low >= bar:
                return HOLDS
            return NOT_HOLD if high < self.rejection_bar(context) else INCONCLUSIVE
        if self.op == "at most":
            if high <= bar:
                return HOLDS
            return NOT_HOLD if low > bar else INCONCLUSIVE
        lo_bar, hi_bar = bar
        if lo_bar <= low and high <= hi_bar:
            return HOLDS
        if high < lo_bar or low > hi_bar:
            return NOT_HOLD
        return INCONCLUSIVE

    def to_dict(self, context: dict | None = None) -> dict:
        """JSON form: ``figure``, ``op``, ``value``, ``name``, ``why``."""
        try:
            value = self.resolve(context)
        except (KeyError, TypeError, ValueError):
            value = None
        if isinstance(value, tuple):
            value = list(value)
        return {"figure": self.figure, "op": self.op, "value": value, "name": self.name,
                "why": self.why, "effect": self.effect}


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def AtLeast(figure: str, value, name: str = "", why: str = "",  # noqa: N802
            effect: float | None = None) -> Bound:
    """``figure`` must be at least ``value``."""
    return Bound(figure, "at least", value, name, why, effect)


def AtMost(figure: str, value, name: str = "", why: str = "",  # noqa: N802
           effect: float | None = None) -> Bound:
    """``figure`` must be at most ``value``."""
    return Bound(figure, "at most", value, name, why, effect)


def Within(figure: str, low, high, name: str = "", why: str = "",  # noqa: N802
           effect: float | None = None) -> Bound:
    """``figure`` must lie in ``[low, high]``."""
    return Bound(figure, "within", (low, high), name, why, effect)


# ------------------------------------------------------------- measurement --
@dataclass
class Measurement:
    """What a measurement function returns.

    Attributes
    ----------
    figures : dict
        Named figures: :class:`Estimate` (bounded figures must be), or plain
        numbers and strings shown for context.
    detail : str
        How the figure was made, in a few sentences.
    tables : list of (rows, caption)
    plots : list of (matplotlib.figure.Figure, caption)
    explainers : dict or None
        For claims run on every explainer: name -> ``{"measured": float,
        "interval": [low, high], "verdict": str, "null": bool}``.
    n : int or None
        Examples behind the claim.
    not_applicable : str or None
        Why the claim cannot be measured on these data (a skip).
    inconclusive : str or None
        Why the claim cannot be decided although measured (too few examples).
    attenuation : dict
        Figure -> factor in (0, 1]: the share of its exact-input value the figure
        is expected to keep because an input was measured with a known error
        (rates estimated from the audio); an "at least" bound on it rejects only
        below the bar times the factor (:meth:`Bound.rejection_bar`).
    """

    figures: dict = field(default_factory=dict)
    detail: str = ""
    tables: list = field(default_factory=list)
    plots: list = field(default_factory=list)
    explainers: dict | None = None
    n: int | None = None
    not_applicable: str | None = None
    inconclusive: str | None = None
    attenuation: dict = field(default_factory=dict)

    def table(self, rows: list[dict], caption: str = "") -> None:
        """Attach a table (a list of dicts with the same keys)."""
        self.tables.append((rows, caption))

    def plot(self, fig, caption: str = "") -> None:
        """Attach a matplotlib figure."""
        self.plots.append((fig, caption))

    @classmethod
    def skip(cls, reason: str) -> Measurement:
        """Return the measurement of a claim these data cannot support."""
        return cls(not_applicable=reason)


# ---------------------------------------------------------------- registry --
@dataclass(frozen=True)
class Tolerance:
    """An explicit tolerance for one figure (overrides the spread rule).

    Parameters
    ----------
    kind : {"exact", "abs", "rel", "decade", "octave", "bar"}
        ``bar``: never compared with a baseline, held by the claim's own bar only
        (rounding-level figures whose size varies with the CPU).
    value : float
    floor : float
        Only for ``decade``: magnitudes below it count as equal to it.
    """

    kind: str
    value: float = 0.0
    floor: float = 0.0

    def __post_init__(self):
        if self.kind not in ("exact", "abs", "rel", "decade", "octave", "bar"):
            raise ValueError(f"unknown tolerance kind {self.kind!r}")

    def allows(self, old, new) -> bool:
        """Whether ``new`` is within tolerance of ``old`` (always, for ``bar``)."""
        if self.kind == "bar":
            return True
        if old is None or new is None:
            return old == new
        old, new = float(old), float(new)
        if self.kind == "exact":
            return old == new
        if self.kind == "abs":
            return abs(new - old) <= self.value
        if self.kind == "rel":
            return abs(new - old) <= self.value * abs(old)
        if self.kind == "decade":
            a, b = max(abs(old), self.floor), max(abs(new), self.floor)
            if a == 0 or b == 0:
                return a == b
            return abs(math.log10(b / a)) <= self.value
        if old <= 0 or new <= 0:
            return old == new
        return abs(math.log2(new / old)) <= self.value

    def describe(self) -> str:
        """Short text such as ``abs 0.05``."""
        if self.kind == "exact":
            return "exact"
        if self.kind == "bar":
            return "held by its bar"
        text = f"{self.kind} {self.value:g}"
        return text + (f" (floor {self.floor:g})" if self.floor else "")


@dataclass(frozen=True)
class ClaimSpec:
    """A declared claim (possibly a family over ``params``).

    Attributes
    ----------
    id : str
        Id template, e.g. ``"relevance.localisation.{composite}"``.
    title : str
        One sentence; may use the same ``{param}`` fields.
    group : str
        Report section (first component of the id).
    measure : callable
        ``measure(ev, **params) -> Measurement``, ``ev`` the
        :class:`~pmt_core.claims.evidence.Evidence` it reads.
    bounds : tuple of Bound
    paper : object
        The paper's value or words, where it has one.
    unit : str
        What the key figure counts.
    params : dict
        Parameter name -> tuple of values (the family's members).
    tolerances : dict
        Figure name (glob) -> :class:`Tolerance` for the
        regression gate, overriding the default rules.
    min_examples : int
        Fewest examples the claim may be decided on (below: inconclusive).
    role : {"gate", "finding"}
        Whether "does not hold" fails the session (module notes).
    """

    id: str
    title: str
    group: str
    measure: Callable
    bounds: tuple = ()
    paper: object = None
    unit: str = ""
    params: dict = field(default_factory=dict)
    tolerances: dict = field(default_factory=dict)
    min_examples: int = 0
    role: str = FINDING

    def cases(self) -> list[ClaimCase]:
        """One case per combination of parameter values, in declaration order."""
        names = list(self.params)
        combos = itertools.product(*(self.params[n] for n in names)) if names else [()]
        return [ClaimCase(self, dict(zip(names, values, strict=True))) for values in combos]

    @property
    def doc(self) -> str:
        """The measurement function's docstring (what the claim measures)."""
        return inspect.cleandoc(self.measure.__doc__ or "")


@dataclass(frozen=True)
class ClaimCase:
    """One claim: a spec with its parameters bound."""

    spec: ClaimSpec
    params: dict

    @property
    def id(self) -> str:
        """The claim's id (the template filled in)."""
        return self.spec.id.format(**self.params)

    @property
    def title(self) -> str:
        """The claim's title (the template filled in)."""
        return self.spec.title.format(**self.params)

    @property
    def bounds(self) -> tuple:
        """The spec's bounds."""
        return self.spec.bounds

    def __repr__(self) -> str:
        return f"ClaimCase({self.id})"


#: claim template id -> ClaimSpec, filled by :func:`claim`.
CLAIMS: dict[str, ClaimSpec] = {}


def claim(claim_id: str, *, title: str, group: str | None = None, bounds: Sequence = (),
          paper=None, unit: str = "", params: dict | None = None,
          tolerances: dict | None = None, min_examples: int = 0, role: str | None = None):
    """Register a measurement function as a claim (see the module notes).

    Raises
    ------
    ValueError
        On a duplicate id, a group that is not the id's first component, or a
        template field without a parameter.
    """
    group = group or claim_id.split(".")[0]
    role = role or (GATE if group in GATE_GROUPS else FINDING)
    if role not in (GATE, FINDING):
        raise ValueError(f"claim {claim_id!r}: role must be {GATE!r} or {FINDING!r}")
    if claim_id.split(".")[0] != group:
        raise ValueError(f"claim {claim_id!r}: group {group!r} must be its first component")
    params = {k: tuple(v) for k, v in (params or {}).items()}
    fields = {f for _, f, _, _ in __import__("string").Formatter().parse(claim_id) if f}
    if fields != set(params):
        raise ValueError(f"claim {claim_id!r}: template fields {sorted(fields)} but parameters "
                         f"{sorted(params)}")

    def register(measure: Callable) -> Callable:
        if claim_id in CLAIMS:
            raise ValueError(f"claim {claim_id!r} is already registered")
        CLAIMS[claim_id] = ClaimSpec(claim_id, title, group, measure, tuple(bounds), paper, unit,
                                     params, dict(tolerances or {}), min_examples, role)
        return measure

    return register


# -------------------------------------------------------------- evaluation --
@dataclass
class Evaluation:
    """A claim case evaluated on a run.

    Attributes
    ----------
    case : ClaimCase
    measurement : Measurement
    verdict : str
        One of :data:`VERDICTS`.
    bound_verdicts : dict
        Bound name -> verdict.
    context : dict
    reason : str
        Why the verdict is what it is (failing bounds, the inconclusive reason).
    multiplicity : dict
        ``method`` ("Holm" or "none"), ``family`` (the declaration's id) and
        ``family_size`` (members measured), and per bound its adjusted p-values.
    power : dict or None
        The key bound's power analysis (:func:`pmt_core.stats.power.sizes_needed`),
        None when no bound declares an effect or the figure has no variance model.
    """

    case: ClaimCase
    measurement: Measurement
    verdict: str
    bound_verdicts: dict
    context: dict
    reason: str = ""
    multiplicity: dict = field(default_factory=dict)
    power: dict | None = None

    @property
    def failing_bounds(self) -> tuple[str, ...]:
        """Names of the bounds that do not hold."""
        return tuple(k for k, v in self.bound_verdicts.items() if v == NOT_HOLD)

    def key_estimate(self) -> Estimate | None:
        """Return the estimate of the first bound's figure (the claim's key figure)."""
        if not self.case.bounds:
            return None
        value = self.measurement.figures.get(self.case.bounds[0].figure)
        return value if isinstance(value, Estimate) else None


def _as_estimate(value) -> Estimate | None:
    if isinstance(value, Estimate):
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return exact(value)
    return None


def measure(case: ClaimCase, ev: Evidence) -> Measurement:
    """Return the case's measurement on ``ev`` (or a run's evidence), computed once."""
    ev = evidence_of(ev)
    return ev.memo(f"measurement:{case.id}", lambda: case.spec.measure(ev, **case.params))


def bound_p_values(estimate: Estimate | None, bound: Bound, context: dict) -> tuple[float, float]:
    """One-sided p-values of a bound: (it fails, it holds) are the null hypotheses.

    ``p_pass`` is small when the figure is shown on the bound's side, ``p_fail``
    when it is shown on the other; a "within" bound is two one-sided tests.
    """
    if estimate is None or not estimate.finite:
        return math.nan, math.nan
    bar = bound.resolve(context)
    if bound.op == "within":
        lo, hi = bar
        p_pass = max(estimate.p_value(lo, "at least"), estimate.p_value(hi, "at most"))
        p_fail = min(1.0, 2 * min(estimate.p_value(lo, "at most"),
                                  estimate.p_value(hi, "at least")))
        return p_pass, p_fail
    other = "at most" if bound.op == "at least" else "at least"
    return estimate.p_value(bar, bound.op), estimate.p_value(bound.rejection_bar(context), other)


def _family_verdicts(case: ClaimCase, ev: Evidence, measurement: Measurement, context: dict):
    """Holm-adjusted verdicts of ``case``'s bounds over its declaration's cases."""
    from pmt_core.stats.multiplicity import holm

    siblings = case.spec.cases()
    others = {c.id: (measurement if c.id == case.id else measure(c, ev)) for c in siblings}
    verdicts, adjusted = {}, {}
    members = [i for i, m in others.items() if m.not_applicable is None]
    contexts = {i: with_attenuation(context, others[i]) for i in members}
    for bound in case.bounds:
        estimates = {i: _as_estimate(others[i].figures.get(bound.figure)) for i in members}
        p = {i: bound_p_values(e, bound, contexts[i]) for i, e in estimates.items()}
        ids = list(p)
        adj_pass = dict(zip(ids, holm([p[i][0] for i in ids]), strict=True))
        adj_fail = dict(zip(ids, holm([p[i][1] for i in ids]), strict=True))
        own = estimates.get(case.id)
        if own is None or not math.isfinite(adj_pass.get(case.id, math.nan)):
            verdicts[bound.name] = bound.check(own, context)
        else:
            level = (1 - own.confidence) / 2
            verdicts[bound.name] = (HOLDS if adj_pass[case.id] <= level else
                                    NOT_HOLD if adj_fail[case.id] <= level else INCONCLUSIVE)
        adjusted[bound.name] = {"p_holds_adjusted": adj_pass.get(case.id),
                                "p_fails_adjusted": adj_fail.get(case.id)}
    return verdicts, {"method": "Holm", "family": case.spec.id, "family_size": len(members),
                      "bounds": adjusted}


def _power(case: ClaimCase, measurement: Measurement, context: dict, family_size: int):
    from pmt_core.stats.power import sizes_needed

    for bound in case.bounds:
        est = _as_estimate(measurement.figures.get(bound.figure))
        if bound.effect is None or est is None or len(est.components) != 3 or not est.n:
            continue
        out = sizes_needed(est.components, bound.effect, est.n,
                           max(len(est.replicates), 1), family_size=family_size)
        return {"bound": bound.name, **out, "n": est.n,
                "replicates": max(len(est.replicates), 1)}
    return None


def evaluate(case: ClaimCase, ev, context: dict | None = None) -> Evaluation:
    """Measure ``case`` on ``ev`` and check its bounds (Holm over its family).

    Parameters
    ----------
    case : ClaimCase
    ev : Evidence or pmt_core.run.Run
        What the claim measures from (a run stands for its :func:`evidence_of`).
    context : dict, optional
        What bars may depend on (``profile``, ``dataset``, ``n_classes``,
        ``class_names``); default taken from ``ev``.

    Returns
    -------
    Evaluation
    """
    ev = evidence_of(ev)
    measurement = measure(case, ev)
    if context is None:
        context = run_context(ev) if measurement.not_applicable is None else {}
    context = with_attenuation(context, measurement)
    if measurement.not_applicable is not None:
        return Evaluation(case, measurement, NOT_APPLICABLE, {}, context,
                          measurement.not_applicable)
    for bound in case.bounds:
        if bound.figure not in measurement.figures:
            raise KeyError(f"claim {case.id}: bound on {bound.figure!r} but the measurement "
                           f"has figures {sorted(measurement.figures)}")
    if len(case.spec.cases()) > 1:
        verdicts, multiplicity = _family_verdicts(case, ev, measurement, context)
    else:
        verdicts = {b.name: b.check(_as_estimate(measurement.figures[b.figure]), context)
                    for b in case.bounds}
        multiplicity = {"method": "none", "family": case.spec.id, "family_size": 1}
    failing = [name for name, v in verdicts.items() if v == NOT_HOLD]
    open_ = [name for name, v in verdicts.items() if v == INCONCLUSIVE]
    too_few = (case.spec.min_examples and measurement.n is not None
               and measurement.n < case.spec.min_examples)
    if too_few and not measurement.inconclusive:
        measurement.inconclusive = (f"{measurement.n} examples, fewer than the "
                                    f"{case.spec.min_examples} this claim needs")
    if failing:
        verdict, reason = NOT_HOLD, "does not hold: " + ", ".join(
            _bound_text(case, measurement, n, context) for n in failing)
    elif measurement.inconclusive:
        verdict, reason = INCONCLUSIVE, f"inconclusive: {measurement.inconclusive}"
    elif open_:
        verdict, reason = INCONCLUSIVE, "inconclusive at this size: " + ", ".join(
            _bound_text(case, measurement, n, context) for n in open_)
    else:
        verdict, reason = HOLDS, "holds: " + ", ".join(
            _bound_text(case, measurement, b.name, context) for b in case.bounds)
    if multiplicity["family_size"] > 1:
        reason += f" (Holm over {multiplicity['family_size']} members of {case.spec.id})"
    return Evaluation(case, measurement, verdict, verdicts, context, reason, multiplicity,
                      _power(case, measurement, context, multiplicity["family_size"]))


def with_attenuation(context: dict, measurement: Measurement) -> dict:
    """``context`` with the measurement's attenuated figures (:meth:`Bound.rejection_bar`)."""
    if not measurement.attenuation:
        return context
    return {**context, "attenuation": dict(measurement.attenuation)}


def _bound_text(case: ClaimCase, m: Measurement, name: str, context: dict) -> str:
    bound = next(b for b in case.bounds if b.name == name)
    est = _as_estimate(m.figures.get(bound.figure))
    if est is None:
        return f"{bound.describe(context)} (no figure)"
    interval = "" if est.method == "exact" else f" [{_fmt(est.low)}, {_fmt(est.high)}]"
    bar = bound.resolve(context)
    rejection = bound.rejection_bar(context)
    below = "" if rejection == bar else f" (does not hold below {_fmt(rejection)}: " \
                                        "attenuated by the inputs' measured error)"
    return f"{bound.figure} = {_fmt(est.value)}{interval}, bar: {bound.op} " \
           f"{_fmt_bar(bar)}{below}"


def _fmt(v) -> str:
    return "nan" if v is None or not math.isfinite(v) else f"{v:.4g}"


def _fmt_bar(v) -> str:
    if isinstance(v, tuple):
        return f"[{_fmt(v[0])}, {_fmt(v[1])}]"
    return _fmt(float(v))


def run_context(ev: Evidence) -> dict:
    """Return what bars may depend on: profile, data kind, class names and count."""
    data = ev.data
    # the paths only where the features are at hand: a context computes nothing
    paths = ev.features.result.paths if ev.has("features") else None
    return {"profile": ev.profile,
            "dataset": "synthetic" if ev.dataset == "synthetic" else data.source,
            "class_names": tuple(data.class_names), "n_classes": len(data.class_names),
            "s1_path_share": None if paths is None else float(paths.first_order.mean())}
