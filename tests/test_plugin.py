"""The pytest plugin, driven with pytester: verdicts -> outcomes, gate vs findings, drift."""

import json

import pytest

pytest_plugins = ("pytester",)

CONFTEST = '''
import types
import pytest
from pmt_core.claims import core
from pmt_core.claims.core import AtLeast, Measurement, claim
from pmt_core.stats.intervals import Estimate, exact

FIGURES = {"good": exact(1.0), "bad": exact(-1.0), "open": Estimate(0.0, -1.0, 1.0, "t"),
           "crash": None}

for name in FIGURES:
    @claim(f"demo.{name}", title=f"demo {name}", bounds=[AtLeast("x", 0, name="x positive")])
    def _m(run, name=name):
        if name == "crash":
            raise TypeError("a bug, not a verdict")
        return Measurement(figures={"x": FIGURES[name]}, n=10)

@claim("demo.two", title="two bounds", bounds=[AtLeast("x", 0, name="first"),
                                               AtLeast("y", 0, name="second")])
def _two(run):
    return Measurement(figures={"x": exact(1.0), "y": exact(-1.0)})

@claim("demo.skip", title="no data", bounds=[AtLeast("x", 0)])
def _skip(run):
    return Measurement.skip("the data lack it")

@claim("demo.gate_bad", title="a broken mechanism", role="gate",
       bounds=[AtLeast("x", 0, name="x positive")])
def _gate(run):
    return Measurement(figures={"x": exact(-1.0)})

@claim("demo.decided_open", title="sized to decide", bounds=[AtLeast("x", 0)])
def _decided(run):
    return Measurement(figures={"x": Estimate(0.0, -1.0, 1.0, "t")}, n=10)

class FakeRun:
    timings = {}
    n_replicates = 1
    class profile:
        name = "smoke"
        @staticmethod
        def decides_claim(claim_id):
            return claim_id == "demo.decided_open"
    class data:
        class_names = ("a", "b")
        source = "synthetic"
    def __init__(self, settings):
        self.settings = settings
    def memo(self, key, fn):
        return fn()
    def computed(self, stage):
        return stage in self.__dict__

@pytest.fixture(scope="session")
def pmt_run(pmt_settings):
    return FakeRun(pmt_settings)
'''

TESTS = '''
import pytest

@pytest.mark.pmt_claims("demo")
def test_demo(claim_case, pmt_run, pmt_recorder):
    pmt_recorder.check(claim_case, pmt_run)
'''


@pytest.fixture
def project(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_demo=TESTS)
    return pytester


def _run(project, *args):
    return project.runpytest_subprocess("--profile", "smoke", "--report-dir", "reports",
                                        "-p", "no:cacheprovider", "-rfxXs", *args)


def test_verdicts_map_onto_outcomes(project):
    result = _run(project)
    outcomes = result.parseoutcomes()
    # good: passed; bad and two (findings that do not hold): xfailed; open, skip: skipped;
    # crash: failed (a bug, not a verdict); gate_bad: failed (a gate claim);
    # decided_open: failed (inconclusive where the profile must decide)
    assert outcomes == {"passed": 1, "failed": 3, "xfailed": 2, "skipped": 2}
    result.stdout.fnmatch_lines(["*finding: demo.bad*"], consecutive=False)
    result.stdout.fnmatch_lines(["*inconclusive at this size*"])
    result.stdout.fnmatch_lines(["*not applicable: the data lack it*"])
    result.stdout.fnmatch_lines(["*demo.crash*TypeError*"])
    result.stdout.fnmatch_lines(["*sized to decide this claim*"])
    assert result.ret == 1
    report = json.loads((project.path / "reports" / "validation.json").read_text())
    by_id = {c["id"]: c for c in report["claims"]}
    assert by_id["demo.bad"]["status"] == "xfailed" and by_id["demo.bad"]["role"] == "finding"
    assert by_id["demo.bad"]["verdict"] == "does not hold"
    assert by_id["demo.gate_bad"]["status"] == "failed"
    assert by_id["demo.open"]["verdict"] == "inconclusive"
    assert by_id["demo.crash"]["status"] == "failed" and by_id["demo.crash"]["verdict"] is None
    assert by_id["demo.two"]["verdict"] == "does not hold"
    assert report["gate"]["failed"] and "demo.bad" in report["gate"]["findings_not_holding"]
    provenance = report["provenance"]  # when, with what command, beside which files
    assert provenance["started_utc"] <= provenance["finished_utc"]
    assert report["command"].startswith("pytest ")
    assert provenance["artifacts"] == {}  # the fake run wrote no split or checkpoint


def test_findings_alone_keep_the_exit_status_zero(project):
    result = _run(project, "-k", "demo.bad or demo.two or demo.good")
    result.assert_outcomes(passed=1, xfailed=2, deselected=5)
    assert result.ret == 0


def test_inconclusive_can_fail_the_run(project):
    result = _run(project, "-k", "demo.open", "--inconclusive", "fail")
    result.assert_outcomes(failed=1, deselected=7)


