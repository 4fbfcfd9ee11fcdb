"""Fixtures of ``pytest validation``: thin wrappers around :mod:`pmt_core.stages`.

The options, the claim tests' parametrisation, the verdicts, the regression gate
and the report belong to the plugin (``pmt_core.pytest_plugin``); this file only
builds the run, once per session, and exposes its stages for tests that want
one directly.
"""

import pytest

from pmt_core.stages import Run


@pytest.fixture(scope="session")
def pmt_run(pmt_settings, pytestconfig):
    """The session's :class:`~pmt_core.stages.Run` (stages computed on first use)."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    quiet = capture is None or pytestconfig.getoption("verbose") < 0
    # Long stages show their progress bars through pytest's output capture.
    return Run(pmt_settings, progress=not quiet,
               around_stage=None if quiet else capture.global_and_fixture_disabled)


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
