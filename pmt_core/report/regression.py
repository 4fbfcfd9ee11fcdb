"""Regression against a stored run: which claims' figures moved, and by how much.

A baseline is a small JSON file written from a run's ``validation.json``
(``pytest validation --update-baseline FILE`` or
``python -m pmt_core baseline update REPORT FILE``)::

    {"format": "pmt-baseline", "format_version": 1, "created_utc": ...,
     "context": {"profile", "seed", "dataset", "n_examples", "device", "git_commit"},
     "claims": {"<claim id>": {"status": "passed", "test": "<pytest node id>",
                               "figures": {"<dotted key>": 0.93, ...},
                               "tolerances": {"<dotted key>": "abs 0.05", ...}}}}

``figures`` are the claim's ``measured`` value flattened to dotted keys (a dict
``{"trill": 0.9}`` gives ``trill``, a scalar gives ``measured``, list items get
``[i]``). The tolerance of every figure comes from :data:`TOLERANCES`, the one
table below; the baseline records the tolerance it was written with so that a
reader sees it, but comparisons use the table (the code is the reference).

What counts as drift (:func:`compare`):

* a figure outside its tolerance, or one that became non-finite (``None``);
* a status change (passed -> failed, failed -> passed, anything -> error ...);
* a claim in the baseline that the run did not record although its test ran,
  or a claim the baseline does not know (claims of tests not selected in this
  run are listed as "not run", not as drift);
* a figure present on one side only;
* a different run context (profile, seed, data set or its size): the figures
  would not be comparable at all.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pmt_core.infra.atomic import write_text_atomic

FORMAT = "pmt-baseline"
FORMAT_VERSION = 1

#: Claims that compare the run with the baseline are never stored in it.
SELF_GROUP = "regression"

#: Context fields that must agree for figures to be comparable; the others are
#: shown for information (a CPU baseline is meant to be checked on GPU runs too).
CONTEXT_MUST_MATCH = ("profile", "seed", "dataset", "n_examples")


class BaselineError(ValueError):
    """A baseline file is missing, unreadable or not a baseline."""


@dataclass(frozen=True)
class Tolerance:
    """How far a figure may move before it counts as drift.

    Parameters
    ----------
    kind : {"exact", "abs", "rel", "decade", "octave"}
        ``exact``: equal. ``abs``: ``|new - old| <= value``. ``rel``:
        ``|new - old| <= value * |old|``. ``decade``: ``|log10(new / old)| <= value``
        after raising both to ``floor`` (rounding-level figures, p-values).
        ``octave``: ``|log2(new / old)| <= value`` (frequencies in Hz).
    value : float
    floor : float
        Only for ``decade``: magnitudes below it count as equal to it.
    """

    kind: str
    value: float = 0.0
    floor: float = 0.0

    def __post_init__(self):
        if self.kind not in ("exact", "abs", "rel", "decade", "octave"):
            raise ValueError(f"unknown tolerance kind {self.kind!r}")

    def allows(self, old, new) -> bool:
        """Return True when ``new`` is within tolerance of ``old``."""
        if old is None or new is None or isinstance(old, str | bool) or isinstance(new, str | bool):
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
        # octave: a sign change or a zero is never "within an octave"
        if old <= 0 or new <= 0:
            return old == new
        return abs(math.log2(new / old)) <= self.value

    def describe(self) -> str:
        """Short text such as ``abs 0.05`` or ``decade 1 (floor 1e-13)``."""
        if self.kind == "exact":
            return "exact"
        text = f"{self.kind} {self.value:g}"
        return text + (f" (floor {self.floor:g})" if self.floor else "")


@dataclass(frozen=True)
class ToleranceRule:
    """One row of :data:`TOLERANCES`: claim ids and figure keys it covers (globs)."""

    claims: str
    figures: str
    tolerance: Tolerance
    reason: str


#: Per-claim tolerances; the first row whose globs match a (claim id, figure key)
#: applies. Two facts set them. On one machine a CPU run is deterministic (seeded
#: data, split, training; single-threaded feature extraction), so any move at all
#: means the code or a library changed. Across machines (another BLAS, a GPU, other
#: library builds) float rounding differs; it leaves the transform and the
#: reference checks at rounding level but changes the trained weights, so every
#: figure downstream of training moves a little. The tolerances are the second,
#: looser kind, so that one committed baseline serves CPU and GPU runners.
TOLERANCES: tuple[ToleranceRule, ...] = (
    ToleranceRule("scattering.shape", "*", Tolerance("exact"),
                  "path and frame counts are fixed by the scattering config: any change "
                  "is a different transform"),
    ToleranceRule("accuracy.all_test_scored", "*", Tolerance("exact"),
                  "a count of unscored test files, 0 by construction"),
    ToleranceRule("scattering.*_peak", "*", Tolerance("abs", 0.07),
                  "hit rate over deterministic test tones; across FFT builds one tone at a "
                  "filter-spacing tie may flip (1 of 16 ci tones = 0.0625)"),
    ToleranceRule("scattering.am_ratio_theory", "*", Tolerance("abs", 0.005),
                  "median relative error over deterministic tones; float32 FFT rounding "
                  "moves it by ~1e-4, a wrong transform scale by > 0.5"),
    ToleranceRule("data.*", "*", Tolerance("abs", 0.03),
                  "fractions and accuracies on seeded synthetic data: deterministic "
                  "descriptors; allows one borderline example of the smallest ci class "
                  "(1/45 = 0.022) to flip with library versions"),
    ToleranceRule("accuracy.*", "*", Tolerance("abs", 0.05),
                  "retraining elsewhere changes the weights by float non-determinism; a "
                  "class of 20-60 ci test files then moves by one to three files"),
    ToleranceRule("lrp.canonizer", "*", Tolerance("decade", 1.0, floor=1e-9),
                  "relative logit shift from zennit's kept batch-norm eps (~1e-5): a "
                  "rounding-size figure that varies with the trained logits by a small "
                  "factor; a merging error moves it by orders of magnitude"),
    ToleranceRule("lrp.reference_match.*", "*", Tolerance("decade", 1.0, floor=1e-13),
                  "float64 rounding error (1e-16 to 1e-15): a relative tolerance would flag "
                  "rounding noise across BLAS builds, so compare decades; below 1e-13 all "
                  "values are rounding; a rule or wiring error shows at 1e-2"),
    ToleranceRule("lrp.conservation.*", "*", Tolerance("decade", 1.0, floor=1e-14),
                  "float64 conservation residual (<= 2e-16): rounding, compared in decades "
                  "as the reference errors"),
    ToleranceRule("*", "*Wilcoxon p*", Tolerance("decade", 1.0, floor=1e-12),
                  "p-values span decades with small shifts of the data; the claim's status "
                  "already records a crossing of the significance level"),
    ToleranceRule("*", "* p", Tolerance("decade", 1.0, floor=1e-12),
                  "p-values: as above"),
    ToleranceRule("relevance.kurtosis_contrast", "*", Tolerance("rel", 0.10),
                  "kurtosis of maps of a retrained model: heavy-tailed statistic, ~5% "
                  "seed-free spread across machines"),
    ToleranceRule("relevance.peak_modulation.*", "*", Tolerance("octave", 0.25),
                  "median lambda2 in Hz over half-octave-spaced filters: less than half a "
                  "filter spacing is not a different peak"),
    ToleranceRule("relevance.localisation.*", "lift*", Tolerance("rel", 0.15),
                  "ratio to a small chance rate: relative"),
    ToleranceRule("relevance.*", "*", Tolerance("abs", 0.05),
                  "hit rates, shares, cosines and rank correlations (all in [-1, 1]) of a "
                  "retrained model's maps"),
    ToleranceRule("sanity.model_randomisation.*", "*", Tolerance("abs", 0.05),
                  "mean rank correlations in [-1, 1]"),
    ToleranceRule("sanity.deletion.*", "*", Tolerance("rel", 0.10),
                  "areas over the perturbation curve and their ratio, of a retrained model"),
    ToleranceRule("*", "*", Tolerance("rel", 0.05),
                  "any figure not listed above: a 5% relative move deserves a look"),
)


def tolerance_for(claim_id: str, key: str) -> ToleranceRule:
    """Return the first rule of :data:`TOLERANCES` that covers ``(claim_id, key)``."""
    for rule in TOLERANCES:
        if fnmatch.fnmatchcase(claim_id, rule.claims) and fnmatch.fnmatchcase(key, rule.figures):
            return rule
    raise LookupError(f"no tolerance for {claim_id}:{key}")  # unreachable: last row is */*


def flatten_figures(value, prefix: str = "") -> dict:
    """Flatten a claim's ``measured`` value to ``{dotted key: scalar}``.

    Parameters
    ----------
    value : scalar, dict, list or None
        A JSON value (numbers, strings, booleans and None are leaves).
    prefix : str
        Key of ``value`` itself; a top-level scalar is called ``measured``.

    Returns
    -------
    dict
        Dicts give ``a.b`` keys and lists ``a[i]``; None (NaN in the JSON) is kept.
    """
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(flatten_figures(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list | tuple):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten_figures(v, f"{prefix}[{i}]"))
        return out
    return {prefix or "measured": value}


def run_context(report: dict) -> dict:
    """Return what a baseline must share with a run to be comparable (see module notes)."""
    dataset = report.get("dataset") or {}
    environment = report.get("environment") or {}
    return {"profile": report.get("profile"), "seed": environment.get("seed"),
            "dataset": dataset.get("source"), "n_examples": dataset.get("n_examples"),
            "device": report.get("device"), "git_commit": environment.get("git_commit")}


def _unique_ids(claims: Iterable[dict]) -> dict:
    # Claim ids are unique in the suite; a duplicate (say, a parametrised test that
    # forgot its parameter in the id) is kept apart rather than overwritten.
    out = {}
    for record in claims:
        key, n = record["id"], 2
        while key in out:
            key, n = f"{record['id']}#{n}", n + 1
        out[key] = record
    return out


def make_baseline(report: dict) -> dict:
    """Build a baseline dict from a run's report (the ``validation.json`` contract)."""
    claims = {}
    for claim_id, record in _unique_ids(report["claims"]).items():
        if claim_id.split(".")[0] == SELF_GROUP:
            continue
        figures = flatten_figures(record.get("measured"))
        claims[claim_id] = {
            "status": record.get("status"),
            "test": record.get("test"),
            "figures": figures,
            "tolerances": {k: tolerance_for(claim_id, k).tolerance.describe() for k in figures},
        }
    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "context": run_context(report), "claims": claims}


