"""Scale-out with submitit: the plan, the up-front errors, and figures equal to in-process."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pmt_core.explain.explainers import EXPLAINERS
from pmt_core.run import RunSettings
from pmt_core.scale import ExecutorError, ExecutorSettings, check_executor, feature_tasks

ROOT = Path(__file__).resolve().parents[1]


def test_feature_shards_cover_every_row_once():
    for n_rows, shards in [(40, 2), (40, 3), (7, 7), (5, 9), (1000, None), (5564, None)]:
        tasks = [t for t in feature_tasks(n_rows, shards) if t.kind == "features"]
        rows = [r for t in tasks for r in range(t.start, t.stop)]
        assert rows == list(range(n_rows)), (n_rows, shards)
        assert all(t.stop > t.start for t in tasks)
    assert len([t for t in feature_tasks(5564) if t.kind == "features"]) == 12
    assert {t.kind for t in feature_tasks(40)} == {"features", "twins", "theory"}


def test_the_explanation_phase_is_one_job_per_replicate():
    from pmt_core.scale import explanation_tasks

    tasks = explanation_tasks(3)
    assert [(t.kind, t.replicate) for t in tasks] == [("explain", k) for k in range(3)]
    assert len({t.name for t in tasks}) == 3


def test_the_executor_needs_the_cache(tmp_path):
    local = ExecutorSettings(executor="local")
    check_executor(ExecutorSettings(), RunSettings(use_cache=False))  # in-process: fine
    with pytest.raises(ExecutorError, match="cache"):
        check_executor(local, RunSettings(use_cache=False))
    with pytest.raises(ExecutorError, match="cache"):
        check_executor(local, RunSettings(cache_dir="off"))
    check_executor(local, RunSettings(cache_dir=str(tmp_path)))


def test_the_executor_needs_submitit(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "submitit" else real(name, *a))
    with pytest.raises(ExecutorError, match="pip install submitit"):
        check_executor(ExecutorSettings(executor="slurm"), RunSettings(cache_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="executor must be one of"):
        ExecutorSettings(executor="kubernetes")


def _pytest_validation(tmp_path, name, *args, cache="cache", quiet=True):
    """Run ``pytest validation`` on the smoke profile in a process of its own."""
    env = {**os.environ, "PMT_CACHE_DIR": str(tmp_path / cache),
           # the jobs must import this checkout, whatever the environment installed
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "validation", "--profile", "smoke",
         *(["-q"] if quiet else []), "-p", "no:cacheprovider",
         "--report-dir", str(tmp_path / name), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    return done, time.perf_counter() - start


def _local_executor(folder):
    submitit = pytest.importorskip("submitit",
                                   reason="the cluster extra: pip install -e '.[cluster]'")
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster="local")
    executor.update_parameters(timeout_min=5)
    return executor


def test_jobs_report_their_progress_and_results(tmp_path):
    from pmt_core.scale import run_jobs

    lines = []
    got = run_jobs(_local_executor(tmp_path), "demo", ["seven", "eleven"], int,
                   [["7", "11"]], log=lines.append, poll_s=0.2)
    assert [result for _, result in got] == [7, 11]
    assert lines[0] == "executor: demo: 2 jobs submitted (seven, eleven)"
    assert lines[-1].startswith("executor: demo: 2/2 jobs done")


def test_a_failed_job_stops_with_its_error_and_log(tmp_path):
    from pmt_core.scale import run_jobs

    with pytest.raises(ExecutorError) as raised:
        run_jobs(_local_executor(tmp_path), "demo", ["bad"], int, [["not a number"]],
                 log=lambda line: None, poll_s=0.2)
    text = str(raised.value)
    assert "(bad) failed: ValueError: invalid literal for int()" in text
    assert "last lines of its log" in text and str(tmp_path) in text


class _Options:
    """What ``config.getoption`` answers: the plugin's defaults, some replaced."""

    DEFAULTS = {"--executor": "local", "--slurm-partition": None, "--slurm-time": "240",
                "--slurm-gpus": "0", "--slurm-cpus": None, "--feature-shards": None}

    def __init__(self, **given):
        self.values = {**self.DEFAULTS, **{f"--{k.replace('_', '-')}": v
                                           for k, v in given.items()}}

    def getoption(self, name):
        return self.values[name]


