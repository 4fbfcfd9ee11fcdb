"""Render the report: ``validation.json`` for machines, ``validation.html`` for people.

The JSON contract is in :mod:`pmt_core.report.build`; plots are PNG files under
``figures/`` beside it, which the HTML embeds (base64), so the page opens
offline, fetches nothing and prints. The HTML reads as an audit: the verdict,
then the verdict matrix (claims x explainers: does each claim reject the null
explanations?), the claims table, the groups' details, where the authors' code
departs from the paper, the regression against the baseline, timings, provenance.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from pmt_core.infra.atomic import write_text_atomic
from pmt_core.report.build import GROUPS
from pmt_core.report.paper_vs_code import PAPER_VS_CODE
from pmt_core.report.records import to_jsonable

STATUSES = ("passed", "failed", "xfailed", "skipped", "error")

#: One sentence under each section title: what the section asks.
GROUP_INTROS = {
    "data": "Is the data what it claims to be: modulation present, no nuisance shortcut, "
            "and does the network need the modulation?",
    "accuracy": "Does the convnet reach the paper's Table 1, and does S2 help?",
    "relevance": "Do the LRP maps point at the physical modulation, for each reading of the "
                 "paper's rules, better than explanations that ignore the example or the "
                 "model?",
    "model": "Does the model itself use each example's modulation rate, and ignore a "
             "distractor as strong as the techniques? Decided by occluding lambda2 bands "
             "of its input, with no explainer involved.",
    "power": "Does each claim reject the null explainers it must reject? A claim that a "
             "null passes cannot tell an explanation from one that ignores the example or "
             "the model.",
    "sanity": "Do the explanations depend on the model (randomisation) and on the evidence "
              "(deletion), beyond input statistics?",
    "scattering": "Does the transform behave as scattering theory predicts on tones with a "
                  "known carrier and modulation?",
    "lrp": "Is the LRP implementation right: canonizer, match with an independent float64 "
           "reference, conservation layer by layer, the share reaching the input?",
    "regression": "Did anything move since the stored baseline run, beyond rounding?",
}


def format_value(value, digits: int = 3) -> str:
    """Short human-readable rendering of a figure, bar or paper value."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "nan"
        return f"{value:.{digits}g}"
    if isinstance(value, dict):
        if "value" in value and "interval" in value:  # an estimate
            low, high = value["interval"]
            text = format_value(value["value"], digits)
            if low is not None and high is not None and value.get("method") != "exact":
                text += f" [{format_value(low, digits)}, {format_value(high, digits)}]"
            return text
        return ", ".join(f"{k}: {format_value(v, digits)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v, digits) for v in value) + "]"
    return str(value)


def verdict_counts(claims: list[dict]) -> dict:
    """Claims per verdict, findings that do not hold (xfailed) apart from failures."""
    counts = {"holds": 0, "does not hold": 0, "finding: does not hold": 0, "inconclusive": 0,
              "not applicable": 0, "error": 0}
    for c in claims:
        if c.get("status") == "error" or c.get("verdict") is None:
            counts["error"] += 1
        elif c.get("status") == "xfailed":
            counts["finding: does not hold"] += 1
        else:
            counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    return counts


def verdict_line(claims: list[dict]) -> str:
    """One sentence summarising the run."""
    counts = verdict_counts(claims)
    bad = sum(c.get("status") in ("failed", "error") for c in claims)
    parts = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    if bad:
        head = f"{bad} gate claim(s) do not hold or errored"
    elif counts["finding: does not hold"]:
        head = (f"The gate passes; {counts['finding: does not hold']} finding(s) about the "
                "paper do not hold (see the scoreboard)")
    elif counts["inconclusive"]:
        head = f"No claim fails; {counts['inconclusive']} inconclusive at this size"
    else:
        head = "All claims hold"
    return f"{head} ({parts})."


def verdict_class(claims: list[dict]) -> str:
    """CSS class of the verdict line: ``bad``, ``known`` or ``ok``."""
    counts = verdict_counts(claims)
    if any(c.get("status") in ("failed", "error") for c in claims):
        return "bad"
    return "known" if counts["finding: does not hold"] or counts["inconclusive"] else "ok"


