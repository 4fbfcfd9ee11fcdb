"""Regression against a stored run: what moved beyond what rounding moves.

A baseline (``pytest validation --update-baseline FILE``, or
``python -m pmt_core baseline update REPORT FILE``) stores, per claim, its verdict
and every numeric figure with its interval and its spread over replicates::

    {"format": "pmt-baseline", "format_version": 2, "created_utc": ...,
     "context": {"profile", "seed", "dataset", "n_examples", "replicates",
                 "perturb", "device", "git_commit", "git_dirty", "cpu", "isa", ...},
     "claims": {"<id>": {"verdict": "holds", "status": "passed",
                         "figures": {"<name>": {"value", "low", "high",
                                                "spread", "replicates"}}}}}

What is compared (:func:`compare`), and with which yardstick:

* the run context: profile, seed, data set, its size and the number of
  replicates must agree (``CONTEXT_MUST_MATCH``); the machine, commit and
  arithmetic are only shown, since a baseline written on one machine is meant to
  be checked on others;
* the claims: one present on one side only is drift (a claim this run did not set
  out to evaluate is "not run"), and so is every verdict change, holds <->
  inconclusive included, whatever the figures did, of a claim the profile is
  sized to decide (``decided_by_profile``), and between holds and does not hold
  of any claim. A move to or from inconclusive of a claim the profile is not
  sized to decide is listed, not drift (:func:`verdict_change_is_drift`): at that
  size another draw of training moves it by chance (``--perturb ulp`` on the ci
  run: accuracy.s1.per_class, holds -> inconclusive);
* each numeric figure of a claim, by its tolerance (:func:`allowed_shift`). Two
  runs of the same code and seed on different machines (or with perturbed
  arithmetic) differ by rounding, which training amplifies: every replicate is
  then another draw of the same training, so a figure pooled over R replicates
  moves by about its replicate spread s over sqrt(R/2). The gate allows
  Student's t times that at a false-alarm rate of ``FIGURE_FALSE_ALARM`` per
  figure (the spread is itself estimated); a figure that does not depend on training (no spread)
  only what rounding can do to it (relative ``DETERMINISTIC_REL``); p-values, and
  rounding-level figures that no bar holds, ``DECADES`` on a log scale. A claim
  may declare its own tolerance per figure (``ClaimSpec.tolerances``), which
  replaces these rules.

A figure that carries a bound (in the run's record ``bounds``) of a claim the
profile is sized to decide may move at most
the baseline value's distance to its bar, whatever its tolerance allows (but
never less than the rounding floor, ``DETERMINISTIC_REL`` of its value and
1e-12): a spread can exceed that distance, and the figure could then reach or
cross its bar with no drift (an inconclusive verdict stays inconclusive). The
drift's rule text names the cap wherever it set the allowed shift. Not for the
other claims: the profile is not sized to decide them because their spread
exceeds their distance to the bar, so the cap would make the gate a coin toss
(``--perturb ulp``: 10 drifts from the cap alone, pitch slopes and kurtosis).

Where the arithmetic is the same (``pmt_core.infra.arithmetic`` pins the
libraries' code paths on every AVX2 x86-64 CPU, Intel and AMD alike), the same
code and seed give the same bits and none of this tolerance is used; it is there
for runs whose arithmetic differs (other library builds, GPUs, ``--perturb``).

Held by its bar only, never compared with the baseline: a figure with a bound on
a fixed numeric bar that is below ``ROUNDING_LEVEL`` on both sides (reference
errors ~3e-14, conservation residuals ~3e-16: their size is the CPU's rounding,
3.4e-14 on one CPU and 3.6e-12 on another, so decades apart without anything
having changed), and a figure whose claim declares ``Tolerance("bar")`` (the
canonizer's float32 logit shift). Their claim's own bound already fails them
past the bar, and that verdict change is drift; :attr:`Comparison.held_by_bar`
lists them.
"""

from __future__ import annotations

import datetime
import fnmatch
import functools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pmt_core.claims.core import Tolerance
from pmt_core.infra.atomic import write_text_atomic

FORMAT = "pmt-baseline"
FORMAT_VERSION = 2

#: Claims that compare the run with the baseline are never stored in it.
SELF_GROUP = "regression"

