"""Scale a run out over jobs with submitit: Slurm job arrays, or processes on one machine.

The run already stores what costs time in content-addressed caches: each clip's
features (:class:`~pmt_core.infra.cache.FeatureCache`) and each training call's
models (:func:`pmt_core.model.cache.train_cached`). :func:`fill_caches` has jobs
*fill* those caches; the run then proceeds in this process as it always does, finds
every feature and every model in the cache, and evaluates the claims and writes the
report in one step. The figures are therefore those of an in-process run: a hit
returns the bits the same computation stored.

What runs where, in two phases (each a job array, waited for):

1. features: the data set's rows in shards (``--feature-shards``), the test clips'
   modulation-ablated twins, the AM/FM test tones;
2. training: one job per training call of the run (:meth:`pmt_core.run.Run.training_calls`):
   every replicate of one input kind in one call, as in this process (replicates may
   train jointly as one ensemble, so a call per replicate would store other entries),
   each shuffled-label model, model B.

3. explanations: one job per S1+S2 replicate, every explainer on its test
   predictions, into the explanation cache (:mod:`pmt_core.explain.cache`; the
   explainers that declare their code: the others cost less than a cache read).

The mechanism check, the randomisation cascade and the deletion curves are computed
in this process (on the stored maps and models).

A job's entries are found only if its cache keys equal this process's. A job builds
the same :class:`~pmt_core.run.Run` from the same settings and makes the same
calls (so the inputs, labels, configuration and seeds are the same bytes), runs with
this process's torch thread count (part of a training key) and inherits its
environment, where :mod:`pmt_core.infra.arithmetic` put its pins. The device, the
code and the pinned arithmetic are in the caches' namespaces: every job reports the
namespaces it wrote, and a job whose namespaces differ from this process's (another
kind of node, say) is an error, not a silent retraining.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

#: ``--executor`` values: the run's own process (default), submitit's local executor
#: (processes on this machine), Slurm.
EXECUTORS = ("inprocess", "local", "slurm")
#: Folder of the jobs' pickles and logs, inside the report folder (the last run's).
JOBS_FOLDER = ".pmt-jobs"
#: Default shard size of feature extraction: rows per job.
ROWS_PER_SHARD = 500
#: Most feature shards by default.
MAX_SHARDS = 64
INSTALL_HINT = "pip install submitit (or pip install -e '.[cluster]')"


class ExecutorError(RuntimeError):
    """The executor cannot run, or a job failed (the message says which and why)."""


@dataclass(frozen=True)
class ExecutorSettings:
    """How a run's jobs are run (the command line's ``--executor`` options, as data).

    Attributes
    ----------
    executor : {"inprocess", "local", "slurm"}
    partition : str or None
        Slurm partition (None: the cluster's default).
    minutes : int
        Time limit of each job, in minutes (Slurm's ``--time``; the local executor's
        limit too).
    gpus : int
        GPUs per job (Slurm ``--gpus-per-node``).
    cpus : int or None
        CPUs per job; None: this process's torch thread count, which every job uses.
    feature_shards : int or None
        Feature jobs over the data set's rows; None: one per :data:`ROWS_PER_SHARD`
        rows, at most :data:`MAX_SHARDS`.
    """

    executor: str = "inprocess"
    partition: str | None = None
    minutes: int = 240
    gpus: int = 0
    cpus: int | None = None
    feature_shards: int | None = None

    def __post_init__(self):
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {self.executor!r}")

    @property
    def enabled(self) -> bool:
        """Whether jobs fill the caches (any executor but ``inprocess``)."""
        return self.executor != "inprocess"


def check_executor(executor: ExecutorSettings, run_settings) -> None:
    """Refuse, before any work, an executor that cannot do what it is asked.

    Parameters
    ----------
    executor : ExecutorSettings
    run_settings : pmt_core.run.RunSettings

    Raises
    ------
    ExecutorError
        If submitit is not installed, or the cache (the jobs' only way to hand
        their results over) is off.
    """
    if not executor.enabled:
        return
    if importlib.util.find_spec("submitit") is None:
        raise ExecutorError(f"--executor {executor.executor} needs submitit, which is not "
                            f"installed: {INSTALL_HINT}")
    from pmt_core.infra.cache import resolve_cache_dir

    if not run_settings.use_cache or resolve_cache_dir(run_settings.cache_dir) is None:
        raise ExecutorError(
            f"--executor {executor.executor} hands features and models over through the "
            "cache, which is off (--no-cache, or --cache-dir / $PMT_CACHE_DIR set to 'off'); "
            "point --cache-dir or $PMT_CACHE_DIR at a folder every job can reach")


# ------------------------------------------------------------------------ tasks --
@dataclass(frozen=True)
class Task:
    """One job's work.

    Attributes
    ----------
    kind : {"features", "twins", "theory", "train", "explain"}
    name : str
        What the progress lines and errors call it.
    start, stop : int
        Rows ``[start, stop)`` of the data set (``features``).
    call : str
        A :meth:`pmt_core.run.Run.training_calls` name (``train``).
    replicate : int
        The S1+S2 replicate whose test predictions are explained (``explain``).
    """

    kind: str
    name: str
    start: int = 0
    stop: int = 0
    call: str = ""
    replicate: int = 0


def feature_tasks(n_rows: int, shards: int | None = None) -> list[Task]:
    """Return the feature phase: ``shards`` row ranges, the twins, the test tones."""
    if shards is None:
        shards = min(MAX_SHARDS, math.ceil(n_rows / ROWS_PER_SHARD))
    shards = max(1, min(int(shards), n_rows))
    bounds = [round(k * n_rows / shards) for k in range(shards + 1)]
    return ([Task("features", f"features rows {a}-{b - 1}", a, b)
             for a, b in zip(bounds, bounds[1:], strict=False)]
            + [Task("twins", "features of the twins"), Task("theory", "test tones")])


def training_tasks(calls) -> list[Task]:
    """Return the training phase: one job per training call of the run."""
    return [Task("train", call, call=call) for call in calls]


def explanation_tasks(n_replicates: int) -> list[Task]:
    """Return the explanation phase: one job per S1+S2 replicate."""
    return [Task("explain", f"explanations of replicate {k}", replicate=k)
            for k in range(n_replicates)]


def run_task(settings, task: Task, threads: int, scratch: str) -> dict:
    """Do one task in a job: compute into the caches, return what the main process checks.

    Parameters
    ----------
    settings : pmt_core.run.RunSettings
        The main process's; the job's own outputs (split, compression) go to
        ``scratch`` instead of its report folder.
    task : Task
    threads : int
        The main process's torch thread count (a training key holds it).
    scratch : str
        A folder of the job's own.

    Returns
    -------
    dict
        ``{"namespace", "threads", "host", "seconds", "fault"}``: the cache namespace
        written, the thread count in force, where it ran, how long, and the cache's
        fault (None when it worked).
    """
    import socket

    import torch

    from pmt_core.features.extraction import extract_features
    from pmt_core.run import Run

    start = time.perf_counter()
    torch.set_num_threads(int(threads))
    run = Run(dataclasses.replace(settings, report_dir=scratch), progress=False)
    store = run.cache
    if task.kind == "features":
        extract_features(run.data.frame.iloc[task.start:task.stop], run.scattering_config,
                         run.device, cache=store, progress=False)
    elif task.kind == "twins":
        frame = run.twin_frame()
        if frame is not None:
            extract_features(frame, run.scattering_config, run.device, cache=store,
                             progress=False)
    elif task.kind == "theory":
        _ = run.theory
    elif task.kind == "train":
        store = run.model_cache
        run.train_call(task.call)
    elif task.kind == "explain":
        from pmt_core.explain.explainers import EXPLAINERS

        store = run.explanation_cache
        with run.arithmetic():  # as the explanation stage calls them: the same keys
            for name in EXPLAINERS:
                run.explain(name, run.explainer_inputs(task.replicate))
    else:
        raise ValueError(f"unknown task kind {task.kind!r}")
    return {"namespace": store.folder.name, "threads": torch.get_num_threads(),
            "host": socket.gethostname(), "seconds": time.perf_counter() - start,
            "fault": store.fault}


# --------------------------------------------------------------------- executor --
def make_executor(settings: ExecutorSettings, folder: Path, threads: int, gpus: int):
    """Return a submitit executor for ``settings`` writing its files under ``folder``."""
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=settings.executor)
    params = {"timeout_min": int(settings.minutes), "cpus_per_task": settings.cpus or threads,
              "gpus_per_node": gpus, "name": "pmt-validation"}
    if settings.executor == "slurm" and settings.partition:
        params["slurm_partition"] = settings.partition
    executor.update_parameters(**params)
    return executor


def fill_caches(run, settings: ExecutorSettings, folder: str | Path, *, poll_s: float | None = None,
                log=print) -> dict:
    """Have jobs compute the run's features and train its models into the caches.

    Parameters
    ----------
    run : pmt_core.run.Run
        The run; its stages are not computed here (beyond the data set's rows).
    settings : ExecutorSettings
    folder : path-like
        The jobs' folder (submitit's pickles and logs); emptied first.
    poll_s : float, optional
        Seconds between looks at the jobs (default 1 locally, 30 on Slurm).
    log : callable
        Where progress lines go.

    Returns
    -------
    dict
        ``{"executor", "folder", "jobs": [{"task", "job", "host", "seconds"}, ...]}``.

    Raises
    ------
    ExecutorError
        If submitit or the cache is missing, a job failed (its error and the tail of
        its log), or a job wrote to other cache namespaces than this process reads.
    """
    import torch

    from pmt_core.infra.atomic import fresh_staging

    check_executor(settings, run.settings)
    folder = fresh_staging(Path(folder).parent, name=Path(folder).name)
    threads = torch.get_num_threads()
    gpus = settings.gpus
    if settings.executor == "local" and run.device.type == "cuda":
        gpus = max(gpus, 1)  # the local executor hides every GPU from a job asked for none
    executor = make_executor(settings, folder, threads, gpus)
    poll_s = poll_s if poll_s is not None else (30.0 if settings.executor == "slurm" else 1.0)
    summary = {"executor": settings.executor, "folder": str(folder), "jobs": []}
    with run.timed("executor"):
        phases = (("features", feature_tasks(len(run.data.frame), settings.feature_shards),
                   run.cache),
                  ("training", training_tasks(run.training_calls()), run.model_cache),
                  ("explanations", explanation_tasks(run.n_replicates), run.explanation_cache))
        for phase, tasks, store in phases:
            n = len(tasks)
            scratch = [str(folder / "scratch" / f"{phase}-{k}") for k in range(n)]
            results = run_jobs(executor, phase, [t.name for t in tasks], run_task,
                               [[run.settings] * n, tasks, [threads] * n, scratch], log=log,
                               poll_s=poll_s)
            # the jobs' own split and compression copies; their logs stay
            shutil.rmtree(folder / "scratch", ignore_errors=True)
            for task, (job_id, result) in zip(tasks, results, strict=True):
                _check_result(task, job_id, result, store.folder.name, threads)
                summary["jobs"].append({"task": task.name, "job": job_id,
                                        "host": result["host"],
                                        "seconds": round(result["seconds"], 3)})
    log(f"executor: {len(summary['jobs'])} jobs done; logs in {folder}")
    return summary


def run_jobs(executor, phase: str, names: list, fn, arguments: list, *, log=print,
             poll_s: float = 1.0) -> list:
    """Submit ``fn`` over ``arguments`` as one job array, wait, return the results.

    Parameters
    ----------
    executor : submitit.Executor
    phase : str
        What the progress lines call the array.
    names : list of str
        What the progress lines and errors call each job.
    fn : callable
        The job's function (importable: submitit pickles it by reference).
    arguments : list of lists
        ``fn``'s positional arguments, one list per parameter (``map_array``'s).
    log : callable
        Where progress lines go: on every change, and once a minute.
    poll_s : float
        Seconds between looks at the jobs.

    Returns
    -------
    list of tuple
        ``(job id, result)`` in ``names`` order.

    Raises
    ------
    ExecutorError
        When a job fails: its id, its name, its error and the last lines of its
        log; the other jobs are cancelled.
    """
    jobs = executor.map_array(fn, *arguments)
    n = len(jobs)
    log(f"executor: {phase}: {n} jobs submitted ({', '.join(names)})")
    started, last, shown = time.perf_counter(), None, 0.0
    try:
        while True:
            done = [job.done() for job in jobs]
            for job, name, finished in zip(jobs, names, done, strict=True):
                if finished and job.exception() is not None:
                    raise ExecutorError(_failure(job, name))
            now = time.perf_counter()
            line = f"executor: {phase}: {sum(done)}/{n} jobs done"
            if line != last or now - shown >= 60:
                log(f"{line} ({now - started:.0f} s)")
                last, shown = line, now
            if all(done):
                return [(str(job.job_id), job.result()) for job in jobs]
            time.sleep(poll_s)
    except BaseException:
        for job in jobs:  # no job outlives the run that wanted it
            if not job.done():
                job.cancel(check=False)
        raise


def _failure(job, name: str, lines: int = 30) -> str:
    """Say which job failed, why, and where its logs are (the tail of its error log)."""
    error = str(job.exception()).strip().splitlines()
    try:
        stderr = (job.stderr() or "").strip().splitlines()
    except OSError:
        stderr = []
    log = stderr or error or ["no message"]
    # the log's last line is the exception; submitit's own message ends in file names
    return (f"job {job.job_id} ({name}) failed: {log[-1].strip()}\n"
            f"--- last lines of its log ---\n" + "\n".join(log[-lines:])
            + f"\n--- logs: {job.paths.folder} ---")


def _check_result(task: Task, job_id: str, result: dict, namespace: str, threads: int) -> None:
    """Refuse a job whose entries this process would not find (module notes)."""
    problems = []
    if result.get("fault"):
        problems.append(f"its cache was off after a fault: {result['fault']}")
    if result["namespace"] != namespace:
        problems.append(f"it wrote cache namespace {result['namespace']}, this process reads "
                        f"{namespace} (another device, GPU, code version or arithmetic on "
                        f"{result['host']}: run this process on the jobs' kind of node)")
    if task.kind == "train" and result["threads"] != threads:
        problems.append(f"it trained with {result['threads']} torch threads, this process "
                        f"uses {threads}")
    if problems:
        raise ExecutorError(f"job {job_id} ({task.name}): " + "; ".join(problems))
