"""The regression gate: spread-aware tolerances, verdict changes, context, baselines."""

import json
from types import SimpleNamespace

import pytest

from pmt_core.report import regression
from pmt_core.report.regression import (
    FORMAT_VERSION,
    BaselineError,
    Tolerance,
    allowed_shift,
    compare,
    load_baseline,
    make_baseline,
    write_baseline,
)


@pytest.fixture(autouse=True)
def declared(monkeypatch):
    """Stand-in for the claim registry: ``declared[claim_id] = {pattern: Tolerance}``.

    Keeps these tests about the comparison, not about what the claim modules
    declare today (lrp.canonizer's tolerance is due to become ``bar``).
    """
    tolerances: dict = {}
    monkeypatch.setattr(regression, "_specs", lambda: {
        cid: SimpleNamespace(tolerances=tol) for cid, tol in tolerances.items()})
    return tolerances


def _figure(value, spread=None, replicates=None, low=None, high=None):
    return {"value": value, "interval": [low, high], "method": "t", "n": 10,
            "replicates": [value] * (replicates or 0), "spread": spread}


def _report(claims, seed=0, replicates=5, n_examples=600):
    return {"profile": "ci", "device": "cpu", "replicates": replicates,
            "settings": {"seed": seed, "perturb": "none"},
            "dataset": {"source": "synthetic", "n_examples": n_examples},
            "provenance": {"git_commit": "abc", "git_dirty": False}, "claims": claims}


def _claim(claim_id, verdict="holds", bounds=(), decided=True, **figures):
    return {"id": claim_id, "verdict": verdict, "status": "passed", "figures": figures,
            "decided_by_profile": decided,
            "bounds": [{"figure": f, "op": op, "value": v, "name": f} for f, op, v in bounds]}


def test_spread_sets_the_allowed_shift():
    old = {"value": 0.70, "spread": 0.05, "replicates": 5}
    # SE sqrt(2 x 0.05^2 / 5) = 0.0316, df 8: t at 6.3e-5 is 7.60, so 0.240
    assert allowed_shift("hit rate", old, {"value": 0.93, "spread": 0.05, "replicates": 5})[0]
    ok, rule = allowed_shift("hit rate", old, {"value": 0.95, "spread": 0.05, "replicates": 5})
    assert not ok and rule.startswith("7.6 x replicate SE (0.24)")
    # no spread: what rounding moves a deterministic figure (relative 1e-3)
    assert allowed_shift("median", {"value": 0.05}, {"value": 0.05002})[0]
    assert not allowed_shift("median", {"value": 0.05}, {"value": 0.051})[0]


def test_p_values_and_rounding_level_figures_compare_in_decades():
    assert allowed_shift("Wilcoxon p", {"value": 1e-5}, {"value": 5e-5})[0]
    assert not allowed_shift("combined p", {"value": 0.0087}, {"value": 0.1})[0]
    assert allowed_shift("max relative error", {"value": 2e-15}, {"value": 9e-15})[0]
    assert not allowed_shift("max relative error", {"value": 2e-15}, {"value": 0.13})[0]
    assert not allowed_shift("x", {"value": None}, {"value": 1.0})[0]


def test_tolerance_kinds():
    assert Tolerance("octave", 0.25).allows(7.5, 8.5)
    assert not Tolerance("octave", 0.25).allows(7.5, 30.0)
    assert Tolerance("exact").allows(3, 3) and not Tolerance("exact").allows(3, 4)
    with pytest.raises(ValueError):
        Tolerance("percent", 1)


def test_compare_flags_verdicts_figures_context_and_missing_claims():
    base = make_baseline(_report([
        _claim("a.one", hit=_figure(0.7, 0.02, 5)),
        _claim("a.two", verdict="holds", p=_figure(0.001)),
        _claim("a.gone", x=_figure(1.0)),
        _claim("regression.drift", x=_figure(0)),
    ]))
    assert "regression.drift" not in base["claims"]
    same = compare(base, _report([_claim("a.one", hit=_figure(0.71, 0.02, 5)),
                                  _claim("a.two", p=_figure(0.002)),
                                  _claim("a.gone", x=_figure(1.0))]))
    assert same.drifts == [] and same.figures_compared == 3
    moved = compare(base, _report([
        _claim("a.one", verdict="inconclusive", hit=_figure(0.9, 0.02, 5)),
        _claim("a.two", verdict="inconclusive", p=_figure(0.001)),
        _claim("a.new"),
    ], seed=1))
    kinds = sorted((d.claim, d.kind) for d in moved.drifts)
    # a.two's verdict flipped with its figure within rounding: drift all the same
    assert kinds == [("(run)", "context"), ("a.gone", "missing claim"), ("a.new", "new claim"),
                     ("a.one", "figure"), ("a.one", "verdict"), ("a.two", "verdict")]
    assert moved.notes == []
    assert moved.verdict_changes == [
        {"claim": "a.one", "baseline": "holds", "current": "inconclusive", "drift": True,
         "decided_by_profile": True},
        {"claim": "a.two", "baseline": "holds", "current": "inconclusive", "drift": True,
         "decided_by_profile": True}]
    not_run = compare(base, _report([_claim("a.one", hit=_figure(0.7, 0.02, 5))]),
                      selected={"a.one"})
    assert sorted(not_run.not_run) == ["a.gone", "a.two"] and not not_run.drifts


