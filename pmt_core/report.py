"""The validation report: one JSON for machines, one self-contained HTML for people.

``reports/validation.json`` follows the contract

    {"profile", "device", "dataset", "versions", "timings_s", "environment",
     "claims": [{"id", "title", "status", "measured", "threshold", "paper",
                 "unit", "detail", "group", "figures", "tables"}]}

with ``status`` one of passed, failed, xfailed, skipped, error. Figures are
embedded as base64 PNG data URIs, so the HTML opens offline and prints.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape

from .atomic import write_text_atomic

STATUSES = ("passed", "failed", "xfailed", "skipped", "error")

#: Order and titles of the report's sections (first component of a claim id).
GROUPS = {
    "data": "Data",
    "accuracy": "Accuracy (Table 1)",
    "relevance": "Explanations",
    "lrp": "LRP mechanics and conservation",
    "scattering": "Scattering theory (AM/FM)",
    "sanity": "Sanity checks",
    "regression": "Regression against the baseline",
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
    head = "All claims hold" if bad == 0 else f"{bad} claim(s) do not hold"
    parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return f"{head} ({parts})."


def render_html(report: dict) -> str:
    """Render the report dict to a self-contained HTML page."""
    env = Environment(loader=PackageLoader("pmt_core", "templates"),
                      autoescape=select_autoescape(["html"]))
    env.filters["fmt"] = format_value
    claims = report["claims"]
    groups = []
    for key, title in GROUPS.items():
        members = [c for c in claims if c.get("group") == key]
        if members:
            groups.append({"key": key, "title": title, "claims": members})
    others = [c for c in claims if c.get("group") not in GROUPS]
    if others:
        groups.append({"key": "other", "title": "Other claims", "claims": others})
    return env.get_template("report.html").render(
        report=report, groups=groups, verdict=verdict(claims)
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
#: and what this suite does about it (method.md sections 1-4).
PAPER_VS_CODE = [
    {"topic": "LRP-[eps, z+] rule assignment",
     "paper": "epsilon on convolutions, z+ on the dense layers",
     "code": "zennit EpsilonPlus: z+ on convolutions, epsilon on Linear layers (the reverse)",
     "suite": "both: rules epsilon_zplus (text) and zplus_epsilon (code); "
              "relevance.kurtosis_contrast reports which reproduces the paper's ordering"},
    {"topic": "Top relevance",
     "paper": "R_M = f(Sx), the logit", "code": "bare one-hot of the predicted class",
     "suite": "the logit (explain(top='logit')); one-hot available. Ratios and kurtosis are "
              "identical, absolute sums scale by the logit"},
    {"topic": "Clip length", "paper": "'around 6 seconds'",
     "code": "2^18 samples (5.94 s at 44.1 kHz), truncated or zero-padded at the end",
     "suite": "2^18 samples, as the code"},
    {"topic": "Scattering setting", "paper": "averaging scale 2^12, frame size T = 2^13",
     "code": "kymatio Scattering1D(J=13, shape=2^18, Q=(8, 2), T=2^13), paths >= 32 Hz kept",
     "suite": "the same (1,200 x 32), with kymatio 0.3.0's per-path scale undone "
              "(scattering.am_ratio_theory pins it)"},
    {"topic": "Input compression", "paper": "not stated",
     "code": "log1p(S / (0.1 mu + 1e-8)), mu from the training split, then BatchNorm1d",
     "suite": "the same; relevance is defined in this compressed domain"},
    {"topic": "Test files scored", "paper": "all 1,151",
     "code": "1,120 (the loader drops the last incomplete batch)",
     "suite": "every test file (accuracy.all_test_scored)"},
    {"topic": "Batch-norm merging", "paper": "not stated",
     "code": "SequentialMergeBatchNorm; pairs follow module assignment order, so a model "
             "written batch-norms-first silently merges nothing",
     "suite": "merged count checked against conv+BN pairs (lrp.canonizer)"},
]
