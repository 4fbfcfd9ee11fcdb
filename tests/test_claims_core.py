"""The claim registry, bounds with directions, and verdicts from intervals."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmt_core.claims import core
from pmt_core.claims.catalogue import all_cases
from pmt_core.claims.core import (
    HOLDS,
    INCONCLUSIVE,
    NOT_APPLICABLE,
    NOT_HOLD,
    AtLeast,
    AtMost,
    Measurement,
    Within,
    evaluate,
)
from pmt_core.claims.evidence import Evidence
from pmt_core.stats.intervals import Estimate, exact


def est(value, low, high):
    return Estimate(value, low, high, "test")


finite = st.floats(-1e6, 1e6, allow_nan=False)


@given(finite, finite, finite)
def test_at_least_verdict_follows_the_interval(a, b, bar):
    low, high = sorted((a, b))
    verdict = AtLeast("x", bar).check(est((low + high) / 2, low, high))
    if low >= bar:
        assert verdict == HOLDS
    elif high < bar:
        assert verdict == NOT_HOLD
    else:
        assert verdict == INCONCLUSIVE


@given(finite, finite, finite)
def test_at_most_mirrors_at_least(a, b, bar):
    low, high = sorted((a, b))
    up = AtMost("x", bar).check(est(0, low, high))
    down = AtLeast("x", -bar).check(est(0, -high, -low))
    assert up == down


def test_within_and_exact_figures():
    assert Within("x", 1, 2).check(exact(1.5)) == HOLDS
    assert Within("x", 1, 2).check(exact(2.5)) == NOT_HOLD
    assert Within("x", 1, 2).check(est(1.9, 1.5, 2.4)) == INCONCLUSIVE
    # an exact NaN cannot pass; a NaN interval decides nothing
    assert AtLeast("x", 0).check(exact(math.nan)) == NOT_HOLD
    assert AtLeast("x", 0).check(est(1.0, math.nan, math.nan)) == INCONCLUSIVE


def test_bar_may_depend_on_the_run():
    bound = AtMost("accuracy", lambda c: 1 / c["n_classes"] + 0.1)
    assert bound.resolve({"n_classes": 5}) == pytest.approx(0.3)
    assert bound.check(exact(0.29), {"n_classes": 5}) == HOLDS
    assert "depends on the run" in bound.describe({})
    with pytest.raises(ValueError, match="operator"):
        core.Bound("x", "above", 1)


@pytest.fixture
def scratch_registry(monkeypatch):
    monkeypatch.setattr(core, "CLAIMS", {})
    return core.CLAIMS


def test_ids_are_computed_from_the_template(scratch_registry):
    @core.claim("demo.thing.{kind}", title="thing {kind}", params={"kind": ("a", "b")},
                bounds=[AtLeast("x", 0)])
    def thing(run, kind):
        return Measurement(figures={"x": exact(1 if kind == "a" else -1)})

    cases = all_cases("demo")
    assert [c.id for c in cases] == ["demo.thing.a", "demo.thing.b"]
    assert cases[0].title == "thing a"
    verdicts = [evaluate(c, Evidence(), context={}).verdict for c in cases]
    assert verdicts == [HOLDS, NOT_HOLD]


def test_registration_errors(scratch_registry):
    with pytest.raises(ValueError, match="group"):
        core.claim("a.b", title="", group="other")
    with pytest.raises(ValueError, match="template fields"):
        core.claim("a.{x}", title="")
    core.claim("a.b", title="")(lambda run: None)
    with pytest.raises(ValueError, match="already registered"):
        core.claim("a.b", title="")(lambda run: None)


def test_not_applicable_too_few_and_missing_figures(scratch_registry):
    @core.claim("demo.skip", title="", bounds=[AtLeast("x", 0)])
    def skip(run):
        return Measurement.skip("no rates")

    @core.claim("demo.few", title="", bounds=[AtLeast("x", 0)], min_examples=10)
    def few(run):
        return Measurement(figures={"x": exact(5)}, n=3)

    @core.claim("demo.typo", title="", bounds=[AtLeast("x", 0)])
    def typo(run):
        return Measurement(figures={"y": exact(5)})

    by_id = {c.id: c for c in all_cases("demo")}
    out = evaluate(by_id["demo.skip"], Evidence(), context={})
    assert (out.verdict, out.reason) == (NOT_APPLICABLE, "no rates")
    out = evaluate(by_id["demo.few"], Evidence(), context={})
    assert out.verdict == INCONCLUSIVE and "fewer than the 10" in out.reason
    with pytest.raises(KeyError, match="bound on 'x'"):
        evaluate(by_id["demo.typo"], Evidence(), context={})


def test_failing_bounds_are_named(scratch_registry):
    @core.claim("demo.two", title="", bounds=[AtLeast("x", 0, name="first"),
                                              AtMost("y", 1, name="second")])
    def two(run):
        return Measurement(figures={"x": exact(1), "y": exact(2)})

    out = evaluate(all_cases("demo")[0], Evidence(), context={})
    assert out.verdict == NOT_HOLD and out.failing_bounds == ("second",)
    assert "y = 2" in out.reason


def test_every_registered_claim_is_well_formed():
    cases = all_cases()
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    for case in cases:
        assert case.bounds, case.id
        assert case.id.split(".")[0] == case.spec.group
        assert case.spec.doc, f"{case.id}: the measurement function needs a docstring"
        names = [b.name for b in case.bounds]
        assert len(names) == len(set(names)), case.id


def test_a_family_is_holm_adjusted(monkeypatch):
    monkeypatch.setattr(core, "CLAIMS", {})
    # "a" alone is past its bar (z = 2.33, one-sided p 0.0099 < 0.025: the interval rule
    # holds it); Holm over four multiplies the second smallest p by 3 (0.03 > 0.025)
    values = {"a": 2.33, "b": 0.5, "c": 0.6, "d": 7.0}

    @core.claim("demo.{r}", title="", params={"r": tuple(values)},
                bounds=[AtLeast("x", 0.0, name="positive")])
    def fam(run, r):
        se, value = 1.0, values[r]
        return Measurement(figures={"x": Estimate(value, value - 1.96, value + 1.96, "t",
                                                  100, (), se, math.inf)})

    cases = {c.params["r"]: c for c in all_cases("demo")}
    a = evaluate(cases["a"], Evidence(), context={})
    assert a.multiplicity["family_size"] == 4 and a.multiplicity["method"] == "Holm"
    assert a.verdict == INCONCLUSIVE  # holds alone (low 0.37 > 0), not after Holm
    assert evaluate(cases["d"], Evidence(), context={}).verdict == HOLDS  # z = 7
    assert evaluate(cases["b"], Evidence(), context={}).verdict == INCONCLUSIVE


def test_roles_default_by_group(monkeypatch):
    monkeypatch.setattr(core, "CLAIMS", {})

    @core.claim("lrp.demo", title="", bounds=[AtLeast("x", 0)])
    def mech(run):
        return Measurement(figures={"x": exact(1)})

    @core.claim("relevance.demo", title="", bounds=[AtLeast("x", 0)])
    def finding(run):
        return Measurement(figures={"x": exact(1)})

    assert core.CLAIMS["lrp.demo"].role == core.GATE
    assert core.CLAIMS["relevance.demo"].role == core.FINDING
    with pytest.raises(ValueError, match="role"):
        core.claim("x.y", title="", role="maybe")
