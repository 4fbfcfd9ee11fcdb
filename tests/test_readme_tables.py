"""The README's measured tables are generated from a run, not retyped."""

import json
import re
from pathlib import Path

import pytest

from pmt_core.__main__ import main
from pmt_core.report.markdown import (
    BLOCKS,
    begin_marker,
    end_marker,
    readings,
    replace_block,
    scoreboard_table,
    snapshot,
)
from pmt_core.report.scoreboard import scoreboard

ROOT = Path(__file__).resolve().parents[1]
#: What the README's tables were generated from (python -m pmt_core readme).
SNAPSHOT = ROOT / "docs" / "readme-ci.json"


def _claim(cid, value, low, high, verdict="holds", op="at least", bar=0.1, figure="gain",
           name="gain"):
    return {"id": cid, "verdict": verdict, "detail": "", "key_figure": value,
            "interval": [low, high],
            "figures": {figure: {"value": value, "interval": [low, high], "se": 0.03, "df": 4,
                                 "method": "crossed t"}},
            "bounds": [{"figure": figure, "op": op, "value": bar, "name": name}]}


def _report():
    claims = [_claim("accuracy.s2_gain", 0.28, 0.21, 0.36),
              _claim("relevance.localisation.epsilon", 0.09, 0.06, 0.13, "does not hold",
                     bar=0.15, figure="lift", name="tracks the rate")]
    matrix = {"explainers": [{"name": "epsilon", "label": "LRP-eps", "null": False},
                             {"name": "input", "label": "input (null)", "null": True}],
              "rows": [{"family": "relevance.localisation",
                        "cells": {"input": {"measured": 0.29}, "epsilon": {"measured": 0.09}}}]}
    return {"format": "pmt-validation-report",
            "settings": {"profile": "ci", "seed": 0, "dataset": "synthetic"},
            "provenance": {"git_commit": "abcdef0123", "git_dirty": False, "cpu": "EPYC"},
            "scoreboard": scoreboard(claims, "epsilon"), "claims": claims, "matrix": matrix}


def test_the_scoreboard_has_one_row_per_statement_with_its_outcome_and_figure():
    report = _report()
    text = scoreboard_table(report)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + len(report["scoreboard"])  # the header, then the statements
    gain = next(r for r in rows if "gain 0.28 [0.21, 0.36], bar at least 0.1" in r)
    assert "**shown**" in gain
    assert "commit abcdef0, EPYC" in text
    assert re.search(r"Outcomes: 1 shown, .*\d+ not applicable\.", text)


def test_the_readings_table_has_a_row_per_reading_and_the_nulls_beside():
    text = readings(_report())
    assert "| localisation (at least 0.15) |" in text
    assert "| LRP-eps | does not hold 0.09 [0.06, 0.13] |" in text
    assert "| beside: energy_raw / input | n/a / 0.29 |" in text


def test_the_tables_of_a_snapshot_are_those_of_its_report():
    report = _report()
    kept = json.loads(json.dumps(snapshot(report)))
    for write in BLOCKS.values():
        assert write(kept) == write(report)


def test_a_block_is_replaced_between_its_markers_only():
    b, e = begin_marker("x"), end_marker("x")
    text = f"before\n{b}\nold table\n{e}\nafter\n"
    assert replace_block(text, "x", "new") == f"before\n{b}\nnew\n{e}\nafter\n"
    for bad in ("no markers", f"{e}\n{b}\n", f"{b}\n{b}\n{e}\n"):
        with pytest.raises(ValueError, match="markers of block 'x'"):
            replace_block(bad, "x", "new")


def _readme_with_markers(path):
    path.write_text("# x\n" + "".join(f"{begin_marker(n)}\nOLD TABLE\n{end_marker(n)}\ntext\n"
                                      for n in BLOCKS))


def test_the_command_rewrites_every_block_and_keeps_the_snapshot(tmp_path, capsys):
    report = tmp_path / "validation.json"
    report.write_text(json.dumps(_report()))
    readme, snap = tmp_path / "README.md", tmp_path / "snap.json"
    _readme_with_markers(readme)
    assert main(["readme", str(report), "--readme", str(readme), "--snapshot", str(snap)]) == 0
    kept = json.loads(snap.read_text())
    assert all(write(kept) in readme.read_text() for write in BLOCKS.values())
    assert "OLD TABLE" not in readme.read_text()
    assert main(["readme", str(report)]) == 0
    assert "| statement | outcome |" in capsys.readouterr().out


def test_the_command_refuses_missing_markers_and_a_foreign_snapshot(tmp_path, capsys):
    report = tmp_path / "validation.json"
    report.write_text(json.dumps(_report()))
    readme = tmp_path / "README.md"
    readme.write_text(f"# one block only\n{begin_marker('scoreboard')}\n"
                      f"{end_marker('scoreboard')}\n")
    before = readme.read_text()
    assert main(["readme", str(report), "--readme", str(readme)]) == 2
    assert readme.read_text() == before  # nothing written when one block is missing
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"mine": 1}')
    assert main(["readme", str(report), "--snapshot", str(foreign)]) == 2
    assert foreign.read_text() == '{"mine": 1}'
    assert main(["readme", str(tmp_path / "missing.json")]) == 2
    assert "error:" in capsys.readouterr().err


def test_the_readme_tables_are_those_generated_from_its_snapshot():
    # one home for the measured figures: docs/readme-ci.json keeps what the
    # README's tables were made from
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    kept = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    for name, write in BLOCKS.items():
        block = text.split(begin_marker(name))[1].split(end_marker(name))[0].strip("\n")
        assert block == write(kept), (
            f"the README's {name} block is not generated from {SNAPSHOT.name}: python -m "
            "pmt_core readme reports/validation.json --readme README.md --snapshot "
            "docs/readme-ci.json")
