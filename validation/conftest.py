"""Fixtures of ``pytest validation``: thin wrappers around :mod:`pmt_core.run`.

The options, the claim tests' parametrisation, the verdicts, the regression gate
and the report belong to the plugin (``pmt_core.pytest_plugin``); this file only
builds the run, once per session, and exposes its stages for tests that want
one directly.
"""

from pathlib import Path

import pytest

from pmt_core.run import Run


@pytest.fixture(scope="session")
def pmt_run(pmt_settings, pytestconfig):
    """The session's :class:`~pmt_core.run.Run` (stages computed on first use).

    With ``--executor local`` or ``slurm``, jobs first fill the feature and model
    caches (:func:`pmt_core.scale.fill_caches`); the run then finds everything there.
    """
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    quiet = capture is None or pytestconfig.getoption("verbose") < 0
    # Long stages show their progress bars through pytest's output capture.
    run = Run(pmt_settings, progress=not quiet,
              around_stage=None if quiet else capture.global_and_fixture_disabled,
              dataset_frame=getattr(pytestconfig, "pmt_dataset_frame", None))
    executor = getattr(pytestconfig, "pmt_executor", None)
    if executor is not None and executor.enabled:
        from pmt_core.scale import JOBS_FOLDER, ExecutorError, fill_caches

        # Beside the staging folder, under the report folder's lock: the last run's
        # job logs stay for inspection, and no run's jobs write over another's.
        report_dir = getattr(pytestconfig, "pmt_report_dir", pmt_settings.report_dir)
        try:
            fill_caches(run, executor, Path(report_dir) / JOBS_FOLDER)
        except ExecutorError as exc:
            pytest.exit(f"--executor {executor.executor}: {exc}",
                        returncode=pytest.ExitCode.TESTS_FAILED)
    return run


@pytest.fixture(scope="session")
def data(pmt_run):
    """The data set with its split."""
    return pmt_run.data


@pytest.fixture(scope="session")
def features(pmt_run):
    """Raw scattering coefficients and descriptors of every example."""
    return pmt_run.features


@pytest.fixture(scope="session")
def models(pmt_run):
    """Every trained replicate of both input kinds."""
    return pmt_run.models


@pytest.fixture(scope="session")
def explanations(pmt_run):
    """Every explainer's maps for every S1+S2 replicate."""
    return pmt_run.explanations
