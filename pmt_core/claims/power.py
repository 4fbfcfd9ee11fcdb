"""Power claims: each criterion accepts what has its property and rejects what lacks it.

One claim per family of :mod:`pmt_core.claims.families` that declares planted
controls: it holds when every oracle (a map with the property by construction)
meets the family's criterion and every adversary (a map built to lack it) fails
it. A criterion that accepts an adversary cannot tell a faithful explanation
from one that is wrong in a known way; one that rejects an oracle is broken; one
that leaves a control inconclusive cannot decide at this size, and the claim
says how large a run would (the MetaQuantus idea of testing the tests, Hedstroem
et al. 2023; positive controls with known ground truth as in XAI-Units).

These replace the earlier "every null is rejected" claims, whose outcome was
fixed by construction (audit H2): model-free nulls compared with themselves,
and nulls whose expected figure sat on the bar.
"""

from __future__ import annotations

from pmt_core.claims import relevance, relevance_use  # noqa: F401 - their families register
from pmt_core.claims.core import claim
from pmt_core.claims.families import FAMILIES, PLANTED_LABELS, power_bounds, power_measurement


def _register(fam) -> None:
    controls = "; ".join(PLANTED_LABELS[n] for n in fam.oracles + fam.adversaries)

    @claim(f"power.{fam.id}", title=f"The criterion of {fam.id} accepts its planted oracle "
           "and rejects its planted adversaries", unit="planted controls",
           bounds=power_bounds(fam))
    def measure(ev):
        return power_measurement(ev, fam)

    measure.__doc__ = f"Planted controls on the criterion of {fam.id}: {controls}."


for _fam in FAMILIES.values():
    if _fam.oracles or _fam.adversaries:
        _register(_fam)
