"""Assemble ``reports/validation.json`` from the claim records and the run.

The contract (``format`` ``pmt-validation-report``, version 2)::

    {"format", "format_version", "profile", "device", "replicates",
     "settings": {dataset, profile, seed, device, perturb, replicates, ...},
     "dataset": {source, path, n_examples, per_class, per_split, feature_cache, ...},
     "provenance": {git_commit, git_dirty, cpu, isa, torch_threads, device, ...},
     "versions", "timings_s", "command", "paper_vs_code",
     "matrix": {"explainers": [{name, label, null, kind}],
                "rows": [{family, claim, cells: {explainer: {measured, interval,
                                                           verdict, null}}}]},
     "regression": null or the baseline comparison,
     "scoreboard": [{statement, claim, outcome, figure, interval, p_adjusted, power,
                     sentence, ...}],   # pmt_core.report.scoreboard
     "gate": {"claims", "failed", "summary"},
     "claims": [record, ...]}   # pmt_core.report.records

Nothing here depends on pytest: the plugin passes the records and the run.
"""

from __future__ import annotations

from pathlib import Path

from pmt_core.report.paper_vs_code import PAPER_VS_CODE
from pmt_core.report.records import to_jsonable
from pmt_core.report.scoreboard import scoreboard

FORMAT = "pmt-validation-report"
FORMAT_VERSION = 2

#: Order and titles of the report's sections (first component of a claim id).
GROUPS = {
    "data": "Data",
    "accuracy": "Accuracy (Table 1)",
    "relevance": "Explanations",
    "model": "What the model uses (interventions, no explainer)",
    "power": "Power: do the criteria accept planted oracles and reject planted adversaries?",
    "sanity": "Sanity checks",
    "scattering": "Theory checks: scattering of AM/FM tones",
    "lrp": "LRP mechanics and conservation",
    "regression": "Regression against the baseline",
}


def _group_rank(record: dict) -> tuple:
    group = record.get("group")
    return (list(GROUPS).index(group) if group in GROUPS else len(GROUPS), record["id"])


def verdict_matrix(records: list[dict]) -> dict:
    """Claim families x explainers, one cell per figure and verdict.

    Built from the records that carry ``explainers`` (the relevance and sanity
    claims); one row per family (the per-composite records of a family share
    their explainer cells).
    """
    rows, names, nulls = {}, {}, {}
    power = {r["id"][len("power."):]: r for r in records if r.get("group") == "power"}
    for record in records:
        cells = record.get("explainers")
        if not cells or record.get("group") == "power":
            continue
        family = record.get("family") or record["id"]
        row = rows.setdefault(family, {
            "family": family, "claims": [], "cells": {}, "verdicts": {},
            "power": (power.get(family) or {}).get("verdict"),
            "power_claim": (power.get(family) or {}).get("id")})
        row["verdicts"][record["id"]] = record.get("verdict")
        row["claims"].append(record["id"])
        for name, cell in cells.items():
            row["cells"].setdefault(name, cell)
            names.setdefault(name, cell.get("label", name))
            nulls[name] = bool(cell.get("null"))
    # paper readings first, then other explainers, then the nulls (registry order kept)
    order = sorted(names, key=lambda n: (nulls[n], list(names).index(n)))
    return {"explainers": [{"name": n, "label": names[n], "null": nulls[n]} for n in order],
            "rows": list(rows.values())}


