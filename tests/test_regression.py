"""The regression gate: spread-aware tolerances, verdict changes, context, baselines."""

import json

import pytest

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


def _figure(value, spread=None, replicates=None, low=None, high=None):
    return {"value": value, "interval": [low, high], "method": "t", "n": 10,
            "replicates": [value] * (replicates or 0), "spread": spread}


def _report(claims, seed=0, replicates=5, n_examples=600):
    return {"profile": "ci", "device": "cpu", "replicates": replicates,
            "settings": {"seed": seed, "perturb": "none"},
            "dataset": {"source": "synthetic", "n_examples": n_examples},
            "provenance": {"git_commit": "abc", "git_dirty": False}, "claims": claims}


def _claim(claim_id, verdict="holds", **figures):
    return {"id": claim_id, "verdict": verdict, "status": "passed", "figures": figures}


def test_spread_sets_the_allowed_shift():
    old = {"value": 0.70, "spread": 0.05, "replicates": 5}
    # 4 x sqrt(2 x 0.05^2 / 5) = 0.126
    assert allowed_shift("hit rate", old, {"value": 0.80, "spread": 0.05, "replicates": 5})[0]
    assert not allowed_shift("hit rate", old, {"value": 0.85, "spread": 0.05,
                                               "replicates": 5})[0]
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
    assert kinds == [("(run)", "context"), ("a.gone", "missing claim"), ("a.new", "new claim"),
                     ("a.one", "figure"), ("a.one", "verdict")]
    # a.two's verdict flipped with its figure within rounding: a note, not drift
    assert [(d.claim, d.kind) for d in moved.notes] == [("a.two", "verdict")]
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


def test_a_claims_declared_tolerance_overrides_the_default_rule():
    # lrp.canonizer declares a decade tolerance on its float32 logit shift: a move
    # from 1.59e-5 to 1.65e-5 (two runs, one seed) is rounding, 1.6e-5 -> 1e-3 is not.
    def record(shift):
        return {"id": "lrp.canonizer", "verdict": "holds", "status": "passed",
                "figures": {"max relative logit shift": _figure(shift),
                            "batch norms merged": _figure(3)}}

    base = make_baseline(_report([record(1.594e-5)]))
    assert not compare(base, _report([record(1.653e-5)])).drifts
    moved = compare(base, _report([record(1e-3)]))
    assert [d.key for d in moved.drifts] == ["max relative logit shift"]
