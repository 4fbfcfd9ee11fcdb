"""Regression baselines: flattening, tolerances, drift detection, and the pytest claim."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pmt_core.explain.lrp import RULES
from pmt_core.report.regression import (
    TOLERANCES,
    BaselineError,
    Tolerance,
    compare,
    flatten_figures,
    load_baseline,
    make_baseline,
    run_context,
    tolerance_for,
    write_baseline,
)

ROOT = Path(__file__).resolve().parents[1]


def _claim(claim_id, measured, status="passed", test=None):
    return {"id": claim_id, "status": status, "measured": measured,
            "test": test or f"validation/test_x.py::{claim_id}"}


def _report(claims, **context):
    return {"profile": context.get("profile", "ci"), "device": "cpu",
            "dataset": {"source": "synthetic", "n_examples": 595},
            "environment": {"seed": 0, "git_commit": "abc"}, "claims": claims}


CLAIMS = [
    _claim("scattering.shape", {"first_order": 74, "paths": 1200, "frames": 32}),
    _claim("accuracy.s1s2.per_class", {"trill": 0.95, "tremolo": 1.0}),
    _claim("lrp.reference_match.epsilon", 2.3e-15),
    _claim("sanity.deletion.epsilon", {"AOPC ratio": 2.0, "Wilcoxon p": 1e-9}),
    _claim("relevance.peak_modulation.epsilon", {"trill": 7.5, "vibrato": None}),
    _claim("regression.drift", 0, status="skipped"),
]


def test_flatten_figures():
    assert flatten_figures(0.5) == {"measured": 0.5}
    assert flatten_figures(None) == {"measured": None}
    assert flatten_figures({"a": {"b": 1, "c": [2, 3]}, "d": "x"}) == {
        "a.b": 1, "a.c[0]": 2, "a.c[1]": 3, "d": "x"}


@pytest.mark.parametrize(("tolerance", "old", "new", "ok"), [
    (Tolerance("exact"), 1200, 1200, True),
    (Tolerance("exact"), 1200, 1199, False),
    (Tolerance("abs", 0.05), 0.90, 0.949, True),
    (Tolerance("abs", 0.05), 0.90, 0.951, False),
    (Tolerance("rel", 0.1), 2.0, 2.19, True),
    (Tolerance("rel", 0.1), 2.0, 1.79, False),
    (Tolerance("decade", 1.0, floor=1e-13), 2e-15, 9e-14, True),   # both rounding
    (Tolerance("decade", 1.0, floor=1e-13), 2e-15, 3e-12, False),  # 30x the floor
    (Tolerance("decade", 1.0), 1e-9, 1e-8, True),
    (Tolerance("octave", 0.25), 7.5, 8.8, True),
    (Tolerance("octave", 0.25), 7.5, 10.7, False),
    (Tolerance("abs", 1.0), None, 0.5, False),   # became non-finite / finite
    (Tolerance("abs", 1.0), None, None, True),
    (Tolerance("abs", 1.0), "a", "b", False),
])
def test_tolerance_kinds(tolerance, old, new, ok):
    assert tolerance.allows(old, new) is ok


def test_tolerance_table():
    assert tolerance_for("scattering.shape", "paths").tolerance == Tolerance("exact")
    assert tolerance_for("accuracy.s1.per_class", "trill").tolerance == Tolerance("abs", 0.05)
    assert tolerance_for("lrp.reference_match.epsilon", "measured").tolerance.kind == "decade"
    assert tolerance_for("sanity.deletion.epsilon", "Wilcoxon p").tolerance.kind == "decade"
    assert tolerance_for("sanity.deletion.epsilon", "AOPC ratio").tolerance.kind == "rel"
    assert tolerance_for("something.new", "x").claims == "*"
    assert all(rule.reason for rule in TOLERANCES)
    assert (TOLERANCES[-1].claims, TOLERANCES[-1].figures) == ("*", "*")


def _suite_claim_ids() -> set[str]:
    """Claim ids the validation suite records (f-string parts expanded)."""
    ids = set()
    for source in (ROOT / "validation").glob("test_*.py"):
        for raw in re.findall(r'claim\(\s*f?"([a-z0-9_.{}]+)"', source.read_text()):
            for rule in RULES:
                for kind in ("s1", "s1s2"):
                    ids.add(raw.replace("{rule}", rule).replace("{kind}", kind))
    return ids


def test_every_suite_claim_has_its_own_tolerance():
    ids = _suite_claim_ids()
    assert "accuracy.s1.per_class" in ids and "lrp.conservation.epsilon" in ids
    fallback = [cid for cid in ids if tolerance_for(cid, "a figure").claims == "*"
                and not cid.startswith("regression.")]
    assert not fallback, f"add a row to pmt_core.report.regression.TOLERANCES for {fallback}"


def test_make_write_load_round_trip(tmp_path):
    report = _report(CLAIMS)
    baseline = make_baseline(report)
    assert "regression.drift" not in baseline["claims"]
    stored = baseline["claims"]["accuracy.s1s2.per_class"]
    assert stored["figures"] == {"trill": 0.95, "tremolo": 1.0}
    assert stored["tolerances"]["trill"] == "abs 0.05"
    assert baseline["context"] == run_context(report)
    path = write_baseline(report, tmp_path / "b.json")
    assert load_baseline(path)["claims"] == baseline["claims"]
    # a validation.json serves as a baseline too
    (tmp_path / "validation.json").write_text(json.dumps(report))
    assert load_baseline(tmp_path / "validation.json")["claims"] == baseline["claims"]


@pytest.mark.parametrize("content", [None, "not json", '{"format": "other"}', "[1, 2]"])
def test_load_baseline_errors(tmp_path, content):
    path = tmp_path / "b.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BaselineError):
        load_baseline(path)


def test_identical_run_has_no_drift():
    report = _report(CLAIMS)
    result = compare(make_baseline(report), CLAIMS, context=run_context(report))
    assert result.drifts == [] and result.compared == 5
    assert result.summary().startswith("no drift")


def test_drift_kinds_are_reported():
    baseline = make_baseline(_report(CLAIMS))
    run = json.loads(json.dumps(CLAIMS))
    run[1]["measured"]["trill"] = 0.80          # accuracy moved by 0.15 > abs 0.05
    run[1]["measured"]["tremolo"] = 0.98        # within tolerance
    run[2]["status"] = "failed"                 # status change
    run[3]["measured"]["Wilcoxon p"] = 2e-9     # p within a decade
    run[4]["measured"]["vibrato"] = 6.0         # was NaN (None)
    del run[0]                                  # scattering.shape vanished though its test ran
    run.append(_claim("data.new_claim", 1.0))
    result = compare(baseline, run, context={"profile": "paper", "seed": 0,
                                             "dataset": "synthetic", "n_examples": 595})
    found = {(d.claim, d.kind, d.key) for d in result.drifts}
    assert found == {
        ("(run)", "context", "profile"),
        ("accuracy.s1s2.per_class", "figure", "trill"),
        ("lrp.reference_match.epsilon", "status", ""),
        ("relevance.peak_modulation.epsilon", "figure", "vibrato"),
        ("scattering.shape", "missing claim", ""),
        ("data.new_claim", "new claim", ""),
    }
    text = "\n".join(d.describe() for d in result.drifts)
    assert "accuracy.s1s2.per_class [trill]: figure 0.95 -> 0.8 (tolerance abs 0.05)" in text
    assert "passed -> failed" in text
    assert result.drifted_claims[0] == "(run)"
    assert json.dumps(result.to_dict())  # JSON-able for the report


def test_claims_of_unselected_tests_are_not_run_not_drift():
    baseline = make_baseline(_report(CLAIMS))
    run = [c for c in CLAIMS if c["id"] != "scattering.shape"]
    selected = [c["test"] for c in run]
    result = compare(baseline, run, selected_tests=selected)
    assert result.drifts == [] and result.not_run == ["scattering.shape"]


_FAKE_CLAIMS = '''
import os


def test_fake_claims(claim):
    c = claim("data.fake_fraction", "a fake fraction", threshold=0.0)
    c.measured = float(os.environ["PMT_FAKE_VALUE"])
    c2 = claim("scattering.fake_count", "a fake count")
    c2.measured = {"paths": 1200}
'''


@pytest.mark.slow
def test_regression_claim_runs_last_and_fails_the_run_on_drift(tmp_path):
    # A copy of the plugin, the regression test and a claim file named to sort after it.
    suite = tmp_path / "validation"
    suite.mkdir()
    for name in ("conftest.py", "known_failures.py", "test_regression.py", "__init__.py"):
        shutil.copy(ROOT / "validation" / name, suite / name)
    (suite / "test_zz_fake_claims.py").write_text(_FAKE_CLAIMS)

    def run(value, *options):
        env = {**os.environ, "PMT_FAKE_VALUE": str(value), "PMT_CACHE_DIR": "off"}
        return subprocess.run(
            [sys.executable, "-m", "pytest", "validation", "-p", "no:cacheprovider", "-q",
             "--report-dir", "reports", *options],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    first = run(0.50, "--update-baseline", "base.json")
    assert first.returncode == 0, first.stdout + first.stderr
    report = json.loads((tmp_path / "reports" / "validation.json").read_text())
    status = {c["id"]: c["status"] for c in report["claims"]}
    assert status["regression.drift"] == "skipped"
    assert "regression.drift" not in json.loads((tmp_path / "base.json").read_text())["claims"]

    same = run(0.51, "--baseline", "base.json")  # within abs 0.03
    assert same.returncode == 0, same.stdout + same.stderr

    moved = run(0.60, "--baseline", "base.json")
    assert moved.returncode == 1, moved.stdout + moved.stderr
    assert "drift  data.fake_fraction [measured]: figure 0.5 -> 0.6" in moved.stdout
    report = json.loads((tmp_path / "reports" / "validation.json").read_text())
    drift = next(c for c in report["claims"] if c["id"] == "regression.drift")
    assert drift["status"] == "failed" and drift["measured"] == 1
    assert report["regression"]["drifted_claims"] == ["data.fake_fraction"]
    assert 'class="drift"' in (tmp_path / "reports" / "validation.html").read_text()