def build_report(records: list[dict], run, settings, *, command: str = "",
                 elapsed: float | None = None, started_utc: str | None = None,
                 artifacts: dict | None = None, report_dir=None) -> dict:
    """Return the report dict of a session (see the module notes).

    Parameters
    ----------
    records : list of dict
        Claim records (:func:`pmt_core.report.records.evaluation_record`, with the
        plugin's ``status`` and ``test``).
    run : pmt_core.run.Run or None
        None when no claim reached its run (every test errored first).
    settings : pmt_core.run.RunSettings
    command : str
    elapsed : float, optional
        Seconds since the session started.
    started_utc : str, optional
        When the session started (ISO 8601, UTC); ``provenance`` adds when it ended.
    artifacts : dict, optional
        SHA-256 of the files the run wrote beside the report (split, checkpoints,
        per-example records): ``provenance.artifacts``.
    report_dir : path-like, optional
        Where the run's files end up (the run may write them into a staging
        folder first); default the run's own folder.
    """
    from datetime import UTC, datetime

    from pmt_core.infra.provenance import library_versions, provenance

    records = sorted(records, key=_group_rank)
    for record in records:
        record["fragile"] = fragile_bounds(record)
    timings = dict(run.timings) if run is not None else {}
    if elapsed is not None:
        timings["total"] = elapsed
    dataset = {"source": settings.dataset, "n_examples": 0, "per_class": {}}
    device = settings.device
    if run is not None and run.computed("data"):
        dataset = run.data.summary()
        if run.computed("features"):
            stage = run.features
            dataset["feature_cache"] = stage.cache
            dataset["feature_peak_rss_mib"] = getattr(stage, "peak_rss_mib", None)
            dataset["feature_recipe"] = getattr(stage, "recipe", None)
        if run.computed("model_cache") and run.model_cache is not None:
            dataset["model_cache"] = run.model_cache.stats()  # hits: models loaded
        if run.computed("explanation_cache") and run.explanation_cache is not None:
            # hits: explanations, sanity curves, occlusion and descriptors loaded
            dataset["explanation_cache"] = run.explanation_cache.stats()
        dataset["split_csv"] = str(Path(report_dir or run.report_dir) / "split.csv")
    if run is not None and run.computed("device"):
        device = run.device_name
    replicates = run.n_replicates if run is not None else settings.replicates
    return to_jsonable({
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "profile": settings.profile, "device": device, "replicates": replicates,
        "settings": {"dataset": settings.dataset, "profile": settings.profile,
                     "seed": settings.seed, "device": settings.device,
                     "perturb": settings.perturb, "replicates": replicates},
        "dataset": dataset,
        "provenance": {
            **provenance(run.device if run is not None and run.computed("device") else None,
                         code=getattr(run, "code_state", None)),
            "started_utc": started_utc,
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "artifacts": artifacts or {}},
        "versions": library_versions(), "timings_s": timings, "command": command,
        "paper_vs_code": PAPER_VS_CODE, "matrix": verdict_matrix(records),
        "paper_reading": paper_reading(),
        "scoreboard": scoreboard(records, paper_reading()),
        "gate": gate_summary(records),
        "regression": None, "claims": records,
    })


def fragile_bounds(record: dict) -> list[str]:
    """Names of a claim's bounds whose verdict one replicate more could move.

    A bound is fragile when an end of its figure's interval lies within the
    figure's replicate spread (the sd of the per-replicate values) of the bar: the
    verdict there rests on less than the training noise of one replicate. A
    marker for the reader, never part of the verdict.
    """
    out = []
    figures = record.get("figures") or {}
    for bound in record.get("bounds") or []:
        estimate = figures.get(bound.get("figure"))
        bar = bound.get("value")
        if not isinstance(estimate, dict) or not isinstance(bar, int | float):
            continue
        interval, spread = estimate.get("interval"), estimate.get("spread")
        if not interval or None in interval or spread is None:
            continue
        if min(abs(interval[0] - bar), abs(interval[1] - bar)) <= spread:
            out.append(bound.get("name") or bound.get("figure"))
    return out


def paper_reading() -> str:
    """Return the LRP reading the paper's text describes (the scoreboard asks it)."""
    from pmt_core.claims.relevance import PAPER_TEXT_READING

    return PAPER_TEXT_READING


def gate_summary(records: list[dict]) -> dict:
    """Summarise what the exit status rests on: gate claims that failed, findings apart."""
    gate = [r for r in records if r.get("role") == "gate"]
    failed = [r["id"] for r in records if r.get("status") in ("failed", "error")]
    findings = [r["id"] for r in records if r.get("status") == "xfailed"]
    return {"gate_claims": len(gate), "failed": failed, "findings_not_holding": findings,
            "summary": (f"{len(failed)} failed of {len(records)} claims "
                        f"({len(gate)} gate claims); {len(findings)} finding(s) that do not "
                        "hold are reported, not failed")}