#: Context fields that must agree for figures to be comparable; the others are
#: shown (a baseline written on one machine is meant to be checked on others).
CONTEXT_MUST_MATCH = ("profile", "seed", "dataset", "n_examples", "replicates")

#: False-alarm rate per figure of the spread rule: that of 4 standard errors of
#: normal noise with a known SE (6.3e-5), so ~200 figures drift by chance about
#: once in 80 runs that are another draw of training.
FIGURE_FALSE_ALARM = math.erfc(4 / math.sqrt(2))
#: The SE is estimated from the replicates (R - 1 degrees of freedom per side), so
#: the multiplier is Student's t at ``FIGURE_FALSE_ALARM`` with Welch-Satterthwaite
#: degrees of freedom: 4.0 would be right only for many replicates. With 5
#: replicates a side (df ~ 8) 4 SE false-alarms 0.4 % per figure, ~55 % per run
#: of 200 figures; t gives 7.6 SE. Two replicates (df ~ 1-2) allow far more:
#: their spread says little about training noise.
Z_SPREAD = 4.0
#: Relative shift allowed for a figure that does not depend on training (data,
#: transform, theory tones): float rounding across builds moves them by ~1e-6.
DETERMINISTIC_REL = 1e-3
#: Figures below this are rounding-level (residuals, reference errors): their size
#: is the CPU's rounding, so one under a bar is held by the bar only, and one under
#: no bar is compared in decades.
ROUNDING_LEVEL = 1e-6
#: Decades a p-value or an unbarred rounding-level figure may move.
DECADES = 1.0
#: Absolute floor of every allowed shift: below it, float64 rounding of the
#: figure's computation, not a change.
ABS_FLOOR = 1e-12


class BaselineError(ValueError):
    """A baseline file is missing, unreadable or not a baseline."""


def _is_p_value(name: str) -> bool:
    n = name.lower()
    return n == "p" or n.startswith("p ") or n.endswith(" p") or " p " in n or "p-value" in n


def _spread_multiplier(spreads, counts) -> tuple[float, float]:
    """SE of the difference of two pooled means and its t multiplier (see above)."""
    from scipy import stats

    parts = [s**2 / n for s, n in zip(spreads, counts, strict=True)]
    se = math.sqrt(sum(parts))
    if se == 0:
        return 0.0, Z_SPREAD
    df = sum(parts) ** 2 / sum(v**2 / (n - 1) for v, n in zip(parts, counts, strict=True))
    return se, float(stats.t.isf(FIGURE_FALSE_ALARM / 2, df))


def _bar_cap(value: float, bar_distance: float | None) -> float | None:
    """Largest shift a bounded figure may make: its distance to the bar, floored.

    The floor keeps a figure that sits on its bar (an exact count "within [3, 3]")
    comparable at all: rounding may still move it that much.
    """
    if bar_distance is None:
        return None
    return max(bar_distance, DETERMINISTIC_REL * abs(value), ABS_FLOOR)


def _capped(ok: bool, rule: str, a: float, b: float, cap: float | None) -> tuple[bool, str]:
    """Apply the distance-to-bar cap to a tolerance that is not a plain shift."""
    if cap is None or abs(b - a) <= cap:
        return ok, rule
    # Only say so where the cap refused a move the tolerance allowed: the
    # tolerance's own words explain the rest.
    return False, rule + (f", capped at {cap:.3g} (the baseline's distance to its bar)"
                          if ok else "")


