"""The scoreboard: the paper's statements, each shown, not shown, contradicted or undecidable.

It answers the report's question and is kept apart from the gate (the exit
status). Each statement of :data:`pmt_core.claims.paper.STATEMENTS` is asked of
the paper's own reading through one claim; its bounds give one-sided p-values
(:func:`pmt_core.claims.core.bound_p_values`: several bounds are an
intersection-union), and Holm's adjustment over the statements controls the
family-wise error of the whole scoreboard at 5 % (Holm 1979):

* **shown**: the statement's two-sided adjusted p is at most 0.05, on its side;
* **contradicted**: the same, on the other side;
* **not shown**: neither, although the run is sized to decide it (its power
  analysis reaches 80 % at the declared minimum effect, or the profile lists it);
* **undecidable at this size**: neither, and the run is too small; the entry says
  how many test examples (or replicates) would decide it;
* **not applicable**: the data lack what the statement needs (rates, pitch).
"""

from __future__ import annotations

import math

from pmt_core.claims.core import Bound, bound_p_values
from pmt_core.claims.paper import STATEMENTS
from pmt_core.data.rates import ESTIMATED_NOTE
from pmt_core.stats.intervals import Estimate
from pmt_core.stats.multiplicity import holm

SHOWN = "shown"
NOT_SHOWN = "not shown"
CONTRADICTED = "contradicted"
UNDECIDABLE = "undecidable at this size"
NOT_APPLICABLE = "not applicable"
OUTCOMES = (SHOWN, NOT_SHOWN, CONTRADICTED, UNDECIDABLE, NOT_APPLICABLE)
#: Family-wise error rate of the scoreboard.
ALPHA = 0.05


def _estimate(figure) -> Estimate | None:
    if isinstance(figure, int | float) and not isinstance(figure, bool):
        return Estimate(float(figure), float(figure), float(figure), "exact")
    if not isinstance(figure, dict) or figure.get("value") is None:
        return None
    low, high = (figure.get("interval") or [None, None])[:2]
    if low is None or high is None:
        return None
    return Estimate(float(figure["value"]), float(low), float(high),
                    figure.get("method") or "", figure.get("n"), (), figure.get("se"),
                    figure.get("df"), (), figure.get("confidence") or 0.95)


def _p_values(record: dict, names: tuple) -> tuple[float, float]:
    """(p that it holds is wrong, p that it fails is wrong) over the named bounds (IUT)."""
    passes, fails = [], []
    for b in record.get("bounds") or []:
        if b.get("name") not in names or b.get("value") is None:
            continue
        value = tuple(b["value"]) if isinstance(b["value"], list) else b["value"]
        bound = Bound(b["figure"], b["op"], value, b["name"])
        p_pass, p_fail = bound_p_values(_estimate((record.get("figures") or {})
                                                  .get(b["figure"])), bound, {})
        passes.append(p_pass)
        fails.append(p_fail)
    if not passes or not all(math.isfinite(p) for p in passes + fails):
        return math.nan, math.nan
    # every bound must hold (intersection-union); one failing is enough (Bonferroni)
    return max(passes), min(1.0, len(fails) * min(fails))


