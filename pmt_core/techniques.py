"""The five periodic modulation techniques and their physical modulation bands.

Label order follows the authors' code (method.md section 6): vibrato 0, trill 1,
tremolo 2, bisbigliando 3, flatterzunge 4. A data set may hold any subset of
them; models are trained on the classes present, in this order.
"""

from __future__ import annotations

TECHNIQUES: tuple[str, ...] = ("vibrato", "trill", "tremolo", "bisbigliando", "flatterzunge")

#: Physical modulation rate band (Hz) of each technique, from method.md section 6
#: (instrumental practice literature): vibrato 4-8 Hz, trill 5-10 cycles/s,
#: tremolo 8-16 Hz, bisbigliando 6-12 Hz, flatterzunge 20-40 Hz.
MODULATION_BAND_HZ: dict[str, tuple[float, float]] = {
    "vibrato": (4.0, 8.0),
    "trill": (5.0, 10.0),
    "tremolo": (8.0, 16.0),
    "bisbigliando": (6.0, 12.0),
    "flatterzunge": (20.0, 40.0),
}


def technique_index(name: str) -> int:
    """Return the authors' label of a technique name.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`TECHNIQUES`.
    """
    try:
        return TECHNIQUES.index(name)
    except ValueError:
        raise ValueError(
            f"unknown technique {name!r}; expected one of {', '.join(TECHNIQUES)}"
        ) from None


def present_techniques(names) -> tuple[str, ...]:
    """Return the techniques present in ``names``, in canonical label order."""
    present = set(names)
    unknown = present.difference(TECHNIQUES)
    if unknown:
        raise ValueError(f"unknown technique(s) {sorted(unknown)}; expected {TECHNIQUES}")
    return tuple(t for t in TECHNIQUES if t in present)
