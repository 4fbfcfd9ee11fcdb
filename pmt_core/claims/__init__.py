"""The validation claims: declared once, measured on evidence, checked against bounds.

``evidence`` holds what the claims read (a run's products, typed and read-only),
``pmt_core.claims.core`` the registry and the verdict logic,
``estimates`` the intervals, ``thresholds`` the bars (with provenance),
``protocol`` how the claims measure, ``paper`` the published figures,
``power`` the planted controls of each criterion; one module per claim group
declares the claims themselves (``catalogue`` imports them all).
"""

from pmt_core.claims.core import (
    CLAIMS,
    AtLeast,
    AtMost,
    Bound,
    ClaimCase,
    Measurement,
    Within,
    all_cases,
    claim,
    evaluate,
    get_case,
)
from pmt_core.stats.intervals import Estimate

__all__ = [
    "CLAIMS",
    "AtLeast",
    "AtMost",
    "Bound",
    "ClaimCase",
    "Estimate",
    "Measurement",
    "Within",
    "all_cases",
    "claim",
    "evaluate",
    "get_case",
]