def scoreboard(records: list[dict], reading: str) -> list[dict]:
    """Return one entry per paper statement (module notes), in the declared order.

    Parameters
    ----------
    records : list of dict
        The run's claim records (:mod:`pmt_core.report.records`).
    reading : str
        The paper text's LRP reading (the explainer whose claims answer it).
    """
    by_id = {r["id"]: r for r in records}
    entries, p_two, sides = [], [], []
    for st in STATEMENTS:
        claim_id = st.claim.format(reading=reading)
        record = by_id.get(claim_id) or {}
        p_pass, p_fail = _p_values(record, st.bounds) if record else (math.nan, math.nan)
        p_two.append(min(1.0, 2 * min(p_pass, p_fail)) if math.isfinite(p_pass) else math.nan)
        sides.append(SHOWN if p_pass <= p_fail else CONTRADICTED)
        key = next((b for b in record.get("bounds") or [] if b.get("name") in st.bounds), None)
        figure = (record.get("figures") or {}).get(key["figure"]) if key else None
        entries.append({
            "key": st.key, "statement": st.text, "quote": st.quote, "claim": claim_id,
            "claim_verdict": record.get("verdict"), "reason": record.get("reason"),
            "figure_name": key["figure"] if key else None,
            "figure": figure.get("value") if isinstance(figure, dict) else figure,
            "interval": figure.get("interval") if isinstance(figure, dict) else None,
            "bar": f"{key['op']} {_fmt(key['value'])}" if key else None,
            "power": record.get("power"),
            "beside": {k[:-len(" (beside)")]: _rounded(v.get("value") if isinstance(v, dict)
                                                        else v)
                       for k, v in (record.get("figures") or {}).items()
                       if k.endswith(" (beside)")},
            "decided_by_profile": bool(record.get("decided_by_profile")),
            "rates_estimated": ESTIMATED_NOTE in (record.get("detail") or "")})
    adjusted = holm(p_two)
    for entry, p, side in zip(entries, adjusted, sides, strict=True):
        entry["p_adjusted"] = None if not math.isfinite(p) else float(p)
        verdict = entry["claim_verdict"]
        if verdict in (None, "not applicable") or not math.isfinite(p):
            entry["outcome"] = NOT_APPLICABLE
        elif p <= ALPHA:
            entry["outcome"] = side
        else:
            power = entry["power"] or {}
            sized = entry["decided_by_profile"] or bool(power.get("decided"))
            entry["outcome"] = NOT_SHOWN if sized else UNDECIDABLE
        entry["sentence"] = _sentence(entry)
    return entries


def _rounded(v):
    """``v``, with float64 rounding of an exact 0 (a sum of +-1e-18) shown as 0."""
    return 0.0 if isinstance(v, float) and abs(v) < 1e-12 else v


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


def figure_text(entry: dict) -> str:
    """Return ``name value [low, high], bar op value`` for an entry's key figure ("" if none)."""
    if entry.get("figure") is None:
        return ""
    interval = entry.get("interval")
    shown = (f" [{_fmt(interval[0])}, {_fmt(interval[1])}]"
             if interval and None not in interval else "")
    return f"{entry['figure_name']} {_fmt(entry['figure'])}{shown}, bar {entry['bar']}"


def caveats(entry: dict) -> str:
    """Return what qualifies the figure: the size that would decide it, estimated rates."""
    text = ""
    power = entry.get("power") or {}
    if entry["outcome"] == UNDECIDABLE and power:
        need = power.get("n_needed")
        text += (f"; {need} test examples would decide it" if need else
                 f"; {power.get('replicates_needed') or 'more'} replicates would decide it")
    if entry.get("rates_estimated"):
        text += "; rates estimated from the audio"
    return text


def beside_text(entry: dict) -> str:
    """Return the nulls' figures beside the statement's, ``name value, ...``."""
    return ", ".join(f"{k} {_fmt(v)}" for k, v in (entry.get("beside") or {}).items())


def _sentence(entry: dict) -> str:
    """One plain sentence: the statement, its outcome, the figure and its interval."""
    text = f"{entry['statement']}: {entry['outcome']}"
    if entry["figure"] is not None:
        text += f" ({figure_text(entry)})"
    text += caveats(entry)
    if entry["beside"]:
        text += "; beside it: " + beside_text(entry)
    return text + "."


def summary_line(entries: list[dict]) -> str:
    """Count the outcomes, e.g. ``2 shown, 1 contradicted, 5 undecidable at this size``."""
    counts = {o: sum(e["outcome"] == o for e in entries) for o in OUTCOMES}
    return ", ".join(f"{n} {o}" for o, n in counts.items() if n)
