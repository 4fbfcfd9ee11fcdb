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

What counts as drift (:func:`compare`):

* a claim present on one side only, and a verdict change (holds -> inconclusive,
  ...) that comes with a figure beyond its tolerance. A verdict whose interval
  ends at its bar can flip with rounding alone; such a flip, with every figure
  within tolerance, is listed as a note, not drift;
* a figure that moved by more than its tolerance (:func:`allowed_shift`). Two
  runs of the same code and seed on different machines (or with perturbed
  arithmetic) differ by rounding, which training amplifies: every replicate is
  then another draw of the same training, so a figure pooled over R replicates
  moves by about its replicate spread s over sqrt(R/2). The gate allows
  ``Z_SPREAD`` times that, and a figure that does not depend on training (no
  spread) only what rounding can do to it (relative 1e-3). p-values and
  rounding-level figures (below 1e-6) compare on a log scale, in decades;
* a different run context (profile, seed, data set, its size, replicates).

A claim may declare its own tolerance per figure (``ClaimSpec.tolerances``).
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

#: Allowed shift, in standard errors of the difference of two pooled means (each
#: s / sqrt(R)): 4 leaves a false-alarm rate below 1e-4 per figure for normal
#: noise, so a run of ~500 figures drifts by chance less than once in 20 runs.
Z_SPREAD = 4.0
#: Relative shift allowed for a figure that does not depend on training (data,
#: transform, theory tones): float rounding across builds moves them by ~1e-6.
DETERMINISTIC_REL = 1e-3
#: Figures below this are rounding-level (residuals, reference errors): compared
#: in decades.
ROUNDING_LEVEL = 1e-6
#: Decades a p-value or a rounding-level figure may move.
DECADES = 1.0


class BaselineError(ValueError):
    """A baseline file is missing, unreadable or not a baseline."""


def _is_p_value(name: str) -> bool:
    n = name.lower()
    return n == "p" or n.startswith("p ") or n.endswith(" p") or " p " in n or "p-value" in n


def allowed_shift(name: str, old: dict, new: dict) -> tuple[bool, str]:
    """Whether a figure's move from ``old`` to ``new`` is within rounding.

    Parameters
    ----------
    name : str
        The figure's name (p-values are recognised by it).
    old, new : dict
        ``{"value", "spread", "replicates"}`` (baseline entries).

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
    if _is_p_value(name) or max(abs(a), abs(b)) < ROUNDING_LEVEL:
        rule = Tolerance("decade", DECADES, floor=1e-300 if _is_p_value(name) else 1e-16)
        return rule.allows(a, b), rule.describe()
    spreads = [x.get("spread") for x in (old, new)]
    counts = [max(int(x.get("replicates") or 1), 1) for x in (old, new)]
    if all(s is not None for s in spreads):
        se = math.sqrt(sum(s**2 / n for s, n in zip(spreads, counts, strict=True)))
        limit = max(Z_SPREAD * se, DETERMINISTIC_REL * max(abs(a), abs(b)), 1e-12)
        return abs(b - a) <= limit, f"{Z_SPREAD:g} x replicate SE ({limit:.3g})"
    limit = max(DETERMINISTIC_REL * max(abs(a), abs(b)), 1e-12)
    return abs(b - a) <= limit, f"rel {DETERMINISTIC_REL:g} (no replicate spread)"


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
            "isa": prov.get("isa"), "torch_threads": prov.get("torch_threads")}


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
    #: Verdict changes with every figure within rounding (not drift).
    notes: list = field(default_factory=list)

    @property
    def drifted_claims(self) -> list[str]:
        """Ids of the claims with at least one drift, in order."""
        return list(dict.fromkeys(d.claim for d in self.drifts))

    def summary(self) -> str:
        """One line: how much moved."""
        if not self.drifts:
            return (f"no drift: {self.compared} claims, {self.figures_compared} figures within "
                    "rounding")
        return (f"{len(self.drifts)} drift(s) in {len(self.drifted_claims)} of "
                f"{self.compared} compared claims")

    def to_dict(self) -> dict:
        """JSON form for the report."""
        return {"summary": self.summary(), "compared": self.compared,
                "figures_compared": self.figures_compared, "not_run": self.not_run,
                "drifted_claims": self.drifted_claims, "baseline_context": self.baseline_context,
                "drifts": [asdict(d) | {"text": d.describe()} for d in self.drifts],
                "notes": [asdict(d) | {"text": d.describe() + " (every figure within rounding)"}
                          for d in self.notes]}


@functools.cache
def _specs() -> dict:
    """Map each claim id to its declaration (every claim module loaded)."""
    from pmt_core.claims.core import all_cases

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
        before = len(result.drifts)
        for name, old in (stored.get("figures") or {}).items():
            new = record["figures"].get(name)
            if new is None:
                if record["figures"]:
                    result.drifts.append(Drift(claim_id, "missing figure", name,
                                               old.get("value")))
                continue
            result.figures_compared += 1
            explicit = _explicit(claim_id, name)
            if explicit is not None:
                ok, rule = explicit.allows(old.get("value"), new.get("value")), \
                    explicit.describe()
            else:
                ok, rule = allowed_shift(name, old, new)
            if not ok:
                result.drifts.append(Drift(claim_id, "figure", name, old.get("value"),
                                           new.get("value"), rule))
        if record["verdict"] != stored.get("verdict"):
            flip = Drift(claim_id, "verdict", "", stored.get("verdict"), record["verdict"])
            # A verdict whose interval ends at its bar may flip with rounding alone:
            # drift when a figure moved too, a note (in the report) when none did.
            (result.drifts if len(result.drifts) > before or not stored.get("figures")
             else result.notes).append(flip)
    for claim_id in current["claims"].keys() - baseline["claims"].keys():
        result.drifts.append(Drift(claim_id, "new claim",
                                   current=current["claims"][claim_id]["verdict"]))
    return result