def test_baseline_round_trip_and_errors(tmp_path):
    report = _report([_claim("a.one", hit=_figure(0.7, 0.02, 5))])
    path = write_baseline(report, tmp_path / "b.json")
    loaded = load_baseline(path)
    assert loaded["format_version"] == FORMAT_VERSION
    assert loaded["claims"]["a.one"]["figures"]["hit"]["spread"] == 0.02
    (tmp_path / "r.json").write_text(json.dumps(report))
    assert load_baseline(tmp_path / "r.json")["claims"].keys() == {"a.one"}
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(BaselineError, match="cannot read"):
        load_baseline(tmp_path / "bad.json")
    with pytest.raises(BaselineError, match="no baseline"):
        load_baseline(tmp_path / "none.json")
    old = dict(loaded, format_version=1)
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(BaselineError, match="version 1"):
        load_baseline(tmp_path / "old.json")


def test_a_claims_declared_tolerance_overrides_the_default_rule(declared):
    # A decade tolerance on a float32 logit shift: a move from 1.59e-5 to 1.65e-5
    # (two runs, one seed) is rounding, 1.6e-5 -> 1e-3 is not (no bound here).
    declared["lrp.canonizer"] = {"max relative logit shift": Tolerance("decade", 0.5)}

    def record(shift):
        return {"id": "lrp.canonizer", "verdict": "holds", "status": "passed",
                "figures": {"max relative logit shift": _figure(shift),
                            "batch norms merged": _figure(3)}}

    base = make_baseline(_report([record(1.594e-5)]))
    assert not compare(base, _report([record(1.653e-5)])).drifts
    moved = compare(base, _report([record(1e-3)]))
    assert [d.key for d in moved.drifts] == ["max relative logit shift"]


def test_a_rounding_level_figure_under_a_bar_is_held_by_the_bar_only():
    # A reference error of 3.4e-14 on one CPU is 3.6e-12 on another: a hundredfold,
    # decades apart, and nothing changed. Its bar (at most 1e-6) holds it.
    def record(error, verdict="holds"):
        return _claim("lrp.reference_match.epsilon", verdict,
                      bounds=[("max relative error", "at most", 1e-6)],
                      **{"max relative error": _figure(error)})

    base = make_baseline(_report([record(3.4e-14)]))
    same = compare(base, _report([record(3.6e-12)]))
    assert same.drifts == [] and same.figures_compared == 0
    assert same.held_by_bar == ["lrp.reference_match.epsilon [max relative error]"]
    # Past the bar it is no longer rounding-level, and the claim's verdict moves too.
    broken = compare(base, _report([record(0.13, "does not hold")]))
    assert sorted(d.kind for d in broken.drifts) == ["figure", "verdict"]
    # Without a bar, the same figure is still compared, in decades.
    unbarred = make_baseline(_report([_claim("x.y", e=_figure(3.4e-14))]))
    assert [d.key for d in compare(unbarred, _report([_claim("x.y", e=_figure(3.6e-12))]))
            .drifts] == ["e"]


def test_a_declared_bar_tolerance_leaves_the_figure_to_its_bar(declared):
    declared["lrp.canonizer"] = {"max relative logit shift": Tolerance("bar")}
    assert Tolerance("bar").allows(1.6e-5, 9e-5) and Tolerance("bar").allows(None, 1.0)
    assert Tolerance("bar").describe() == "held by its bar"

    def record(shift):
        return _claim("lrp.canonizer", bounds=[("max relative logit shift", "at most", 1e-4)],
                      **{"max relative logit shift": _figure(shift)})

    base = make_baseline(_report([record(1.6e-5)]))
    result = compare(base, _report([record(6e-5)]))
    assert not result.drifts and result.held_by_bar == ["lrp.canonizer [max relative logit shift]"]


