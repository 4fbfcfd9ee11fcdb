"""The README's measured tables, generated from a run's ``validation.json``.

One home for the measured figures: the README shows blocks made by
``python -m pmt_core readme REPORT --readme README.md --snapshot
docs/readme-ci.json``, each between its markers, and the snapshot keeps what they
were made from (a unit test holds the README to it). Blocks:

* ``scoreboard``: the paper's statements, each with its outcome, figure,
  interval and bar (:mod:`pmt_core.report.scoreboard`);
* ``readings``: per LRP reading, the verdict and figure of the physics statement
  and the statements about the model, with the nulls beside them.
"""

from __future__ import annotations

from pmt_core.report.scoreboard import (
    CONTRADICTED,
    SHOWN,
    beside_text,
    caveats,
    figure_text,
    summary_line,
)

__all__ = ["BLOCKS", "READING_FAMILIES", "begin_marker", "end_marker", "readings",
           "replace_block", "scoreboard_table", "snapshot"]

#: The families of the readings table, in its column order.
READING_FAMILIES = ("relevance.localisation", "relevance.agreement_with_use",
                    "relevance.mechanism", "relevance.distractor")
#: Nulls shown beside the readings (their figures in the same families).
BESIDE = ("energy_raw", "input")


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return "0" if abs(v) < 1e-12 else f"{v:.3g}"
    return str(v)


def _interval(interval) -> str:
    return (f" [{_fmt(interval[0])}, {_fmt(interval[1])}]"
            if interval and None not in interval else "")


def _row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _run_line(report: dict) -> str:
    prov, settings = report.get("provenance") or {}, report.get("settings") or {}
    commit = (prov.get("git_commit") or "unknown")[:7] + (" (dirty tree)"
                                                          if prov.get("git_dirty") else "")
    return (f"`pytest validation --profile {settings.get('profile', '?')}`, seed "
            f"{settings.get('seed', '?')}, data {settings.get('dataset', '?')}, commit "
            f"{commit}, {prov.get('cpu') or 'unknown CPU'}")


def scoreboard_table(report: dict) -> str:
    """Return the scoreboard: one row per statement, its outcome, figure, interval, bar."""
    lines = [f"{_run_line(report)}; Holm over the {len(report['scoreboard'])} statements:", "",
             "| statement | outcome | figure [95 % interval], bar | beside it |",
             "|---|---|---|---|"]
    for e in report["scoreboard"]:
        outcome = (f"**{e['outcome']}**" if e["outcome"] in (SHOWN, CONTRADICTED)
                   else e["outcome"])
        # the same phrases as the report's sentence (pmt_core.report.scoreboard)
        lines.append(_row((e["statement"], outcome, figure_text(e) + caveats(e),
                           beside_text(e))))
    lines += ["", f"Outcomes: {summary_line(report['scoreboard'])}."]
    return "\n".join(lines)


def readings(report: dict) -> str:
    """Return, per LRP reading, each reading family's verdict, figure and interval."""
    claims = {c["id"]: c for c in report.get("claims") or []}
    matrix = report.get("matrix") or {}
    labels = {e["name"]: e.get("label") or e["name"] for e in matrix.get("explainers") or []}
    rows = {r["family"]: r for r in matrix.get("rows") or []}
    families = [f for f in READING_FAMILIES if any(i.startswith(f + ".") for i in claims)]
    names = [n for n in labels if any(f"{f}.{n}" in claims for f in families)]
    header = ["reading"]
    for f in families:
        bound = next(((claims[f"{f}.{n}"].get("bounds") or [{}])[0] for n in names
                      if f"{f}.{n}" in claims), {})
        header.append(f"{f.split('.', 1)[1].replace('_', ' ')} ({bound.get('op', '?')} "
                      f"{_fmt(bound.get('value'))})")
    lines = [f"{_run_line(report)}; verdicts Holm-adjusted over the readings:", "",
             _row(header), "|" + "---|" * len(header)]
    for n in names:
        cells = [labels[n]]
        for f in families:
            c = claims.get(f"{f}.{n}")
            cells.append("" if c is None else
                         f"{c['verdict']} {_fmt(c.get('key_figure'))}"
                         f"{_interval(c.get('interval'))}")
        lines.append(_row(cells))
    beside = ["beside: " + " / ".join(BESIDE)]
    for f in families:
        cells = (rows.get(f) or {}).get("cells") or {}
        beside.append(" / ".join(_fmt((cells.get(b) or {}).get("measured")) for b in BESIDE))
    lines.append(_row(beside))
    return "\n".join(lines)


#: Block name -> the function that writes it from a report (or its snapshot).
BLOCKS = {"scoreboard": scoreboard_table, "readings": readings}


def snapshot(report: dict) -> dict:
    """Return what the blocks read of a report (settings, provenance, scoreboard, readings)."""
    keep = ("id", "verdict", "key_figure", "interval", "bounds")
    claims = [{k: c.get(k) for k in keep} for c in report.get("claims") or []
              if any(c["id"].startswith(f + ".") for f in READING_FAMILIES)]
    matrix = report.get("matrix") or {}
    rows = [{"family": r["family"],
             "cells": {b: {"measured": (r.get("cells", {}).get(b) or {}).get("measured")}
                       for b in BESIDE}}
            for r in matrix.get("rows") or [] if r["family"] in READING_FAMILIES]
    return {"format": "pmt-readme-snapshot", "settings": report.get("settings"),
            "provenance": report.get("provenance"), "scoreboard": report["scoreboard"],
            "claims": claims, "matrix": {"explainers": matrix.get("explainers"), "rows": rows}}


def begin_marker(name: str) -> str:
    """Return the line that opens block ``name`` in the README."""
    return f"<!-- generated: {name} (python -m pmt_core readme); do not edit -->"


def end_marker(name: str) -> str:
    """Return the line that closes block ``name``."""
    return f"<!-- end of generated: {name} -->"


def replace_block(text: str, name: str, block: str) -> str:
    """Return ``text`` with block ``name``'s lines between its markers replaced.

    Raises
    ------
    ValueError
        When its markers are missing, repeated or out of order (nothing is replaced).
    """
    begin, end = begin_marker(name), end_marker(name)
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(f"the markers of block {name!r} must stand once each: the line "
                         f"{begin!r}, then the line {end!r}")
    head, rest = text.split(begin)
    return f"{head}{begin}\n{block}\n{end}{rest.split(end)[1]}"
