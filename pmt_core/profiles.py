"""Run profiles: how much work ``pytest validation`` does.

``ci`` fits a 2-core CPU runner inside CI's budget; ``paper`` is the paper's scale
(class sizes of SOL-PMT, the authors' 500-epoch budget with patience 20) and is
meant for GPU runners.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Profile:
    """Size of one validation run.

    Attributes
    ----------
    name : str
    class_sizes : dict
        Examples per technique of the synthetic data set (ignored for ``--dataset``).
    max_epochs, patience : int
        Training budget and early-stopping patience (validation macro accuracy).
    theory_cases : int
        AM and FM test tones each (Latin hypercube over the theory's domain).
    sanity_examples : int
        Test examples used by the perturbation and randomisation checks.
    """

    name: str
    class_sizes: dict = field(default_factory=dict)
    max_epochs: int = 500
    patience: int = 20
    theory_cases: int = 24
    sanity_examples: int = 64


def _synthetic_sizes(name: str) -> dict:
    from .synth import CI_CLASS_SIZES, PAPER_CLASS_SIZES

    return dict(CI_CLASS_SIZES if name == "ci" else PAPER_CLASS_SIZES)


def get_profile(name: str) -> Profile:
    """Return the profile called ``name`` (``ci`` or ``paper``)."""
    if name == "ci":
        return Profile(
            "ci", _synthetic_sizes("ci"), max_epochs=60, patience=15, theory_cases=16,
            sanity_examples=48,
        )
    if name == "paper":
        return Profile("paper", _synthetic_sizes("paper"), max_epochs=500, patience=20,
                       theory_cases=48, sanity_examples=256)
    raise ValueError(f"unknown profile {name!r}; expected 'ci' or 'paper'")


PROFILE_NAMES = ("ci", "paper")