def allowed_shift(name: str, old: dict, new: dict,
                  bar_distance: float | None = None) -> tuple[bool, str]:
    """Whether a figure's move from ``old`` to ``new`` is within rounding.

    Parameters
    ----------
    name : str
        The figure's name (p-values are recognised by it).
    old, new : dict
        ``{"value", "spread", "replicates"}`` (baseline entries).
    bar_distance : float, optional
        The baseline value's distance to the bar of the claim's bound on this
        figure; the allowed shift is at most that (module notes). None: no bound.

    Returns
    -------
    ok : bool
    rule : str
        The yardstick applied, in words.
    """
    a, b = old.get("value"), new.get("value")
    if a is None or b is None:
        return a == b, "defined on both sides"
    a, b = float(a), float(b)
    cap = _bar_cap(a, bar_distance)
    if _is_p_value(name) or max(abs(a), abs(b)) < ROUNDING_LEVEL:
        tol = Tolerance("decade", DECADES, floor=1e-300 if _is_p_value(name) else 1e-16)
        return _capped(tol.allows(a, b), tol.describe(), a, b, cap)
    spreads = [x.get("spread") for x in (old, new)]
    counts = [max(int(x.get("replicates") or 1), 1) for x in (old, new)]
    if all(s is not None for s in spreads) and min(counts) >= 2:
        se, multiplier = _spread_multiplier(spreads, counts)
        limit = max(multiplier * se, DETERMINISTIC_REL * max(abs(a), abs(b)), ABS_FLOOR)
        rule = f"{multiplier:.3g} x replicate SE ({limit:.3g})"
    else:
        limit = max(DETERMINISTIC_REL * max(abs(a), abs(b)), ABS_FLOOR)
        rule = f"rel {DETERMINISTIC_REL:g} (no replicate spread)"
    if cap is not None and cap < limit:
        return abs(b - a) <= cap, (f"{cap:.3g}, the baseline's distance to its bar "
                                   f"(tighter than {rule})")
    return abs(b - a) <= limit, rule


def _number(value) -> float | None:
    """``value`` as a finite float, or None (a bool, a string, NaN, a missing bar)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _bars(bounds: list, name: str) -> list[float]:
    """Return the fixed numeric bars of the bounds on ``name`` (both ends of a within)."""
    bars = []
    for bound in bounds:
        if not isinstance(bound, dict) or bound.get("figure") != name:
            continue
        value = bound.get("value")
        ends = value if isinstance(value, list | tuple) else [value]
        bars += [x for x in map(_number, ends) if x is not None]
    return bars


def _bar_distance(value, bars: list[float]) -> float | None:
    """Distance from ``value`` to the nearest bar; None without a bar or a value."""
    value = _number(value)
    if value is None or not bars:
        return None
    return min(abs(value - bar) for bar in bars)


def _held_by_bar(explicit: Tolerance | None, bars: list[float], old: dict, new: dict) -> bool:
    """Whether a figure is left to its claim's bar, not compared (module notes)."""
    if explicit is not None and explicit.kind == "bar":
        return True
    values = [_number(x.get("value")) for x in (old, new)]
    return bool(bars) and all(v is not None and abs(v) < ROUNDING_LEVEL for v in values)


def _figures(record: dict) -> dict:
    """Numeric figures of a claim record as baseline entries."""
    out = {}
    for name, value in (record.get("figures") or {}).items():
        if isinstance(value, dict) and "value" in value:
            interval = value.get("interval") or [None, None]
            reps = [v for v in value.get("replicates") or [] if v is not None]
            out[name] = {"value": value["value"], "low": interval[0], "high": interval[1],
                         "spread": value.get("spread"), "replicates": len(reps) or None}
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float):
            out[name] = {"value": value, "low": None, "high": None, "spread": None,
                         "replicates": None}
    return out


def run_context(report: dict) -> dict:
    """Return what a baseline records of a run (and must share with it, see above)."""
    dataset = report.get("dataset") or {}
    settings = report.get("settings") or {}
    prov = report.get("provenance") or {}
    return {"profile": report.get("profile"), "seed": settings.get("seed"),
            "dataset": dataset.get("source"), "n_examples": dataset.get("n_examples"),
            "replicates": report.get("replicates"), "perturb": settings.get("perturb"),
            "device": report.get("device"), "git_commit": prov.get("git_commit"),
            "git_dirty": prov.get("git_dirty"), "cpu": prov.get("cpu"),
            "isa": prov.get("isa"), "torch_threads": prov.get("torch_threads"),
            "arithmetic": prov.get("arithmetic")}


def make_baseline(report: dict) -> dict:
    """Build a baseline dict from a run's report (the ``validation.json`` contract)."""
    claims = {}
    for record in report["claims"]:
        if record["id"].split(".")[0] == SELF_GROUP:
            continue
        claims[record["id"]] = {"verdict": record.get("verdict"),
                                "status": record.get("status"), "test": record.get("test"),
                                "figures": _figures(record)}
    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "context": run_context(report), "claims": claims}


