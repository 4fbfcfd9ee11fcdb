"""The report: JSON contract, self-contained HTML, verdict matrix first."""

import hashlib
import json
import re

import numpy as np
from matplotlib.figure import Figure

from pmt_core.report.build import verdict_matrix
from pmt_core.report.paper_vs_code import PAPER_VS_CODE
from pmt_core.report.records import save_plots, to_jsonable
from pmt_core.report.render import format_value, render_html, verdict_line, write_report
from pmt_core.report.scoreboard import scoreboard


def _cell(measured, verdict, null):
    return {"measured": measured, "interval": [measured - 0.1, measured + 0.1],
            "verdict": verdict, "null": null, "must_reject": null, "label": "L"}


def _record(claim_id, verdict="holds", status="passed", explainers=None, **extra):
    return {"id": claim_id, "title": "<b>title</b> & co", "group": claim_id.split(".")[0],
            "family": ".".join(claim_id.split(".")[:2]), "verdict": verdict, "status": status,
            "reason": f"{verdict}: x = 1", "bounds": [{"figure": "x", "op": "at least",
                                                      "value": 0.5, "name": "x", "why": "w",
                                                      "verdict": verdict}],
            "figures": {"x": {"value": 1.0, "interval": [0.8, 1.2], "method": "t", "n": 3,
                              "replicates": [1.0], "spread": None}},
            "measured": {"x": 1.0}, "key_figure": 1.0, "interval": [0.8, 1.2], "paper": None,
            "unit": "", "detail": "detail", "n": 3, "tables": [], "plots": [],
            "explainers": explainers, **extra}


def _report(claims):
    return {"profile": "ci", "device": "cpu", "replicates": 5,
            "settings": {"dataset": "synthetic", "profile": "ci", "seed": 0, "device": "cpu",
                         "perturb": "none", "replicates": 5},
            "dataset": {"source": "synthetic", "n_examples": 10, "per_class": {"trill": 10}},
            "provenance": {"git_commit": "abc", "git_dirty": True}, "versions": {"torch": "x"},
            "timings_s": {"data": 1.0, "total": 2.0}, "command": "pytest validation",
            "paper_vs_code": PAPER_VS_CODE, "matrix": verdict_matrix(claims),
            "paper_reading": "epsilon", "scoreboard": scoreboard(claims, "epsilon"),
            "regression": None, "claims": claims}


CELLS = {"epsilon": _cell(0.3, "holds", False), "energy_raw": _cell(0.2, "holds", True),
         "random": _cell(0.0, "does not hold", True)}
CLAIMS = [
    _record("relevance.localisation.epsilon", explainers=CELLS),
    _record("relevance.localisation.zplus_epsilon", verdict="does not hold", status="failed",
            explainers=CELLS),
    _record("accuracy.s2_gain", verdict="inconclusive", status="skipped"),
    _record("relevance.s1_share.epsilon", verdict="does not hold", status="xfailed",
            finding="finding: measured 0.4"),
]


def test_matrix_rows_are_families_and_nulls_come_last():
    matrix = verdict_matrix(CLAIMS)
    assert [r["family"] for r in matrix["rows"]] == ["relevance.localisation"]
    assert matrix["rows"][0]["claims"] == ["relevance.localisation.epsilon",
                                           "relevance.localisation.zplus_epsilon"]
    assert [e["name"] for e in matrix["explainers"]] == ["epsilon", "energy_raw", "random"]
    assert [e["null"] for e in matrix["explainers"]] == [False, True, True]


def test_verdict_line_counts_findings_apart():
    line = verdict_line(CLAIMS)
    assert line.startswith("1 gate claim(s) do not hold")
    assert "1 finding: does not hold" in line and "1 inconclusive" in line
    assert verdict_line([CLAIMS[0]]) == "All claims hold (1 holds)."
    assert verdict_line([CLAIMS[0], CLAIMS[3]]).startswith("The gate passes; 1 finding")


