"""The HTML report: every claim present, nothing fetched, Table 1, links, workflow lint."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from pmt_core.figures.plots import figure_to_data_uri
from pmt_core.report.render import (
    PAPER_VS_CODE,
    format_value,
    render_html,
    table1,
    to_jsonable,
    verdict,
    verdict_class,
    write_report,
)

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "gpu-validation.yml"


def _claim(claim_id, status="passed", measured=0.5, **extra):
    return {"id": claim_id, "title": f"title of {claim_id}", "status": status,
            "measured": measured, "threshold": 0.4, "paper": None, "unit": "fraction",
            "detail": "", "group": claim_id.split(".")[0], "figures": [], "tables": [],
            "test": f"validation/test_x.py::{claim_id}", **extra}


def sample_report(regression=None) -> dict:
    """A small report in the validation.json contract, with one figure and one table."""
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([1, 2], [3, 4])
    ax.set_xlabel("modulation (Hz)")
    claims = [
        _claim("data.no_shortcut", measured=0.21),
        _claim("accuracy.s1s2.per_class", measured={"trill": 0.95, "tremolo": 1.0},
               paper={"trill": 0.9856, "tremolo": 0.998}),
        _claim("accuracy.s1.per_class", status="failed",
               measured={"trill": 0.5, "tremolo": 0.7}, paper={"trill": 0.7033, "tremolo": 0.9223},
               longrepr="AssertionError: <trill> below"),
        _claim("relevance.kurtosis_contrast", measured={"epsilon mean": 3.0},
               figures=[{"src": figure_to_data_uri(fig), "caption": "kurtosis <per rule>"}],
               tables=[{"caption": "t", "columns": ["a", "b"], "rows": [{"a": 1, "b": None}]}]),
        _claim("scattering.shape", measured={"paths": 1200}),
        _claim("lrp.canonizer", measured=1e-5),
        _claim("regression.drift", status="skipped", measured=None),
    ]
    return {
        "profile": "ci", "device": "cpu",
        "dataset": {"source": "synthetic", "n_examples": 10, "per_class": {"trill": 5},
                    "per_split": {"test": 10}, "n_ignored": None},
        "versions": {"torch": "2.x"}, "timings_s": {"features": 3.0, "total": 10.0},
        "environment": {"seed": 0, "git_commit": "abc123", "command": "pytest validation",
                        "profile": "ci", "device": "cpu"},
        "paper_vs_code": PAPER_VS_CODE, "regression": regression, "claims": claims,
    }


class _Collector(HTMLParser):
    """Collect ids, hrefs, resource URLs, inline styles and scripts of a page."""

    def __init__(self):
        super().__init__()
        self.ids, self.hrefs, self.sources, self.scripts = set(), [], [], []
        self.styles, self._in_style, self.text = [], False, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if "href" in attrs:
            self.hrefs.append(attrs["href"])
        for name in ("src", "srcset", "data", "poster", "background"):
            if attrs.get(name):
                self.sources.append(attrs[name])
        if attrs.get("style"):
            self.styles.append(attrs["style"])
        if tag == "script":
            self.scripts.append(attrs)
        if tag == "link":
            self.sources.append(attrs.get("href", ""))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)
        self.text.append(data)


def parse(html: str) -> _Collector:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector


def assert_self_contained(html: str) -> _Collector:
    """Fail if the page would fetch anything: external src/href, <script src>, url(), @import."""
    page = parse(html)
    assert not [s for s in page.sources if not s.startswith("data:")], page.sources
    external = [h for h in page.hrefs if re.match(r"^\s*(https?:|//|file:)", h, re.I)]
    assert not external, external
    assert not [s for s in page.scripts if s.get("src")]
    for css in page.styles:
        assert "@import" not in css
        assert not re.search(r"url\(\s*['\"]?(?!data:)", css), css
    return page


def test_every_claim_appears_and_links_resolve():
    report = sample_report()
    html = render_html(report)
    page = assert_self_contained(html)
    for c in report["claims"]:
        assert c["id"] in page.ids, c["id"]
        assert f"#{c['id']}" in page.hrefs
    internal = [h[1:] for h in page.hrefs if h.startswith("#")]
    assert set(internal) <= page.ids, set(internal) - page.ids


def test_escaping_and_verdict_first():
    html = render_html(sample_report())
    assert "kurtosis &lt;per rule&gt;" in html and "<per rule>" not in html
    assert "AssertionError: &lt;trill&gt; below" in html
    # the verdict comes before every section
    assert html.index('id="verdict"') < html.index('id="claims"') < html.index('id="group-data"')
    assert "1 claim(s) do not hold" in html


def test_sections_in_audit_order():
    html = render_html(sample_report())
    order = ["claims", "group-data", "data-summary", "group-accuracy", "group-relevance",
             "group-scattering", "group-lrp", "group-regression", "paper-vs-code", "timings",
             "environment"]
    positions = [html.index(f'id="{name}"') for name in order]
    assert positions == sorted(positions)
    for needle in ("abc123", "pytest validation", "2.x"):
        assert needle in html


def test_table1_beside_paper():
    rows = table1(sample_report()["claims"])
    assert [r["class"] for r in rows] == ["trill", "tremolo", "macro (mean of classes)"]
    assert rows[0] == {"class": "trill", "s1": 0.5, "s1 paper": 0.7033, "s1s2": 0.95,
                       "s1s2 paper": 0.9856}
    assert rows[-1]["s1s2"] == pytest.approx(0.975)
    assert 'id="table1"' in render_html(sample_report())
    assert table1([_claim("data.x")]) == []


def test_paper_vs_code_rows_link_their_claims():
    html = render_html(sample_report())
    section = html[html.index('id="paper-vs-code"'):html.index('id="timings"')]
    assert 'href="#accuracy.s1.per_class"' in section
    assert 'href="#lrp.canonizer"' in section
    assert 'href="#scattering.shape"' in section
    # every row names at least one claim id prefix, and says what the choice does
    assert all(row["claims"] and row["effect"] for row in PAPER_VS_CODE)


def test_drift_is_flagged_in_the_report():
    regression = {"baseline": "base.json", "summary": "1 drift(s) in 1 of 6 compared claims",
                  "drifted_claims": ["data.no_shortcut"], "drifts": []}
    html = render_html(sample_report(regression))
    assert "base.json" in html and "1 drift(s)" in html
    row = html[html.index('href="#data.no_shortcut"'):][:200]
    assert 'class="drift"' in row


def test_write_report_round_trip(tmp_path):
    report = sample_report()
    report["claims"][0]["measured"] = float("nan")
    json_path, html_path = write_report(report, tmp_path)
    data = json.loads(json_path.read_text())
    assert data["claims"][0]["measured"] is None
    assert {c["id"] for c in data["claims"]} <= parse(html_path.read_text()).ids


def test_helpers():
    assert to_jsonable({"a": float("inf")}) == {"a": None}
    assert format_value({"x": 0.123456}) == "x: 0.123"
    assert format_value(None) == "—"
    assert verdict([{"status": "passed"}]) == "All claims hold (1 passed)."
    known = verdict([{"status": "passed"}, {"status": "xfailed"}])
    assert known.startswith("No new failure; 1 claim(s) known not to hold")
    assert verdict([{"status": "failed"}, {"status": "xfailed"}]).startswith(
        "1 claim(s) do not hold, 1 more known not to")
    assert verdict_class([{"status": "passed"}]) == "ok"
    assert verdict_class([{"status": "xfailed"}, {"status": "passed"}]) == "known"
    assert verdict_class([{"status": "xfailed"}, {"status": "error"}]) == "bad"


REAL_REPORT = ROOT / "reports" / "validation.json"


@pytest.mark.skipif(not REAL_REPORT.is_file(), reason="no validation run in reports/ yet")
def test_real_run_renders_every_claim():
    report = json.loads(REAL_REPORT.read_text())
    page = assert_self_contained(render_html(report))
    missing = [c["id"] for c in report["claims"] if c["id"] not in page.ids]
    assert not missing


def _workflow_linter() -> list[str] | None:
    """Command that validates a GitHub workflow against its schema, if installed."""
    exe = shutil.which("check-jsonschema") or (
        str(Path(sys.executable).with_name("check-jsonschema"))
        if Path(sys.executable).with_name("check-jsonschema").exists() else None)
    if exe is None:
        return None
    return [exe, "--builtin-schema", "vendor.github-workflows"]


def test_gpu_workflow_is_valid():
    linter = _workflow_linter()
    if linter is None:
        pytest.skip("check-jsonschema is not installed (pip install check-jsonschema)")
    done = subprocess.run(linter + [str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_gpu_workflow_runs_the_suite_and_keeps_reports():
    text = WORKFLOW.read_text()
    for needle in ("self-hosted", "gpu", "--profile paper", "--device cuda",
                   "reports/baseline-paper.json", "actions/upload-artifact@v4",
                   "if: always()", "torch==2.14.1", "torchvision==0.29.1", "-e \".[test]\""):
        assert needle in text, needle