def table1(claims: list[dict]) -> list[dict]:
    """Rows of Table 1 (per-class test recall, S1 and S1+S2) beside the paper's."""
    from pmt_core.claims import paper

    by_kind = {c["id"].split(".")[1]: c for c in claims
               if c["id"].startswith("accuracy.") and c["id"].endswith(".per_class")}
    names = []
    for c in by_kind.values():
        names += [k[len("recall "):] for k in (c.get("figures") or {}) if k.startswith("recall ")]
    names = list(dict.fromkeys(names))
    if not names:
        return []
    rows = []
    for name in names:
        row = {"class": name}
        for kind in ("s1", "s1s2"):
            figure = (by_kind.get(kind, {}).get("figures") or {}).get(f"recall {name}")
            row[kind] = figure
            row[f"{kind} paper"] = paper.TABLE1_ACCURACY[kind].get(name)
        rows.append(row)
    return rows


def timing_rows(timings: dict) -> list[dict]:
    """Stages with seconds and share of the total (the ``total`` key when present)."""
    total = timings.get("total") or sum(v for v in timings.values() if v) or 1.0
    return [{"stage": k, "seconds": v, "share": (v or 0.0) / total} for k, v in timings.items()]


def _data_uri(report_dir: Path, name: str) -> str:
    try:
        data = (report_dir / name).read_bytes()
    except OSError:
        return ""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def group_counts(claims: list[dict]) -> dict:
    """Return a group's verdict counts for the navigation bar, and their tooltip."""
    counts = {v: sum(c.get("verdict") == v for c in claims)
              for v in ("holds", "does not hold", "inconclusive")}
    counts = {v: n for v, n in counts.items() if n}
    return {"counts": counts,
            "counts_title": ", ".join(f"{n} {v}" for v, n in counts.items()) or "no verdicts"}


def render_html(report: dict, report_dir: str | Path = ".") -> str:
    """Render the report dict to a self-contained HTML page (plots from ``report_dir``)."""
    report_dir = Path(report_dir)
    env = Environment(loader=PackageLoader("pmt_core.report", "templates"),
                      autoescape=select_autoescape(["html"]))
    env.filters["fmt"] = format_value
    env.filters["uri"] = lambda name: _data_uri(report_dir, name)
    claims = report["claims"]
    groups = []
    for key, title in GROUPS.items():
        members = [c for c in claims if c.get("group") == key]
        if members or (key == "data" and report.get("dataset")):
            groups.append({"key": key, "title": title, "intro": GROUP_INTROS.get(key, ""),
                           "claims": members, **group_counts(members)})
    others = [c for c in claims if c.get("group") not in GROUPS]
    if others:
        groups.append({"key": "other", "title": "Other claims", "intro": "", "claims": others})
    claim_ids = [c["id"] for g in groups for c in g["claims"]]
    paper_vs_code = []
    for row in report.get("paper_vs_code") or PAPER_VS_CODE:
        linked = [cid for cid in claim_ids if any(cid.startswith(p) for p in row.get("claims", []))]
        paper_vs_code.append({**row, "linked": linked})
    regression = report.get("regression") or {}
    status_of = {c["id"]: c.get("status") for c in claims}
    return env.get_template("report.html").render(
        report=report, groups=groups, verdict=verdict_line(claims),
        verdict_class=verdict_class(claims), counts=verdict_counts(claims),
        matrix=report.get("matrix") or {"explainers": [], "rows": []},
        table1=table1(claims), paper_vs_code=paper_vs_code, status_of=status_of,
        timings=timing_rows(report.get("timings_s") or {}),
        drifted=set(regression.get("drifted_claims") or []), regression=regression,
        paper_reading=report.get("paper_reading", "the paper's text reading"))


def write_report(report: dict, report_dir: str | Path) -> tuple[Path, Path]:
    """Write ``validation.json`` and ``validation.html`` atomically; return their paths."""
    report = to_jsonable(report)
    report_dir = Path(report_dir)
    json_path = write_text_atomic(report_dir / "validation.json",
                                  json.dumps(report, indent=1, allow_nan=False))
    html_path = write_text_atomic(report_dir / "validation.html",
                                  render_html(report, report_dir))
    return json_path, html_path
