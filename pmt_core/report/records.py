"""A claim's record: the JSON form of an evaluated claim, its plots saved as files.

One record per claim in ``reports/validation.json``::

    {"id", "title", "group", "role", "verdict", "reason", "status", "test",
     "multiplicity": {"method", "family", "family_size", "bounds"},
     "power": {"bound", "minimum_effect", "power", "n_needed", "replicates_needed",
               "decided", "n", "replicates"} or null, "decided_by_profile",
     "bounds": [{"figure", "op", "value", "name", "why", "verdict"}],
     "figures": {name: {"value", "interval", "method", "n", "replicates", "spread"}
                 or a plain value},
     "measured": {name: value}, "key_figure", "interval": [low, high],
     "paper", "unit", "detail", "n", "tables": [{"caption", "columns", "rows"}],
     "plots": [{"file", "caption", "wide"}], "explainers": {name: {...}} or null,
     "fragile": [bound name, ...]}

``fragile`` (added by :func:`pmt_core.report.build.build_report`) names the bounds
whose interval ends within the figure's replicate spread of the bar. ``verdict`` is
the claim's (holds, does not hold, inconclusive, not
applicable); ``status`` is pytest's outcome (passed, failed, xfailed for a
finding that does not hold, skipped, error); ``role`` says which of the two a
"does not hold" is (gate: a failure; finding: a result). Plots are rendered
once, to PNG files under ``<report dir>/figures/``, which the JSON names and the
HTML embeds.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from pmt_core.figures.plots import figure_to_png
from pmt_core.infra.atomic import write_bytes_atomic
from pmt_core.stats.intervals import Estimate

#: Resolution of report figures: sharp on screen at the report's width, small files.
FIGURE_DPI = 90
#: Figures this wide (inches) or wider are shown at page width (multi-panel figures).
WIDE_FIGURE_INCHES = 9.0


def to_jsonable(value):
    """Convert numpy scalars/arrays, estimates and non-finite floats to plain JSON."""
    if isinstance(value, Estimate):
        return value.to_dict()
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


def table_record(rows, caption) -> dict:
    """Return a table as the report stores it: caption, columns, rows (plain JSON)."""
    rows = [to_jsonable(dict(r)) for r in rows]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return {"caption": caption, "columns": columns, "rows": rows}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-")


def save_plots(claim_id: str, plots: list, report_dir: Path) -> list[dict]:
    """Render each (figure, caption) to ``figures/<claim id>-<k>.png``; close it.

    A figure at least :data:`WIDE_FIGURE_INCHES` wide is marked ``wide``: the HTML
    shows it at page width, where its labels stay legible.
    """
    out = []
    for k, (fig, caption) in enumerate(plots):
        name = f"figures/{_slug(claim_id)}-{k}.png"
        wide = bool(fig.get_figwidth() >= WIDE_FIGURE_INCHES)
        write_bytes_atomic(Path(report_dir) / name, figure_to_png(fig, dpi=FIGURE_DPI))
        out.append({"file": name, "caption": caption, "wide": wide})
    return out


def family_of(template_id: str) -> str:
    """Return the family of an id template (``relevance.localisation.{composite}``).

    The template's fixed parts: ``relevance.localisation`` here.
    """
    return ".".join(part for part in template_id.split(".") if not part.startswith("{"))


def evaluation_record(evaluation, report_dir: Path) -> dict:
    """Return the record of an :class:`~pmt_core.claims.core.Evaluation` (module notes)."""
    case, m = evaluation.case, evaluation.measurement
    context = evaluation.context
    bounds = []
    for bound in case.bounds:
        entry = bound.to_dict(context)
        entry["verdict"] = evaluation.bound_verdicts.get(bound.name)
        bounds.append(entry)
    key = evaluation.key_estimate()
    measured = {}
    for name, value in m.figures.items():
        if isinstance(value, Estimate):
            measured[name] = value.value
        elif isinstance(value, bool | int | float | str) or value is None:
            measured[name] = value
    return to_jsonable({
        "id": case.id, "title": case.title, "group": case.spec.group,
        "family": family_of(case.spec.id), "params": case.params, "role": case.spec.role,
        "multiplicity": evaluation.multiplicity, "power": evaluation.power,
        "verdict": evaluation.verdict, "reason": evaluation.reason, "bounds": bounds,
        "figures": m.figures, "measured": measured,
        "key_figure": key.value if key is not None else None,
        "interval": [key.low, key.high] if key is not None and key.method != "exact" else None,
        "paper": case.spec.paper, "unit": case.spec.unit, "detail": m.detail, "n": m.n,
        "tables": [table_record(rows, caption) for rows, caption in m.tables],
        "plots": save_plots(case.id, m.plots, report_dir),
        "explainers": m.explainers,
    })
