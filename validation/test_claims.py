"""The claims, one test each, generated from the registry (pmt_core.claims).

Each function below stands for one group of claims: the plugin parametrises its
``claim_case`` over the group's registered claims (test ids are the claim ids)
and asserts the claim's bounds; nothing is restated here.
"""

import pytest


def _check(claim_case, pmt_run, pmt_recorder):
    pmt_recorder.check(claim_case, pmt_run)


@pytest.mark.pmt_claims("data")
def test_data(claim_case, pmt_run, pmt_recorder):
    _check(claim_case, pmt_run, pmt_recorder)


@pytest.mark.pmt_claims("scattering")
def test_scattering(claim_case, pmt_run, pmt_recorder):
    _check(claim_case, pmt_run, pmt_recorder)


@pytest.mark.pmt_claims("accuracy")
def test_accuracy(claim_case, pmt_run, pmt_recorder):
    _check(claim_case, pmt_run, pmt_recorder)


@pytest.mark.pmt_claims("lrp")
def test_lrp(claim_case, pmt_run, pmt_recorder):
    _check(claim_case, pmt_run, pmt_recorder)


@pytest.mark.pmt_claims("relevance")
def test_relevance(claim_case, pmt_run, pmt_recorder):
    _check(claim_case, pmt_run, pmt_recorder)


@pytest.mark.pmt_claims("power")
def test_power(claim_case, pmt_run, pmt_recorder):
    _check(claim_case, pmt_run, pmt_recorder)


@pytest.mark.pmt_claims("sanity")
def test_sanity(claim_case, pmt_run, pmt_recorder):
    _check(claim_case, pmt_run, pmt_recorder)