def test_html_opens_with_the_scoreboard_then_the_gate_and_escapes(tmp_path):
    html = render_html(to_jsonable(_report(CLAIMS)), tmp_path)
    verdict_at, matrix_at = html.index('id="verdict"'), html.index('id="matrix"')
    claims_at, board_at = html.index('id="claims"'), html.index('id="scoreboard"')
    assert board_at < verdict_at < matrix_at < claims_at
    assert "Relevance lands at each example" in html[board_at:verdict_at]
    assert "<b>title</b>" not in html and "&lt;b&gt;title&lt;/b&gt;" in html
    # a null the family must reject is marked in the matrix
    assert re.search(r'class="c-holds null must"', html)
    assert "uncommitted changes" in html
    assert "http://" not in html and "https://" not in html  # fetches nothing


def test_write_report_embeds_plot_files(tmp_path):
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    plots = save_plots("relevance.localisation.epsilon", [(fig, "a line")], tmp_path)
    assert plots == [{"file": "figures/relevance.localisation.epsilon-0.png",
                      "caption": "a line", "wide": False}]
    wide = Figure(figsize=(12, 3))  # a multi-panel figure is shown at page width
    assert save_plots("x", [(wide, "panels")], tmp_path)[0]["wide"] is True
    report = _report([_record("relevance.localisation.epsilon", explainers=CELLS,
                              plots=plots)])
    json_path, html_path = write_report(report, tmp_path)
    data = json.loads(json_path.read_text())
    assert data["claims"][0]["plots"][0]["file"].endswith(".png")
    assert "base64" not in json_path.read_text()  # the JSON names files, it embeds none
    assert "data:image/png;base64," in html_path.read_text()
    assert not list(tmp_path.glob(".*tmp"))


def test_format_value():
    est = {"value": 0.5, "interval": [0.4, 0.6], "method": "Wilson"}
    assert format_value(est) == "0.5 [0.4, 0.6]"
    assert format_value({"value": 3.0, "interval": [3.0, 3.0], "method": "exact"}) == "3"
    assert format_value(None) == "—" and format_value(float("nan")) == "nan"
    assert format_value(np.float64(1 / 3)) == "0.333"


def test_scoreboard_says_when_a_statement_rests_on_estimated_rates():
    from pmt_core.data.rates import ESTIMATED_NOTE

    recorded = _record("relevance.localisation.epsilon")
    estimated = _record("relevance.localisation.epsilon",
                        detail=f"How. {ESTIMATED_NOTE} (pmt_core.data.rates): 9 of 10.")
    for record, expected in ((recorded, False), (estimated, True)):
        entry = next(e for e in scoreboard([record], "epsilon") if e["key"] == "localisation")
        assert entry["rates_estimated"] is expected
        assert ("rates estimated from the audio" in entry["sentence"]) is expected


def test_provenance_names_exact_versions_and_the_files_written(tmp_path):
    from importlib.metadata import version

    from pmt_core.infra.provenance import file_checksums, library_versions

    versions = library_versions()
    assert versions["zennit"] == version("zennit")  # was "0.5.x": zennit has no __version__
    assert versions["captum"] == version("captum")
    (tmp_path / "split.csv").write_text("path,technique\n")
    sums = file_checksums(tmp_path, ["split.csv", "models/s1s2.pt"])
    assert list(sums) == ["split.csv"]  # what is not there is left out
    assert sums["split.csv"] == hashlib.sha256(b"path,technique\n").hexdigest()


def test_a_bound_is_fragile_when_an_interval_end_is_within_the_spread_of_its_bar():
    from pmt_core.report.build import fragile_bounds

    def record(low, high, spread):
        return {"bounds": [{"figure": "lift", "name": "tracks the rate", "value": 0.15}],
                "figures": {"lift": {"value": (low + high) / 2, "interval": [low, high],
                                     "spread": spread}}}

    assert fragile_bounds(record(0.06, 0.149, 0.03)) == ["tracks the rate"]  # 0.001 off
    assert fragile_bounds(record(0.20, 0.30, 0.03)) == []  # 0.05 clear of the bar
    assert fragile_bounds(record(0.16, 0.30, 0.03)) == ["tracks the rate"]
    no_spread = record(0.06, 0.149, 0.03)
    no_spread["figures"]["lift"]["spread"] = None  # an exact figure: nothing to say
    assert fragile_bounds(no_spread) == []
