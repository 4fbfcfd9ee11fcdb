"""Claims measured NOT to hold, keyed to the claim and the bound that fails.

An entry applies where it was measured (a data kind and a profile, never a
seed: verdicts are statistics over replicates, so they do not flip with one
seed's rounding). There the plugin marks the claim's test
``xfail(raises=KnownClaimFailure, strict=True)``, and the test raises
:class:`KnownClaimFailure` only when every failing bound is one listed
(:meth:`KnownFailure.covers`). Any other outcome is news: a claim that now holds
is an XPASS (strict: a failure); a bound not listed failing raises
:class:`ClaimFailure`, which the xfail does not catch; a crash is a crash; an
inconclusive verdict is a skip, as for any claim. Each reason quotes the measurement;
change an entry only with new measurements.
"""

from __future__ import annotations

from dataclasses import dataclass


class ClaimFailure(AssertionError):
    """A claim does not hold (one of its bounds is on the wrong side)."""


class KnownClaimFailure(ClaimFailure):
    """A claim fails exactly as a :data:`KNOWN_FAILURES` entry says it does."""


@dataclass(frozen=True)
class KnownFailure:
    """A claim measured to fail, where, on which bounds, and the figures.

    Attributes
    ----------
    claim : str
        Claim id.
    bounds : tuple of str
        Names of the bounds that fail (``Bound.name``).
    dataset : str
        ``"synthetic"`` or a data source kind (``manifest``, ``authors_csv``,
        ``sol_tree``).
    profile : str
    reason : str
        The measured figures.
    """

    claim: str
    bounds: tuple
    dataset: str
    profile: str
    reason: str

    def applies(self, dataset: str, profile: str) -> bool:
        """Whether this entry covers a run on ``dataset`` at ``profile``."""
        return (self.dataset, self.profile) == (dataset, profile)

    def covers(self, failing_bounds) -> bool:
        """Whether a run whose ``failing_bounds`` failed fails as this entry says.

        Every failing bound must be listed; a listed bound may be inconclusive in
        a given run (a bound measured failing on some seeds sits near its bar).
        A bound not listed that fails is news, so this is False.
        """
        failing = set(failing_bounds)
        return bool(failing) and failing <= set(self.bounds)


#: Every known failure. Filled from measured runs (README, "What we measured").
KNOWN_FAILURES: tuple[KnownFailure, ...] = ()


def known_failure_for(claim_id: str, dataset: str, profile: str) -> KnownFailure | None:
    """Return the entry covering ``claim_id`` on this data kind and profile, if any."""
    for entry in KNOWN_FAILURES:
        if entry.claim == claim_id and entry.applies(dataset, profile):
            return entry
    return None


def validate(entries=None) -> None:
    """Check every entry against the claim registry.

    Raises
    ------
    ValueError
        For an unknown claim id or bound name (a typo would silently never apply).
    """
    from pmt_core.claims.core import all_cases

    cases = {case.id: case for case in all_cases()}
    for entry in KNOWN_FAILURES if entries is None else entries:
        case = cases.get(entry.claim)
        if case is None:
            raise ValueError(f"known failure for unknown claim {entry.claim!r}")
        names = {b.name for b in case.bounds}
        unknown = set(entry.bounds) - names
        if unknown or not entry.bounds:
            raise ValueError(f"known failure of {entry.claim}: bounds {sorted(unknown) or '()'} "
                             f"not among the claim's {sorted(names)}")