def write_baseline(report: dict, path: str | Path) -> Path:
    """Write the baseline of ``report`` to ``path`` atomically; return the path."""
    return write_text_atomic(path, json.dumps(make_baseline(report), indent=1, allow_nan=False))


def load_baseline(path: str | Path) -> dict:
    """Read a baseline written by :func:`write_baseline`, or make one from a report.

    A run's ``validation.json`` is accepted too and converted with
    :func:`make_baseline`, so any past report can serve as the baseline.

    Raises
    ------
    BaselineError
        If the file is missing, is not JSON, or is not a baseline.
    """
    path = Path(path)
    if not path.is_file():
        raise BaselineError(f"no baseline file at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("claims"), list):
        # a validation.json: its claims are the baseline
        try:
            return make_baseline(data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise BaselineError(f"{path} is not a readable validation report: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BaselineError(f"{path} is neither a {FORMAT} file nor a validation report")
    if data.get("format_version") != FORMAT_VERSION:
        raise BaselineError(f"{path} has baseline format version {data.get('format_version')}, "
                            f"expected {FORMAT_VERSION}")
    if not isinstance(data.get("claims"), dict):
        raise BaselineError(f"{path} has no 'claims' mapping")
    return data


@dataclass(frozen=True)
class Drift:
    """One thing that moved between the baseline and the run.

    Attributes
    ----------
    claim : str
        Claim id (``"(run)"`` for the run context).
    kind : str
        ``figure``, ``status``, ``missing claim``, ``new claim``, ``missing figure``,
        ``new figure`` or ``context``.
    key : str
        Figure key (dotted), context field, or "".
    baseline, current : object
        The two values (None where absent).
    tolerance : str
        The tolerance applied, for figures.
    """

    claim: str
    kind: str
    key: str = ""
    baseline: object = None
    current: object = None
    tolerance: str = ""

    def describe(self) -> str:
        """One line for the terminal, the claim's detail and the assertion message."""
        where = f"{self.claim}" + (f" [{self.key}]" if self.key else "")
        if self.kind in ("figure", "status", "context"):
            text = f"{where}: {self.kind} {_short(self.baseline)} -> {_short(self.current)}"
            return text + (f" (tolerance {self.tolerance})" if self.tolerance else "")
        return f"{where}: {self.kind}"


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "None" if value is None else str(value)


@dataclass
class Comparison:
    """Result of :func:`compare`.

    Attributes
    ----------
    drifts : list of Drift
    compared : int
        Claims present on both sides.
    figures_compared : int
    not_run : list of str
        Baseline claims whose test was not selected in this run (not drift).
    baseline_context : dict
    """

    drifts: list = field(default_factory=list)
    compared: int = 0
    figures_compared: int = 0
    not_run: list = field(default_factory=list)
    baseline_context: dict = field(default_factory=dict)

    @property
    def drifted_claims(self) -> list[str]:
        """Ids of the claims with at least one drift, in order of appearance."""
        return list(dict.fromkeys(d.claim for d in self.drifts))

    def summary(self) -> str:
        """One line: how much moved."""
        if not self.drifts:
            return (f"no drift: {self.compared} claims, {self.figures_compared} figures within "
                    "tolerance")
        return (f"{len(self.drifts)} drift(s) in {len(self.drifted_claims)} of "
                f"{self.compared} compared claims")

    def to_dict(self) -> dict:
        """JSON-able form for the report."""
        return {"summary": self.summary(), "compared": self.compared,
                "figures_compared": self.figures_compared, "not_run": self.not_run,
                "drifted_claims": self.drifted_claims, "baseline_context": self.baseline_context,
                "drifts": [asdict(d) | {"text": d.describe()} for d in self.drifts]}


def compare(baseline: dict, claims: Iterable[dict], context: dict | None = None,
            selected_tests: Iterable[str] | None = None) -> Comparison:
    """Compare a run's claims with a baseline.

    Parameters
    ----------
    baseline : dict
        From :func:`load_baseline` (or :func:`make_baseline`).
    claims : iterable of dict
        Claim records of the run (``id``, ``status``, ``measured``, optionally
        ``test``, the pytest node id); ``regression.*`` claims are ignored.
    context : dict, optional
        :func:`run_context` of the run; mismatches in :data:`CONTEXT_MUST_MATCH`
        are drift.
    selected_tests : iterable of str, optional
        Node ids of the tests selected in this run. A baseline claim missing from
        the run whose test is not among them is listed in ``not_run`` instead of
        counting as drift. None: every missing claim is drift.

    Returns
    -------
    Comparison
    """
    result = Comparison(baseline_context=dict(baseline.get("context") or {}))
    if context is not None:
        for name in CONTEXT_MUST_MATCH:
            old, new = result.baseline_context.get(name), context.get(name)
            # a run that never built its data set (only some tests selected) has no size
            if new is not None and old != new:
                result.drifts.append(Drift("(run)", "context", name, old, new))
    current = {k: v for k, v in _unique_ids(claims).items() if k.split(".")[0] != SELF_GROUP}
    selected = None if selected_tests is None else set(selected_tests)
    for claim_id, stored in baseline["claims"].items():
        record = current.get(claim_id)
        if record is None:
            test = stored.get("test")
            if selected is not None and test and test not in selected:
                result.not_run.append(claim_id)
            else:
                result.drifts.append(Drift(claim_id, "missing claim"))
            continue
        result.compared += 1
        if record.get("status") != stored.get("status"):
            result.drifts.append(Drift(claim_id, "status", "", stored.get("status"),
                                       record.get("status")))
        old_figures = stored.get("figures") or {}
        new_figures = flatten_figures(record.get("measured"))
        for key, old in old_figures.items():
            if key not in new_figures:
                # a claim that errored or skipped before measuring has no figures;
                # its status change says it all
                if record.get("measured") is not None:
                    result.drifts.append(Drift(claim_id, "missing figure", key, old))
                continue
            result.figures_compared += 1
            rule = tolerance_for(claim_id, key)
            if not rule.tolerance.allows(old, new_figures[key]):
                result.drifts.append(Drift(claim_id, "figure", key, old, new_figures[key],
                                           rule.tolerance.describe()))
        for key in new_figures.keys() - old_figures.keys():
            if stored.get("figures"):
                result.drifts.append(Drift(claim_id, "new figure", key,
                                           current=new_figures[key]))
    for claim_id in current.keys() - baseline["claims"].keys():
        result.drifts.append(Drift(claim_id, "new claim", current=current[claim_id].get("status")))
    return result


def tolerance_table() -> list[dict]:
    """Rows of :data:`TOLERANCES` for the report and the documentation."""
    return [{"claims": r.claims, "figures": r.figures, "tolerance": r.tolerance.describe(),
             "reason": r.reason} for r in TOLERANCES]
