"""Every claim, one test each, generated from the registry (pmt_core.claims).

The plugin parametrises ``claim_case`` over every registered claim (test ids are
the claim ids: ``-k relevance`` selects a group), marks the known failures at
collection and asserts the claim's bounds; nothing is restated here.
"""

import pytest


@pytest.mark.pmt_claims()
def test_claim(claim_case, pmt_run, pmt_recorder):
    pmt_recorder.check(claim_case, pmt_run)
