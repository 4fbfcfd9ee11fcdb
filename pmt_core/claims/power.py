"""Power claims: each family's criterion must reject the nulls it names.

One claim per family of :mod:`pmt_core.claims.families` that names nulls: it
holds when every such null fails the family's criterion, and otherwise reports
which passes. A claim that a null explainer passes cannot tell a faithful
explanation from one that ignores the example or the model, whatever LRP scores
(the MetaQuantus idea of testing the tests; Hedstroem et al. 2023).
"""

from __future__ import annotations

from pmt_core.claims import relevance, sanity  # noqa: F401 - the families register there
from pmt_core.claims.core import AtMost, claim
from pmt_core.claims.families import FAMILIES, power_measurement


def _register(fam) -> None:
    @claim(f"power.{fam.id}", title=f"The criterion of {fam.id} rejects every null it must "
           f"reject ({', '.join(fam.must_reject)})", unit="nulls not rejected",
           bounds=[AtMost("nulls not rejected", 0, name="rejects the nulls",
                          why="a claim a null passes lacks power")])
    def measure(run):
        return power_measurement(run, fam)

    measure.__doc__ = f"Must-reject nulls that pass the criterion of {fam.id}."


for _fam in FAMILIES.values():
    if _fam.must_reject:
        _register(_fam)