def test_drift_fails_the_session_and_is_recorded(project):
    assert _run(project, "-k", "good or skip", "--update-baseline", "base.json").ret == 0
    base = json.loads((project.path / "base.json").read_text())
    base["claims"]["demo.good"]["figures"]["x"]["value"] = 5.0
    (project.path / "base.json").write_text(json.dumps(base))
    result = _run(project, "-k", "good or skip", "--baseline", "base.json")
    result.stdout.fnmatch_lines(["*drift*demo.good*x*5*->*1*"])
    report = json.loads((project.path / "reports" / "validation.json").read_text())
    drift = next(c for c in report["claims"] if c["id"] == "regression.drift")
    assert drift["verdict"] == "does not hold" and drift["key_figure"] == 1


def test_bad_options_are_one_usage_line(project):
    result = _run(project, "--seed", "-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--seed must lie in*"])
    (project.path / "afile").write_text("x")
    result = _run(project, "--report-dir", "afile")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_baseline_options_are_checked_before_any_work(project):
    # a baseline to compare with that is missing or not a baseline: one line, at once
    result = _run(project, "--baseline", "missing.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--baseline: no baseline file at missing.json*"])
    readme = project.path / "README.md"
    readme.write_text("the user's notes\n")
    result = _run(project, "--baseline", "README.md")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # the baseline to write replaces an earlier baseline only
    for target, says in (("README.md", "must end in .json"),
                         ("notes.json", "is not an earlier output of this kind"),
                         ("reports/validation.json", "is an input of this run")):
        if target == "notes.json":
            (project.path / target).write_text('{"mine": 1}')
        result = _run(project, "--update-baseline", target)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, target
        result.stderr.fnmatch_lines([f"*--update-baseline*{says}*"])
        assert not (project.path / "reports" / "validation.json").exists()
    assert readme.read_text() == "the user's notes\n"
    assert json.loads((project.path / "notes.json").read_text()) == {"mine": 1}
    # an earlier baseline may be replaced, and compared with in the same run
    assert _run(project, "-k", "good", "--update-baseline", "base.json").ret == 0
    result = _run(project, "-k", "good", "--baseline", "base.json",
                  "--update-baseline", "base.json")
    assert result.ret == 0


def test_a_run_never_writes_onto_its_own_inputs(tmp_path):
    from pmt_core.infra.checks import CheckError
    from pmt_core.pytest_plugin import check_run_outputs

    reports = tmp_path / "reports"
    reports.mkdir()
    manifest = reports / "split.csv"  # a manifest kept where the run writes its split
    manifest.write_text("path,technique\n")
    with pytest.raises(CheckError, match="is an input of this run"):
        check_run_outputs(reports, [manifest])
    with pytest.raises(CheckError, match="inside the input folder"):
        check_run_outputs(reports, [tmp_path])  # the data folder holds the reports
    check_run_outputs(reports, [tmp_path / "elsewhere.csv"])
    check_run_outputs(reports, [])
    assert manifest.read_text() == "path,technique\n"


def test_a_report_folder_belongs_to_one_run_at_a_time(project):
    import subprocess
    import sys

    from pmt_core.infra.atomic import LOCK_NAME

    reports = project.path / "reports"
    reports.mkdir()
    # another live process holds the folder
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pmt_core.infra.atomic import FolderLock; "
         f"FolderLock({str(reports)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = _run(project, "-k", "good")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stdout.fnmatch_lines([f"*being written by another run (process {holder.pid})*"])
        assert not (reports / "validation.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without cleaning up: the folder is free again
    assert (reports / LOCK_NAME).exists()
    assert _run(project, "-k", "good").ret == 0
    assert (reports / "validation.json").exists()


def test_a_run_replaces_the_earlier_runs_outputs_whole(project):
    from pmt_core.infra.atomic import STAGING_NAME

    reports = project.path / "reports"
    (reports / "models").mkdir(parents=True)
    (reports / "figures").mkdir()
    # an earlier run's outputs that this run does not write, and the user's own files
    (reports / "models" / "s1s2-r9.pt").write_bytes(b"old replicate")
    (reports / "figures" / "old-claim-0.png").write_bytes(b"old figure")
    (reports / "examples.csv").write_text("old records\n")
    (reports / "baseline-ci.json").write_text("{}")
    (reports / "models" / "mine.pt").write_bytes(b"the user's model")
    (reports / "notes.txt").write_text("mine")
    assert _run(project, "-k", "good").ret == 0
    assert (reports / "validation.json").exists() and (reports / "validation.html").exists()
    assert not (reports / "models" / "s1s2-r9.pt").exists()
    assert not (reports / "figures" / "old-claim-0.png").exists()
    assert not (reports / "examples.csv").exists()
    assert (reports / "baseline-ci.json").read_text() == "{}"
    assert (reports / "models" / "mine.pt").read_bytes() == b"the user's model"
    assert (reports / "notes.txt").read_text() == "mine"
    assert not (reports / STAGING_NAME).exists()  # published, nothing left behind


def test_a_stale_staging_folder_is_emptied_and_a_foreign_one_refused(project):
    from pmt_core.infra.atomic import STAGING_NAME, fresh_staging

    reports = project.path / "reports"
    staging = fresh_staging(reports)  # as a killed run leaves it
    (staging / "split.csv").write_text("half a run")
    assert _run(project, "-k", "good").ret == 0
    assert not staging.exists() and (reports / "validation.json").exists()
    (reports / STAGING_NAME).mkdir()  # not the suite's: no marker
    (reports / STAGING_NAME / "x.txt").write_text("someone's")
    result = _run(project, "-k", "good")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*is not this suite's staging folder*"])
    assert (reports / STAGING_NAME / "x.txt").read_text() == "someone's"
