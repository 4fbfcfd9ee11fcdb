"""The validation report: one JSON for machines, one self-contained HTML for people.

``reports/validation.json`` follows the contract

    {"profile", "device", "dataset", "versions", "timings_s", "environment",
     "paper_vs_code", "regression",
     "claims": [{"id", "title", "status", "measured", "threshold", "paper",
                 "unit", "detail", "group", "figures", "tables", "test"}]}

with ``status`` one of passed, failed, xfailed, skipped, error, and
``regression`` the :meth:`pmt_core.report.regression.Comparison.to_dict` of a run with
``--baseline`` (else None). Figures are embedded as base64 PNG data URIs and the
style sheet is inline, so the HTML opens offline, fetches nothing and prints.

The HTML reads as an audit: a verdict line and the claims table first, then the
data, accuracy (Table 1 beside the paper's), explanations, theory checks,
conservation, sanity checks, regression, where the authors' code departs from
the paper, timings and the environment.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape

from pmt_core.infra.atomic import write_text_atomic

STATUSES = ("passed", "failed", "xfailed", "skipped", "error")

#: Order and titles of the report's sections (first component of a claim id).
GROUPS = {
    "data": "Data",
    "accuracy": "Accuracy (Table 1)",
    "relevance": "Explanations",
    "scattering": "Theory checks: scattering of AM/FM tones",
    "lrp": "LRP mechanics and conservation",
    "sanity": "Sanity checks",
    "regression": "Regression against the baseline",
}

#: One sentence under each section title: what the section asks.
GROUP_INTROS = {
    "data": "Is the data what it claims to be: modulation present, no nuisance shortcut?",
    "accuracy": "Does the convnet reach the paper's Table 1, and does S2 help?",
    "relevance": "Do the LRP maps point at the physical modulation (Figs. 1-2 of the "
                 "paper), for each reading of the paper's rules?",
    "scattering": "Does the transform behave as scattering theory predicts on tones with a "
                  "known carrier and modulation?",
    "lrp": "Is the LRP implementation right: canonizer, match with an independent float64 "
           "reference, conservation layer by layer?",
    "sanity": "Do the explanations depend on the model (randomisation) and on the evidence "
              "(deletion)?",
    "regression": "Did anything move since the stored baseline run?",
}


def to_jsonable(value):
    """Convert numpy scalars/arrays and non-finite floats to plain JSON values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_value(value, digits: int = 3) -> str:
    """Short human-readable rendering of a measured/threshold/paper value."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {format_value(v, digits)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v, digits) for v in value) + "]"
    return str(value)


def verdict(claims: list[dict]) -> str:
    """One line summarising the run."""
    counts = {s: sum(c["status"] == s for c in claims) for s in STATUSES}
    bad = counts["failed"] + counts["error"]
    known = counts["xfailed"]
    if bad:
        head = f"{bad} claim(s) do not hold" + (f", {known} more known not to" if known else "")
    elif known:
        # An xfailed claim does not hold either: say so, not "all hold".
        head = f"No new failure; {known} claim(s) known not to hold, each with its reason"
    else:
        head = "All claims hold"
    parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return f"{head} ({parts})."


def verdict_class(claims: list[dict]) -> str:
    """CSS class of the verdict: ``bad`` (a failure), ``known`` (xfailed only) or ``ok``."""
    statuses = {c["status"] for c in claims}
    if statuses & {"failed", "error"}:
        return "bad"
    return "known" if "xfailed" in statuses else "ok"


def table1(claims: list[dict]) -> list[dict]:
    """Rows of Table 1 (per-class test accuracy, S1 and S1+S2) beside the paper's.

    Read from the ``accuracy.<kind>.per_class`` claims; the macro row is the mean
    of the per-class recalls, as in the paper.

    Returns
    -------
    list of dict
        Keys ``class``, ``s1``, ``s1 paper``, ``s1s2``, ``s1s2 paper`` (None where
        absent); empty when no accuracy claim measured anything.
    """
    by_kind = {c["id"].split(".")[1]: c for c in claims
               if c["id"].startswith("accuracy.") and c["id"].endswith(".per_class")}
    measured = {k: c.get("measured") or {} for k, c in by_kind.items()}
    paper = {k: c.get("paper") or {} for k, c in by_kind.items()}
    names = list(dict.fromkeys(n for k in ("s1s2", "s1") for n in measured.get(k, {})))
    if not names:
        return []
    rows = []
    for name in names:
        row = {"class": name}
        for kind in ("s1", "s1s2"):
            row[kind] = measured.get(kind, {}).get(name)
            row[f"{kind} paper"] = paper.get(kind, {}).get(name)
        rows.append(row)

    def mean(column):
        values = [r[column] for r in rows]
        return None if any(v is None for v in values) else float(np.mean(values))

    rows.append({"class": "macro (mean of classes)",
                 **{col: mean(col) for col in ("s1", "s1 paper", "s1s2", "s1s2 paper")}})
    return rows


def linked_claims(patterns, claim_ids) -> list[str]:
    """Claim ids starting with any of ``patterns``, in report order."""
    return [cid for cid in claim_ids if any(cid.startswith(p) for p in patterns)]


def timing_rows(timings: dict) -> list[dict]:
    """Stages with seconds and share of the total (the ``total`` key when present)."""
    total = timings.get("total") or sum(v for v in timings.values() if v) or 1.0
    return [{"stage": k, "seconds": v, "share": (v or 0.0) / total}
            for k, v in timings.items()]


def render_html(report: dict) -> str:
    """Render the report dict to a self-contained HTML page."""
    env = Environment(loader=PackageLoader("pmt_core.report", "templates"),
                      autoescape=select_autoescape(["html"]))
    env.filters["fmt"] = format_value
    claims = report["claims"]
    groups = []
    for key, title in GROUPS.items():
        members = [c for c in claims if c.get("group") == key]
        # the data section always opens with the data set's summary
        if members or (key == "data" and report.get("dataset")):
            groups.append({"key": key, "title": title, "intro": GROUP_INTROS.get(key, ""),
                           "claims": members})
    others = [c for c in claims if c.get("group") not in GROUPS]
    if others:
        groups.append({"key": "other", "title": "Other claims", "intro": "", "claims": others})
    claim_ids = [c["id"] for g in groups for c in g["claims"]]
    # Reports written before the rows named their claims still get the links.
    current = {row["topic"]: row for row in PAPER_VS_CODE}
    paper_vs_code = []
    for row in report.get("paper_vs_code") or PAPER_VS_CODE:
        merged = {**current.get(row["topic"], {}), **row}
        merged["linked"] = linked_claims(merged.get("claims", []), claim_ids)
        paper_vs_code.append(merged)
    regression = report.get("regression") or {}
    status_of = {c["id"]: c["status"] for c in claims}
    return env.get_template("report.html").render(
        report=report, groups=groups, verdict=verdict(claims),
        verdict_class=verdict_class(claims),
        table1=table1(claims), paper_vs_code=paper_vs_code, status_of=status_of,
        timings=timing_rows(report.get("timings_s") or {}),
        drifted=set(regression.get("drifted_claims") or []), regression=regression,
    )


def write_report(report: dict, report_dir: str | Path) -> tuple[Path, Path]:
    """Write ``validation.json`` and ``validation.html`` atomically; return their paths."""
    report = to_jsonable(report)
    report_dir = Path(report_dir)
    json_path = write_text_atomic(report_dir / "validation.json",
                                  json.dumps(report, indent=1, allow_nan=False))
    html_path = write_text_atomic(report_dir / "validation.html", render_html(report))
    return json_path, html_path


#: Where the authors' public code (changhongw/examod) departs from the paper's text,
#: what this suite does about it (method.md sections 1-4), what the choice does to
#: the figures, and the claims (id prefixes) that measure that effect.
PAPER_VS_CODE = [
    {"topic": "LRP-[eps, z+] rule assignment",
     "paper": "epsilon on convolutions, z+ on the dense layers",
     "code": "zennit EpsilonPlus: z+ on convolutions, epsilon on Linear layers (the reverse)",
     "suite": "both: rules epsilon_zplus (text) and zplus_epsilon (code); "
              "relevance.kurtosis_contrast reports which reproduces the paper's ordering",
     "effect": "z+ on the convolutions keeps only positive contributions through most of "
               "the network: sparser, more contrasted maps (higher kurtosis) whose peaks "
               "may sit elsewhere; every relevance claim is measured for both readings",
     "claims": ["relevance.kurtosis_contrast", "relevance.localisation.",
                "relevance.peak_modulation."]},
    {"topic": "Top relevance",
     "paper": "R_M = f(Sx), the logit", "code": "bare one-hot of the predicted class",
     "suite": "the logit (explain(top='logit')); one-hot available. Ratios and kurtosis are "
              "identical, absolute sums scale by the logit",
     "effect": "none on shapes, ranks, peaks or kurtosis (LRP is linear in the top "
               "relevance); conservation budgets are stated relative to the logit",
     "claims": ["lrp.conservation.", "lrp.reference_match."]},
    {"topic": "Clip length", "paper": "'around 6 seconds'",
     "code": "2^18 samples (5.94 s at 44.1 kHz), truncated or zero-padded at the end",
     "suite": "2^18 samples, as the code",
     "effect": "fixes 32 frames of 186 ms; short notes are zero-padded, so their frame "
               "average includes silence",
     "claims": ["scattering.shape"]},
    {"topic": "Scattering setting", "paper": "averaging scale 2^12, frame size T = 2^13",
     "code": "kymatio Scattering1D(J=13, shape=2^18, Q=(8, 2), T=2^13), paths >= 32 Hz kept",
     "suite": "the same (1,200 x 32), with kymatio 0.3.0's per-path scale undone "
              "(scattering.am_ratio_theory pins it)",
     "effect": "kymatio 0.3.0 divides each path by 2^j1 (S1) or 2^(j1+j2) (S2): left as "
               "is, S2/S1 ratios miss theory by 99% and raw energy maps lean towards high "
               "carriers and fast modulations (small j); the log compression's per-path mean "
               "cancels it for the network itself",
     "claims": ["scattering.shape", "scattering.am_ratio_theory",
                "relevance.energy_correlation."]},
    {"topic": "Input compression", "paper": "not stated",
     "code": "log1p(S / (0.1 mu + 1e-8)), mu from the training split, then BatchNorm1d",
     "suite": "the same; relevance is defined in this compressed domain",
     "effect": "maps are relevances of compressed, mean-normalised inputs: weak paths can "
               "carry much relevance, so relevance need not follow scattering energy",
     "claims": ["relevance.energy_correlation.", "relevance.s1_share."]},
    {"topic": "Test files scored", "paper": "all 1,151",
     "code": "1,120 (the loader drops the last incomplete batch)",
     "suite": "every test file (accuracy.all_test_scored)",
     "effect": "the code's per-class accuracies omit 31 files that the loader's order "
               "happens to put last; Table 1 here scores every file",
     "claims": ["accuracy.all_test_scored", "accuracy.s1s2.per_class",
                "accuracy.s1.per_class"]},
    {"topic": "Batch-norm merging", "paper": "not stated",
     "code": "SequentialMergeBatchNorm; pairs follow module assignment order, so a model "
             "written batch-norms-first silently merges nothing",
     "suite": "merged count checked against conv+BN pairs (lrp.canonizer)",
     "effect": "unmerged batch norms get Pass: relevance skips their scaling and no longer "
               "follows the network's function; merged ones shift the logits by ~1e-5 "
               "(the kept eps)",
     "claims": ["lrp.canonizer", "lrp.conservation."]},
]
