"""The pytest plugin: claim tests from the registry, verdicts, report, regression gate.

Registered through the ``pytest11`` entry point (``pyproject.toml``), so any
``pytest`` in an environment with the package installed knows the options. A
test module asks for claims with a marker::

    pytestmark = pytest.mark.pmt_claims("relevance")

    def test_claim(claim_case, pmt_run, pmt_recorder):
        pmt_recorder.check(claim_case, pmt_run)

and the plugin parametrises ``claim_case`` over the group's registered claims
(test ids are the claim ids), marks the known failures at collection, asserts
each claim's bounds, records every claim (whatever its outcome), compares the
run with ``--baseline`` at the end of the session, and writes the report.

The exit status is the *gate*; the *scoreboard* (first lines of the summary,
first screen of the report, ``scoreboard`` in the JSON) answers the paper. How a
claim's verdict maps onto pytest's outcome and the exit status:

==================  ==================================  =========================
verdict             pytest outcome                      exit status
==================  ==================================  =========================
holds               passed                              0
does not hold       gate claim: failed                  1
                    finding: xfailed ("finding: ...")   0 (a finding, reported)
inconclusive        skipped ("inconclusive: ...")       0; 1 when the profile is
                                                        sized to decide the claim
                                                        or ``--inconclusive fail``
not applicable      skipped (the reason)                0
==================  ==================================  =========================

plus drift from ``--baseline`` (a figure moved beyond rounding, or any verdict
changed), which fails the session and is recorded as the claim
``regression.drift``. Gate claims are the mechanics, the data's integrity and
the planted controls (:data:`pmt_core.claims.core.GATE_GROUPS`); findings are
what the paper states.
"""

from __future__ import annotations

import json
import shlex
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

CLAIMS_MARKER = "pmt_claims"


class ClaimFailure(AssertionError):
    """A gate claim does not hold, or a claim the profile must decide is inconclusive."""


def pytest_addoption(parser):
    """Add the run's options (group "pmt")."""
    from pmt_core.profiles import PROFILE_NAMES
    from pmt_core.run.settings import PERTURBATIONS
    from pmt_core.scale import EXECUTORS

    group = parser.getgroup("pmt", "PMT explanation validation")
    group.addoption("--profile", default="ci", choices=PROFILE_NAMES,
                    help="run size: 'ci' (CPU runner), 'paper' (GPU), 'smoke' (seconds; "
                         "tests of the suite itself). Default ci.")
    group.addoption("--device", default="auto",
                    help="'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'.")
    group.addoption("--report-dir", default="reports", help="where the reports go.")
    group.addoption("--seed", default="0",
                    help="seed of the data, the split and the replicates' training seeds.")
    group.addoption("--replicates", default=None,
                    help="models trained per input kind (default: the profile's).")
    group.addoption("--dataset", default="synthetic",
                    help="'synthetic' (generated, with ground truth), or a CSV manifest, "
                         "the authors' SOL-PMT CSV, a folder holding one, or a SOL-style tree.")
    group.addoption("--cache-dir", default=None,
                    help="feature cache folder (default $PMT_CACHE_DIR or "
                         "~/.cache/pmt-validation).")
    group.addoption("--no-cache", action="store_true", help="do not read or write the cache.")
    group.addoption("--perturb", default="none", choices=PERTURBATIONS,
                    help="change the arithmetic, not the method (one torch thread, or "
                         "features jittered by a few ulps): verdicts must not move.")
    group.addoption("--inconclusive", default="skip", choices=("skip", "fail"),
                    help="pytest outcome of an inconclusive claim (default skip).")
    group.addoption("--baseline", default=None, metavar="FILE",
                    help="compare every claim with a stored run (a baseline from "
                         "--update-baseline, or a validation.json): drift beyond the "
                         "replicates' spread fails the session (regression.drift).")
    group.addoption("--update-baseline", default=None, metavar="FILE",
                    help="write this run's claims (verdicts, figures, spreads) to FILE.")
    group.addoption("--executor", default="inprocess", choices=EXECUTORS,
                    help="where features are extracted and models trained: 'inprocess' "
                         "(default), 'local' (submitit's local jobs) or 'slurm' (Slurm job "
                         "arrays); jobs fill the cache, which must be on, and on storage "
                         "the jobs share; the claims and report run here (README, "
                         "'Running on a cluster').")
    group.addoption("--slurm-partition", default=None,
                    help="Slurm partition of the jobs (default: the cluster's).")
    group.addoption("--slurm-time", default="240", metavar="MINUTES",
                    help="time limit of each job in minutes (also the local executor's; "
                         "default 240).")
    group.addoption("--slurm-gpus", default="0", metavar="N",
                    help="GPUs per job (default 0; use 1 with --device cuda).")
    group.addoption("--slurm-cpus", default=None, metavar="N",
                    help="CPUs per job (default: this process's torch thread count, "
                         "which every job uses).")
    group.addoption("--feature-shards", default=None, metavar="N",
                    help="feature extraction jobs over the data set's rows (default one "
                         "per 500 rows, at most 64).")