def is_baseline_file(path: str | Path) -> bool:
    """Whether ``path`` holds a baseline this module wrote (the only file one may replace)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def write_baseline(report: dict, path: str | Path) -> Path:
    """Write the baseline of ``report`` to ``path`` atomically; return the path."""
    return write_text_atomic(path, json.dumps(make_baseline(report), indent=1, allow_nan=False))


def load_baseline(path: str | Path) -> dict:
    """Read a baseline, or make one from a ``validation.json``.

    Raises
    ------
    BaselineError
        If the file is missing, is not JSON, or is neither a baseline nor a report.
    """
    path = Path(path)
    if not path.is_file():
        raise BaselineError(f"no baseline file at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("claims"), list):
        try:
            return make_baseline(data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise BaselineError(f"{path} is not a readable validation report: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BaselineError(f"{path} is neither a {FORMAT} file nor a validation report")
    if data.get("format_version") != FORMAT_VERSION:
        raise BaselineError(f"{path} has baseline format version {data.get('format_version')}, "
                            f"expected {FORMAT_VERSION}: write a new one with "
                            "--update-baseline")
    if not isinstance(data.get("claims"), dict):
        raise BaselineError(f"{path} has no 'claims' mapping")
    return data


#: The verdicts that decide a claim either way; "inconclusive" decides nothing.
DECISIVE = ("holds", "does not hold")


def verdict_change_is_drift(old: str | None, new: str | None, decided: bool) -> bool:
    """Whether a claim's verdict moving from ``old`` to ``new`` trips the gate.

    Every change does, except one to or from "inconclusive" of a claim the
    profile is not sized to decide (``decided`` False): at that size its interval
    straddles the bar's neighbourhood, and another draw of training (another CPU's
    rounding, ``--perturb ulp``) moves it across by chance. Such a change is
    listed, not counted. Between "holds" and "does not hold" both intervals
    exclude the bar, on opposite sides: chance alone does that about once in a
    thousand comparisons, so it is drift whatever the profile.
    """
    if old == new:
        return False
    if decided:
        return True
    return not ({old, new} <= {*DECISIVE, "inconclusive"} and "inconclusive" in (old, new))


@dataclass(frozen=True)
class Drift:
    """One thing that moved between the baseline and the run."""

    claim: str
    kind: str
    key: str = ""
    baseline: object = None
    current: object = None
    tolerance: str = ""

    def describe(self) -> str:
        """One line for the terminal and the report."""
        where = self.claim + (f" [{self.key}]" if self.key else "")
        if self.kind in ("figure", "verdict", "context"):
            text = f"{where}: {self.kind} {_short(self.baseline)} -> {_short(self.current)}"
            return text + (f" (allowed: {self.tolerance})" if self.tolerance else "")
        return f"{where}: {self.kind}"


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "None" if value is None else str(value)


@dataclass
class Comparison:
    """Result of :func:`compare`."""

    drifts: list = field(default_factory=list)
    compared: int = 0
    figures_compared: int = 0
    not_run: list = field(default_factory=list)
    baseline_context: dict = field(default_factory=dict)
    #: Kept for readers of the report (the pytest plugin); verdict changes used to
    #: land here when no figure moved, but every verdict change is drift now.
    notes: list = field(default_factory=list)
    #: ``{"claim", "baseline", "current", "drift", "decided_by_profile"}`` per claim
    #: whose verdict changed; those with ``drift`` are also ``verdict`` drifts
    #: (:func:`verdict_change_is_drift`).
    verdict_changes: list = field(default_factory=list)
    #: ``"<claim> [<figure>]"`` of the figures held by their bar only, not compared.
    held_by_bar: list = field(default_factory=list)

    @property
    def drifted_claims(self) -> list[str]:
        """Ids of the claims with at least one drift, in order."""
        return list(dict.fromkeys(d.claim for d in self.drifts))

    def summary(self) -> str:
        """One line: how much moved."""
        gating = sum(v.get("drift", True) for v in self.verdict_changes)
        listed = len(self.verdict_changes) - gating
        aside = (f" ({listed} verdict change(s) to or from inconclusive of claims this "
                 "profile is not sized to decide: listed, not drift)" if listed else "")
        if not self.drifts:
            return f"no drift: {self.compared} claims, {self.figures_compared} figures" + aside
        return (f"{len(self.drifts)} drift(s) in {len(self.drifted_claims)} claims; "
                f"{gating} verdict change(s)" + aside)

    def to_dict(self) -> dict:
        """JSON form for the report."""
        return {"summary": self.summary(), "compared": self.compared,
                "figures_compared": self.figures_compared, "not_run": self.not_run,
                "drifted_claims": self.drifted_claims, "baseline_context": self.baseline_context,
                "drifts": [asdict(d) | {"text": d.describe()} for d in self.drifts],
                "verdict_changes": [dict(v) for v in self.verdict_changes],
                "held_by_bar": self.held_by_bar,
                "notes": [asdict(d) | {"text": d.describe() + " (every figure within rounding)"}
                          for d in self.notes]}


@functools.cache
def _specs() -> dict:
    """Map each claim id to its declaration (every claim module loaded)."""
    from pmt_core.claims.catalogue import all_cases

    return {case.id: case.spec for case in all_cases()}


def _explicit(claim_id: str, name: str) -> Tolerance | None:
    """Return the tolerance ``claim_id`` declares for figure ``name``, if any."""
    spec = _specs().get(claim_id)
    for pattern, tol in (spec.tolerances.items() if spec else ()):
        if fnmatch.fnmatchcase(name, pattern):
            return tol
    return None


def compare(baseline: dict, report: dict, selected: set | None = None) -> Comparison:
    """Compare a run's report with a baseline (see the module notes).

    Parameters
    ----------
    baseline : dict
        From :func:`load_baseline`.
    report : dict
        The run's ``validation.json`` contract.
    selected : set of str, optional
        Claim ids this run set out to evaluate; baseline claims outside it are
        "not run", not drift. None: every baseline claim is expected.
    """
    current = make_baseline(report)
    # Bounds come from the run (a baseline stores none): the bars the claims hold now;
    # so does what the profile is sized to decide (declared before any run).
    bounds = {r["id"]: r.get("bounds") or [] for r in report["claims"]}
    decided = {r["id"] for r in report["claims"] if r.get("decided_by_profile")}
    result = Comparison(baseline_context=dict(baseline.get("context") or {}))
    for name in CONTEXT_MUST_MATCH:
        old, new = result.baseline_context.get(name), current["context"].get(name)
        if new is not None and old != new:
            result.drifts.append(Drift("(run)", "context", name, old, new))
    for claim_id, stored in baseline["claims"].items():
        record = current["claims"].get(claim_id)
        if record is None:
            if selected is not None and claim_id not in selected:
                result.not_run.append(claim_id)
            else:
                result.drifts.append(Drift(claim_id, "missing claim"))
            continue
        result.compared += 1
        for name, old in (stored.get("figures") or {}).items():
            new = record["figures"].get(name)
            if new is None:
                if record["figures"]:
                    result.drifts.append(Drift(claim_id, "missing figure", name,
                                               old.get("value")))
                continue
            explicit = _explicit(claim_id, name)
            bars = _bars(bounds.get(claim_id, []), name)
            if _held_by_bar(explicit, bars, old, new):
                result.held_by_bar.append(f"{claim_id} [{name}]")
                continue
            result.figures_compared += 1
            # The cap is for claims the profile decides: elsewhere the replicate
            # spread exceeds the distance to the bar by design (module notes).
            distance = _bar_distance(old.get("value"), bars) if claim_id in decided else None
            if explicit is not None:
                a, b = old.get("value"), new.get("value")
                ok, rule = explicit.allows(a, b), explicit.describe()
                if _number(a) is not None and _number(b) is not None:
                    ok, rule = _capped(ok, rule, a, b, _bar_cap(a, distance))
            else:
                ok, rule = allowed_shift(name, old, new, distance)
            if not ok:
                result.drifts.append(Drift(claim_id, "figure", name, old.get("value"),
                                           new.get("value"), rule))
        if record["verdict"] != stored.get("verdict"):
            is_drift = verdict_change_is_drift(stored.get("verdict"), record["verdict"],
                                               claim_id in decided)
            if is_drift:
                result.drifts.append(Drift(claim_id, "verdict", "", stored.get("verdict"),
                                           record["verdict"]))
            result.verdict_changes.append({"claim": claim_id, "baseline": stored.get("verdict"),
                                           "current": record["verdict"], "drift": is_drift,
                                           "decided_by_profile": claim_id in decided})
    for claim_id in current["claims"].keys() - baseline["claims"].keys():
        result.drifts.append(Drift(claim_id, "new claim",
                                   current=current["claims"][claim_id]["verdict"]))
    return result
