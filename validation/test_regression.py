"""regression.drift: every claim recorded so far against a stored baseline.

Runs after every other validation test (``pytest_collection_modifyitems`` in
conftest moves this file last), reads the claims the plugin has recorded, and
compares their status and figures with ``--baseline FILE`` under the tolerances
of :data:`pmt_core.report.regression.TOLERANCES`. Any drift fails this test, hence the run.
"""

from __future__ import annotations

import pytest

from pmt_core.report.regression import (
    BaselineError,
    compare,
    load_baseline,
    run_context,
    tolerance_for,
)


def test_no_drift_from_baseline(pytestconfig, request, claim, recorded_claims, run_state):
    path = pytestconfig.getoption("--baseline")
    c = claim("regression.drift",
              "Every claim's status and figures match the baseline within their tolerance",
              threshold=0, unit="drifts (figures moved, statuses changed, claims missing)")
    if path is None:
        pytest.skip("no --baseline FILE given: nothing to compare with "
                    "(make one with --update-baseline FILE)")
    try:
        baseline = load_baseline(path)
    except BaselineError as exc:
        pytest.fail(str(exc), pytrace=False)
    context = run_context({
        "profile": pytestconfig.getoption("--profile"), "device": run_state.device,
        "dataset": run_state.dataset or {"source": pytestconfig.getoption("--dataset")},
        "environment": {"seed": pytestconfig.getoption("--seed")},
    })
    selected = [item.nodeid for item in request.session.items]
    result = compare(baseline, recorded_claims(), context=context, selected_tests=selected)
    run_state.regression = result.to_dict() | {"baseline": str(path)}

    c.measured = len(result.drifts)
    base = result.baseline_context
    c.detail = (
        f"Baseline {path} (profile {base.get('profile')}, seed {base.get('seed')}, "
        f"{base.get('n_examples')} examples, device {base.get('device')}, commit "
        f"{base.get('git_commit')}). {result.summary()}."
        + (f" Not run here (tests not selected): {', '.join(result.not_run)}."
           if result.not_run else "")
        + "".join(f"\n- {d.describe()}" for d in result.drifts)
    )
    if result.drifts:
        c.table([{"claim": d.claim, "what": d.kind, "figure": d.key, "baseline": d.baseline,
                  "this run": d.current, "tolerance": d.tolerance} for d in result.drifts],
                "What moved")
    # The tolerances applied to this run's figures, so the report shows its own yardstick.
    rules = {}
    for record in recorded_claims():
        for key in (baseline["claims"].get(record["id"]) or {}).get("figures", {}):
            rule = tolerance_for(record["id"], key)
            rules.setdefault((rule.claims, rule.figures), rule)
    c.table([{"claims": r.claims, "figures": r.figures, "tolerance": r.tolerance.describe(),
              "why": r.reason} for r in rules.values()],
            "Tolerances applied (pmt_core.report.regression.TOLERANCES)")
    if result.drifts:
        pytest.fail(result.summary() + ":\n" + "\n".join(d.describe() for d in result.drifts),
                    pytrace=False)