def pytest_configure(config):
    """Register the marker and the recorder."""
    config.addinivalue_line("markers", f"{CLAIMS_MARKER}(group=None): parametrise the test's "
                            "claim_case over the registered claims (of one group)")
    if config.pluginmanager.get_plugin("pmt-recorder") is None:
        # Checked here, so a bad option is one usage line before any collection.
        config.pmt_settings = settings_from_options(config)
        config.pmt_executor = executor_from_options(config, config.pmt_settings)
        config.pmt_dataset_frame = _check_dataset(config)
        config.pluginmanager.register(ClaimRecorder(config), "pmt-recorder")


def pytest_unconfigure(config):
    """Remove an unpublished staging folder; give the report folder back."""
    lock = getattr(config, "pmt_lock", None)
    if lock is not None:
        from pmt_core.infra.atomic import discard_staging

        discard_staging(config.pmt_settings.report_dir)  # a no-op once published
        lock.release()


def _lock_report_dir(config) -> None:
    """Hold the report folder for this run: two runs would mix their reports and models.

    Taken once claims are collected (a unit-test session never writes a report),
    before any work; a busy folder ends the session with one usage line.
    """
    import dataclasses

    from pmt_core.infra.atomic import FolderBusy, FolderLock, fresh_staging

    report_dir = config.pmt_settings.report_dir
    try:
        config.pmt_lock = FolderLock(report_dir).acquire()
    except FolderBusy as exc:
        pytest.exit(f"--report-dir: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    except OSError as exc:
        pytest.exit(f"--report-dir: cannot lock {report_dir}: {exc}",
                    returncode=pytest.ExitCode.USAGE_ERROR)
    # The run writes into a staging folder; its outputs replace the earlier run's
    # only at the end (publish_staging), so a reader never sees parts of two runs.
    try:
        staging = fresh_staging(report_dir)
    except OSError as exc:
        pytest.exit(f"--report-dir: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    config.pmt_report_dir = Path(report_dir)
    config.pmt_settings = dataclasses.replace(config.pmt_settings, report_dir=str(staging))


def settings_from_options(config):
    """:class:`pmt_core.run.RunSettings` from the command line, checked.

    Raises
    ------
    pytest.UsageError
        For an out-of-range seed, a non-integer replicate count, a report folder
        that is a file.
    """
    from pmt_core.run.settings import RunSettings

    def integer(name, low, high):
        raw = config.getoption(name)
        try:
            value = int(str(raw), 10)
        except ValueError:
            raise pytest.UsageError(f"{name} must be an integer, got {raw!r}") from None
        if not low <= value < high:
            raise pytest.UsageError(f"{name} must lie in [{low}, {high}), got {value}")
        return value

    from pmt_core.infra.checks import CheckError, check_writable_folder

    report_dir = Path(config.getoption("--report-dir"))
    dataset = config.getoption("--dataset")
    inputs = [] if dataset == "synthetic" else [dataset]
    try:
        check_writable_folder(report_dir, "--report-dir")
        check_run_outputs(report_dir, inputs)
        _check_baseline_options(config, inputs, report_dir)
    except CheckError as exc:
        raise pytest.UsageError(str(exc)) from None
    replicates = config.getoption("--replicates")
    return RunSettings(
        dataset=config.getoption("--dataset"), profile=config.getoption("--profile"),
        seed=integer("--seed", 0, 2**32), device=config.getoption("--device"),
        cache_dir=config.getoption("--cache-dir"), use_cache=not config.getoption("--no-cache"),
        report_dir=str(report_dir),
        replicates=None if replicates is None else integer("--replicates", 1, 1000),
        perturb=config.getoption("--perturb"))


def executor_from_options(config, run_settings):
    """:class:`pmt_core.scale.ExecutorSettings` from the command line, checked.

    Raises
    ------
    pytest.UsageError
        For a non-integer or out-of-range count, or an executor that cannot run
        (submitit missing, cache off).
    """
    from pmt_core.scale import ExecutorError, ExecutorSettings, check_executor

    def count(name, low=0):
        raw = config.getoption(name)
        if raw is None:
            return None
        try:
            value = int(str(raw), 10)
        except ValueError:
            raise pytest.UsageError(f"{name} must be an integer, got {raw!r}") from None
        if value < low:
            raise pytest.UsageError(f"{name} must be at least {low}, got {value}")
        return value

    executor = ExecutorSettings(
        executor=config.getoption("--executor"), partition=config.getoption("--slurm-partition"),
        minutes=count("--slurm-time", 1), gpus=count("--slurm-gpus"),
        cpus=count("--slurm-cpus", 1), feature_shards=count("--feature-shards", 1))
    try:
        check_executor(executor, run_settings)
    except ExecutorError as exc:
        raise pytest.UsageError(str(exc)) from None
    return executor


#: What a run writes into --report-dir (the checkpoints go beside the compression).
RUN_OUTPUTS = ("validation.json", "validation.html", "split.csv", "rates.csv",
               "examples.csv", "maps.npz", "models/compression.json",
               "models/s1s2.pt")
#: Everything a run writes, as glob patterns: what a new run's outputs replace
#: (an earlier run's file that the new run did not write is removed with them).
OWNED_OUTPUTS = (*RUN_OUTPUTS, "models/s1.pt", "models/s1-r*.pt", "models/s1s2-r*.pt",
                 "figures/*.png")
#: Published last: a reader who finds the new report finds the new files beside it.
REPORT_FILES = ("validation.json", "validation.html")


def check_run_outputs(report_dir: Path, inputs: list) -> None:
    """Refuse a report folder whose outputs would land on or inside an input of the run.

    A manifest kept as ``reports/split.csv``, or a data folder that holds the report
    folder, would otherwise be overwritten by the run's own split or report.

    Raises
    ------
    pmt_core.infra.checks.CheckError
    """
    from pmt_core.infra.checks import check_output_path

    for name in RUN_OUTPUTS:
        check_output_path(report_dir / name, inputs=inputs, name="--report-dir")


def _check_baseline_options(config, inputs: list, report_dir: Path) -> None:
    """Check --baseline and --update-baseline before any work (one write policy).

    The baseline to compare with must be readable; the one to write may replace only
    an earlier baseline (never the README, the data set's manifest or this run's own
    report), and must be a ``.json`` file.
    """
    from pmt_core.infra.checks import CheckError, check_output_path
    from pmt_core.report.regression import BaselineError, is_baseline_file, load_baseline

    baseline = config.getoption("--baseline")
    if baseline:
        try:
            load_baseline(baseline)
        except BaselineError as exc:
            raise CheckError(f"--baseline: {exc}") from None
    target = config.getoption("--update-baseline")
    if target:
        own = [report_dir / name for name in RUN_OUTPUTS]
        check_output_path(target, inputs=[*inputs, *own], name="--update-baseline",
                          suffix=".json", may_replace=is_baseline_file)


def _check_dataset(config):
    # Loaded once, before collection: a missing folder or a bad manifest is one usage
    # line, not an error minutes into the run. The run reads this frame
    # (validation/conftest.py) instead of loading the data set again.
    dataset = config.getoption("--dataset")
    if dataset == "synthetic":
        return None
    from pmt_core.data.datasets import load_dataset
    from pmt_core.data.split import check_split, has_split
    from pmt_core.infra.checks import CheckError

    try:
        frame = load_dataset(dataset)
        if has_split(frame):
            check_split(frame)
    except CheckError as exc:
        raise pytest.UsageError(f"--dataset: {exc}") from None
    return frame


def pytest_generate_tests(metafunc):
    """Parametrise ``claim_case`` over the registry, known failures marked."""
    if "claim_case" not in metafunc.fixturenames:
        return
    from pmt_core.claims.catalogue import all_cases

    marker = metafunc.definition.get_closest_marker(CLAIMS_MARKER)
    group = (marker.args[0] if marker and marker.args else
             marker.kwargs.get("group") if marker else None)
    params = [pytest.param(case, id=case.id) for case in all_cases(group)]
    metafunc.parametrize("claim_case", params)


@pytest.fixture(scope="session")
def pmt_settings(pytestconfig):
    """Return the run's :class:`~pmt_core.run.RunSettings`, from the command line."""
    return pytestconfig.pmt_settings


@pytest.fixture(scope="session")
def pmt_recorder(pytestconfig):
    """Return the session's :class:`ClaimRecorder`."""
    return pytestconfig.pluginmanager.get_plugin("pmt-recorder")


class ClaimRecorder:
    """Evaluates claims, keeps their records, and ends the session with the report.

    State lives on the instance (pytest-mpl's shape): one recorder per session,
    registered in :func:`pytest_configure`.
    """

    def __init__(self, config):
        self.config = config
        self.records: dict[str, dict] = {}
        self.run = None
        self.started = time.perf_counter()
        self.started_utc = datetime.now(UTC).isoformat(timespec="seconds")
        self.regression: dict | None = None
        self.paths: tuple = ()
        self.report: dict | None = None
        self.selected: set = set()

    @pytest.hookimpl(trylast=True)  # after -k / -m deselection
    def pytest_collection_modifyitems(self, session, config, items):
        """Remember which claims this session evaluates (the rest are "not run")."""
        for item in items:
            case = getattr(getattr(item, "callspec", None), "params", {}).get("claim_case")
            if hasattr(case, "spec"):
                self.selected.add(case.id)
        if self.selected:
            _lock_report_dir(config)

    # -- evaluation ---------------------------------------------------------
    def check(self, case, run) -> None:
        """Evaluate ``case`` on ``run``, record it, and raise what its verdict means."""
        from pmt_core.claims.core import GATE, HOLDS, INCONCLUSIVE, NOT_APPLICABLE, evaluate
        from pmt_core.claims.evidence import evidence_of
        from pmt_core.report.records import evaluation_record

        self.run = run
        evaluation = evaluate(case, evidence_of(run))
        decided = run.profile.decides_claim(case.id)
        record = evaluation_record(evaluation, Path(run.settings.report_dir))
        record["decided_by_profile"] = decided
        self.records[case.id] = {**self.records.get(case.id, {}), **record}
        if evaluation.verdict == HOLDS:
            return
        if evaluation.verdict == NOT_APPLICABLE:
            pytest.skip(f"not applicable: {evaluation.reason}")
        if evaluation.verdict == INCONCLUSIVE:
            if decided:
                raise ClaimFailure(f"{case.id}: the {run.profile.name} profile is sized to "
                                   f"decide this claim, but it is {evaluation.reason}")
            if self.config.getoption("--inconclusive") == "fail":
                raise ClaimFailure(f"{case.id}: {evaluation.reason}")
            pytest.skip(f"{case.id}: {evaluation.reason}")
        if case.spec.role == GATE:
            raise ClaimFailure(f"{case.id}: {evaluation.reason}")
        # a statement that does not hold is a finding: reported, not a failure
        pytest.xfail(f"finding: {case.id}: {evaluation.reason}")

    # -- hooks --------------------------------------------------------------
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        """Give every claim test's record its pytest status (errors included)."""
        outcome = yield
        report = outcome.get_result()
        case = getattr(getattr(item, "callspec", None), "params", {}).get("claim_case")
        if not hasattr(case, "spec"):  # not a claim test, or a group with no claims
            return
        if report.when == "call" or (report.when in ("setup", "teardown") and not report.passed):
            record = self.records.setdefault(case.id, _placeholder(case))
            record["test"] = item.nodeid
            if hasattr(report, "wasxfail"):
                status = "xfailed" if report.skipped else "failed"
                record["finding"] = report.wasxfail
            elif report.when != "call":
                status = "skipped" if report.skipped else "error"
            else:
                status = report.outcome
            if report.when == "teardown" and record.get("status") not in (None, "passed"):
                return
            record["status"] = status
            if status in ("failed", "error", "skipped", "xfailed"):
                record["longrepr"] = (report.longreprtext or "")[-2500:]

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        """Compare with the baseline, write the reports (and the new baseline)."""
        if not self.records or getattr(self.config, "workerinput", None) is not None:
            return
        from pmt_core.infra.atomic import publish_staging
        from pmt_core.report.build import build_report
        from pmt_core.report.render import write_report

        config = self.config
        report_dir = Path(config.pmt_settings.report_dir)  # the staging folder
        published = getattr(config, "pmt_report_dir", report_dir)
        if self.run is not None:
            from pmt_core.report import examples

            records = examples.example_records(self.run)
            if records is None:
                examples.clear_records(report_dir)
            else:
                examples.write_records(*records, report_dir)
                examples.attach_worst_cases(list(self.records.values()), *records, report_dir)
        from pmt_core.infra.provenance import file_checksums

        written = [n for n in RUN_OUTPUTS if n not in REPORT_FILES]
        report = build_report(list(self.records.values()), self.run, config.pmt_settings,
                              command=shlex.join(["pytest", *config.invocation_params.args]),
                              elapsed=time.perf_counter() - self.started,
                              started_utc=self.started_utc, report_dir=published,
                              artifacts=file_checksums(report_dir, written))
        baseline_path = config.getoption("--baseline")
        if baseline_path:
            self.regression = _compare_with_baseline(report, baseline_path, self.selected)
            report["regression"] = self.regression
            report["claims"].append(self.regression["record"])
            if self.regression["drifts"] and session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self.report = report
        self.paths = write_report(report, report_dir)
        if published != report_dir:
            publish_staging(report_dir, published, OWNED_OUTPUTS, last=REPORT_FILES)
            self.paths = tuple(published / p.name for p in self.paths)
        if config.getoption("--update-baseline"):
            from pmt_core.report.regression import write_baseline

            self.paths += (write_baseline(report, config.getoption("--update-baseline")),)

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):
        """Print a short claims table, the regression summary and the report paths."""
        if self.report is None:
            return
        from pmt_core.report.render import format_value, verdict_line
        from pmt_core.report.scoreboard import summary_line

        tr = terminalreporter
        board = self.report.get("scoreboard") or []
        if any(e["outcome"] != "not applicable" for e in board):
            tr.section("PMT scoreboard: the paper's statements "
                       f"({self.report.get('paper_reading')})")
            for e in board:
                tr.write_line(f"{e['outcome']:>25}  {e['sentence']}"[:240])
            tr.write_line(f"scoreboard: {summary_line(board)} (Holm over the statements, "
                          "5 % family-wise; findings, not failures)")
        tr.section("PMT validation claims")
        for c in self.report["claims"]:
            interval = c.get("interval")
            shown = format_value(c.get("key_figure"))
            if interval and None not in interval:
                shown += f" [{format_value(interval[0])}, {format_value(interval[1])}]"
            verdict, status = c.get("verdict") or "-", c.get("status") or "-"
            tr.write_line(f"{verdict:>14}  {status:>8}  {c['id']:<46} {shown}"[:170])
        tr.write_line("gate: " + verdict_line(self.report["claims"]))
        if self.regression:
            tr.write_line(f"baseline {config.getoption('--baseline')}: "
                          f"{self.regression['summary']}")
            for drift in self.regression["drifts"]:
                tr.write_line(f"  drift  {drift['text']}"[:200])
        for path in self.paths:
            tr.write_line(f"report: {path}")


def _placeholder(case) -> dict:
    """Record of a claim that never reached its evaluation (setup error, crash)."""
    return {"id": case.id, "title": case.title, "group": case.spec.group, "verdict": None,
            "bounds": [b.to_dict() for b in case.bounds], "figures": {}, "measured": None,
            "interval": None, "key_figure": None, "paper": case.spec.paper,
            "unit": case.spec.unit, "detail": "", "tables": [], "plots": [],
            "explainers": None, "status": None}


def _compare_with_baseline(report: dict, path: str, selected: set) -> dict:
    from pmt_core.report.regression import BaselineError, compare, load_baseline

    try:
        baseline = load_baseline(path)
    except BaselineError as exc:
        drifts = [{"claim": "(run)", "kind": "baseline", "text": str(exc)}]
        return {"summary": str(exc), "drifts": drifts, "record": _drift_record(str(exc), drifts)}
    result = compare(baseline, report, selected)
    out = result.to_dict() | {"baseline": str(path)}
    summary = result.summary() + "".join(f"; note: {n['text']}" for n in out["notes"])
    out["record"] = _drift_record(summary, out["drifts"], out)
    return out


def _drift_record(summary: str, drifts: list, comparison: dict | None = None) -> dict:
    verdict = "holds" if not drifts else "does not hold"
    rows = [{"claim": d.get("claim"), "what": d.get("kind"), "figure": d.get("key", ""),
             "baseline": d.get("baseline"), "this run": d.get("current"),
             "allowed": d.get("tolerance", "")} for d in drifts]
    return {"id": "regression.drift", "group": "regression", "verdict": verdict,
            "status": "passed" if not drifts else "failed",
            "title": "Every claim's verdict and figures match the baseline within the "
                     "replicates' spread", "key_figure": len(drifts), "interval": None,
            "measured": {"drifts": len(drifts)}, "figures": {}, "bounds": [
                {"figure": "drifts", "op": "at most", "value": 0, "name": "drifts", "why": ""}],
            "paper": None, "unit": "drifts", "detail": summary, "plots": [],
            "tables": [{"caption": "What moved", "columns": list(rows[0]) if rows else [],
                        "rows": rows}] if rows else [],
            "explainers": None, "comparison": json.loads(json.dumps(comparison or {},
                                                                    default=str))}