def test_a_verdict_change_with_unchanged_figures_is_drift():
    base = make_baseline(_report([_claim("a.one", "holds", hit=_figure(0.7, 0.02, 5))]))
    result = compare(base, _report([_claim("a.one", "inconclusive",
                                           hit=_figure(0.7, 0.02, 5))]))
    assert [(d.kind, d.baseline, d.current) for d in result.drifts] == [
        ("verdict", "holds", "inconclusive")]
    assert result.notes == []
    assert result.to_dict()["verdict_changes"] == [
        {"claim": "a.one", "baseline": "holds", "current": "inconclusive", "drift": True,
         "decided_by_profile": True}]


@pytest.mark.parametrize(("old", "new", "decided", "drift"), [
    ("holds", "inconclusive", True, True),
    ("inconclusive", "does not hold", True, True),
    ("holds", "inconclusive", False, False),
    ("inconclusive", "does not hold", False, False),
    ("holds", "does not hold", False, True),
    ("does not hold", "holds", False, True),
    ("holds", "not applicable", False, True),
    ("inconclusive", None, False, True),
    ("holds", "holds", False, False),
])
def test_which_verdict_changes_trip_the_gate(old, new, decided, drift):
    assert regression.verdict_change_is_drift(old, new, decided) is drift


def test_an_undecided_claims_move_to_inconclusive_is_listed_not_drift():
    base = make_baseline(_report([_claim("a.one", "holds", decided=False,
                                         hit=_figure(0.7, 0.02, 5))]))
    result = compare(base, _report([_claim("a.one", "inconclusive", decided=False,
                                           hit=_figure(0.7, 0.02, 5))]))
    assert not result.drifts
    assert result.verdict_changes == [{"claim": "a.one", "baseline": "holds",
                                       "current": "inconclusive", "drift": False,
                                       "decided_by_profile": False}]
    assert result.summary().startswith("no drift: 1 claims, 1 figures (1 verdict change(s)")


def test_a_bounded_figure_may_move_at_most_its_distance_to_the_bar():
    # Spread 0.05 over 5 replicates allows 0.240; the bar is 0.08 away.
    def record(value, bounded=True, decided=True):
        bounds = [("hit rate", "at least", 0.5)] if bounded else []
        return _claim("a.one", bounds=bounds, decided=decided,
                      **{"hit rate": _figure(value, 0.05, 5)})

    base = make_baseline(_report([record(0.58)]))
    near = compare(base, _report([record(0.51)]))
    assert not near.drifts
    moved = compare(base, _report([record(0.46)]))
    assert [d.key for d in moved.drifts] == ["hit rate"]
    assert "distance to its bar" in moved.drifts[0].tolerance
    # the spread rule alone lets the same move pass, and so does a claim the
    # profile is not sized to decide (its spread exceeds the distance by design)
    assert not compare(base, _report([record(0.46, bounded=False)])).drifts
    assert not compare(base, _report([record(0.46, decided=False)])).drifts
    # a within bound: the nearer end counts; an exact count keeps the rounding floor
    old = {"value": 3.0}
    assert allowed_shift("merged", old, {"value": 3.0}, bar_distance=0.0)[0]
    assert not allowed_shift("merged", old, {"value": 2.0}, bar_distance=0.0)[0]
    assert regression._bar_distance(0.3, regression._bars(
        [{"figure": "f", "op": "within", "value": [0.2, 0.9]}], "f")) == pytest.approx(0.1)


def test_the_cap_also_limits_a_declared_tolerance(declared):
    declared["a.one"] = {"shift": Tolerance("decade", 0.5)}

    def record(value):
        return _claim("a.one", bounds=[("shift", "at most", 1e-4)], shift=_figure(value))

    base = make_baseline(_report([record(6e-5)]))
    # decade 0.5 allows 6e-5 -> 1.8e-4 (past the bar); the cap, 4e-5, does not
    moved = compare(base, _report([record(1.1e-4)]))
    assert [d.key for d in moved.drifts] == ["shift"]
    assert moved.drifts[0].tolerance.startswith("decade 0.5, capped at 4e-05")


def test_summary_counts_drifts_claims_and_verdict_changes():
    base = make_baseline(_report([_claim("a.one", hit=_figure(0.7, 0.02, 5)),
                                  _claim("a.two", p=_figure(0.001))]))
    same = compare(base, _report([_claim("a.one", hit=_figure(0.7, 0.02, 5)),
                                  _claim("a.two", p=_figure(0.001))]))
    assert same.summary() == "no drift: 2 claims, 2 figures"
    moved = compare(base, _report([_claim("a.one", "inconclusive", hit=_figure(0.9, 0.02, 5)),
                                   _claim("a.two", "inconclusive", p=_figure(0.001))]))
    assert moved.summary() == "3 drift(s) in 2 claims; 2 verdict change(s)"
    assert moved.to_dict()["summary"] == moved.summary()
