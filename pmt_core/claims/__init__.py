"""The validation claims: declared once, measured on evidence, checked against bounds.

``evidence`` holds what the claims read (a run's products, typed and read-only),
``pmt_core.claims.core`` the registry and the verdict logic,
``estimates`` the intervals, ``thresholds`` the bars (with provenance),
``protocol`` how the claims measure, ``paper`` the published figures,
``power`` the planted controls of each criterion; one module per claim group
declares the claims themselves (``catalogue`` imports them all).
"""

from pmt_core.infra.lazy import lazy_names

#: Public name -> the module that defines it (loaded on first use, PEP 562: the
#: catalogue imports every claim module).
_PUBLIC = {
    **dict.fromkeys(("CLAIMS", "AtLeast", "AtMost", "Bound", "ClaimCase", "Measurement",
                     "Within", "claim", "evaluate"), "pmt_core.claims.core"),
    **dict.fromkeys(("all_cases", "get_case"), "pmt_core.claims.catalogue"),
    **dict.fromkeys(("Evidence", "evidence_of", "lazy"), "pmt_core.claims.evidence"),
    "Estimate": "pmt_core.stats.intervals",
}

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)

__all__ = sorted(_PUBLIC)