def test_the_plugin_parses_and_checks_the_executor_options(tmp_path):
    from pmt_core.pytest_plugin import executor_from_options

    cached = RunSettings(cache_dir=str(tmp_path))
    got = executor_from_options(_Options(executor="slurm", slurm_partition="gpu",
                                         slurm_time="30", slurm_gpus="1", slurm_cpus="8",
                                         feature_shards="12"), cached)
    assert got == ExecutorSettings("slurm", "gpu", 30, 1, 8, 12)
    assert not executor_from_options(_Options(executor="inprocess"),
                                     RunSettings(use_cache=False)).enabled
    for bad, message in [({"slurm_time": "soon"}, "--slurm-time must be an integer"),
                         ({"slurm_time": "0"}, "--slurm-time must be at least 1"),
                         ({"feature_shards": "0"}, "--feature-shards must be at least 1")]:
        with pytest.raises(pytest.UsageError, match=message):
            executor_from_options(_Options(**bad), cached)
    with pytest.raises(pytest.UsageError, match="through the cache"):
        executor_from_options(_Options(), RunSettings(use_cache=False))


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["--executor", "local", "--no-cache"], "hands features and models over through the cache"),
    (["--executor", "kubernetes"], "invalid choice: 'kubernetes'"),
    (["--executor", "local", "--slurm-time", "soon"], "--slurm-time must be an integer"),
])
def test_bad_executor_options_stop_before_any_work(tmp_path, args, message):
    done, _ = _pytest_validation(tmp_path, "reports", *args)
    assert done.returncode == 4, done.stdout + done.stderr  # usage error
    assert message in done.stdout + done.stderr
    assert not (tmp_path / "cache").exists()


def _claims(report_dir: Path) -> dict:
    report = json.loads((report_dir / "validation.json").read_text())
    return {c["id"]: c for c in report["claims"]}, report


@pytest.mark.slow
def test_the_local_executor_gives_the_in_process_verdicts_and_figures(tmp_path):
    pytest.importorskip("submitit", reason="the cluster extra: pip install -e '.[cluster]'")
    alone, alone_s = _pytest_validation(tmp_path, "inprocess", cache="cache-a")
    jobs, jobs_s = _pytest_validation(tmp_path, "local", "--executor", "local",
                                      "--feature-shards", "2", cache="cache-b",
                                      quiet=False)  # the progress lines show
    print(f"smoke run in-process {alone_s:.0f} s, with the local executor {jobs_s:.0f} s")
    assert alone.returncode == jobs.returncode, jobs.stdout[-3000:] + jobs.stderr[-3000:]
    assert "executor: training: 4/4 jobs done" in jobs.stdout + jobs.stderr
    assert "executor: explanations: " in jobs.stdout + jobs.stderr
    a, report_a = _claims(tmp_path / "inprocess")
    b, report_b = _claims(tmp_path / "local")
    assert a.keys() == b.keys()
    for claim_id in a:
        for field in ("verdict", "status", "key_figure", "interval", "measured", "figures"):
            assert a[claim_id].get(field) == b[claim_id].get(field), (claim_id, field)
    # the jobs filled the caches: this process computed no feature and trained no model
    dataset = report_b["dataset"]
    assert dataset["feature_cache"]["misses"] == 0, dataset["feature_cache"]
    assert dataset["model_cache"]["misses"] == 0 and dataset["model_cache"]["hits"] >= 4
    assert report_a["dataset"]["model_cache"]["misses"] >= 4  # the in-process run trained
    # every replicate's stored explainers came from the jobs (the sanity stages' maps of
    # randomised and shuffled-label models are computed here)
    stored = sum(e.cache_code is not None for e in EXPLAINERS.values())
    assert dataset["explanation_cache"]["hits"] >= stored * report_b["replicates"]
    assert "executor" in report_b["timings_s"]
    logs = tmp_path / "local" / ".pmt-jobs"
    assert any(logs.rglob("*_log.err")) and not (tmp_path / "inprocess" / ".pmt-jobs").exists()
