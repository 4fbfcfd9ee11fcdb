"""Every claim module, imported once so that its claims register, and the cases.

Adding a claim touches its module here (the measurement function and its
``@claim`` declaration) and nothing else; a new module is added to this list.
The registry (:data:`pmt_core.claims.core.CLAIMS`) is complete once this module
has loaded, so the functions that list cases live here, not in ``core``, which
every claim module imports.
"""

from __future__ import annotations

from pmt_core.claims import (  # noqa: F401 - imported for their registrations
    accuracy,
    core,
    data,
    lrp,
    model,
    power,
    relevance,
    relevance_use,
    sanity,
    scattering,
)
from pmt_core.claims.core import ClaimCase

__all__ = ["all_cases", "get_case"]


def all_cases(group: str | None = None) -> list[ClaimCase]:
    """Every registered claim case (of one group), in registration order."""
    return [case for spec in core.CLAIMS.values() if group in (None, spec.group)
            for case in spec.cases()]


def get_case(claim_id: str) -> ClaimCase:
    """Return the case with this id.

    Raises
    ------
    KeyError
        When no registered claim has that id.
    """
    for case in all_cases():
        if case.id == claim_id:
            return case
    raise KeyError(f"no claim {claim_id!r}")
