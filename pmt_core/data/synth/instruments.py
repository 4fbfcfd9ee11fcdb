"""The synthetic instruments: timbre, playing range and techniques of each.

Thirty instruments in the 11 SOL families (:data:`INSTRUMENTS`), each a
harmonic spectral envelope (roll-off, odd/even balance, one body formant,
stiffness), an attack, a plucked decay where it has one, and its mutes; and the
techniques it can plausibly play, which decide the families a class is drawn
from (:func:`families_for`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pmt_core.data.synth.params import F0_MIN_HZ
from pmt_core.techniques import TECHNIQUES

_ALL = frozenset(TECHNIQUES)
_BOWED = frozenset({"vibrato", "trill", "tremolo", "bisbigliando"})
_NO_VIBRATO = _ALL - {"vibrato"}


@dataclass(frozen=True)
class Instrument:
    """Timbre and playing range of one synthetic instrument.

    Attributes
    ----------
    name, family : str
        Instrument and family names (families as in SOL).
    f0_range_hz : tuple of float
        Lowest and highest written note; within C#1-A7 so that a trill's upper note
        stays below B7.
    techniques : frozenset of str
        Techniques the instrument can plausibly play.
    tilt_db_per_octave : float
        Spectral roll-off of the harmonics (brightness).
    even_gain : float
        Amplitude factor of even harmonics (odd/even balance; clarinets ~0.2).
    formant_hz, formant_gain_db, formant_width_oct : float
        One resonance of the body (log-Gaussian bump in the spectral envelope).
    inharmonicity : float
        Stiffness coefficient B: partial k at ``k f0 sqrt(1 + B k^2)``.
    attack_s : float
        Attack time of a note.
    decay_s : float or None
        Typical exponential decay time of plucked notes (each example scales it,
        ``decay_s`` column); None for sustained instruments.
    mutes : tuple of str
        Mute options (empty when the instrument has none).

    Notes
    -----
    The noise level is not an instrument property here: it is drawn per example
    from one distribution (``noise_db``), because instruments are not spread alike
    over the classes (flatterzunge has no strings) and a family-dependent noise
    level would become a class cue in the spectral flatness.
    """

    name: str
    family: str
    f0_range_hz: tuple[float, float]
    techniques: frozenset
    tilt_db_per_octave: float = 6.0
    even_gain: float = 1.0
    formant_hz: float = 1000.0
    formant_gain_db: float = 6.0
    formant_width_oct: float = 0.7
    inharmonicity: float = 0.0
    attack_s: float = 0.04
    decay_s: float | None = None
    mutes: tuple[str, ...] = ()

    @property
    def plucked(self) -> bool:
        """Whether notes decay freely after the attack."""
        return self.decay_s is not None


_BRASS_MUTES = ("straight", "cup", "harmon", "wah")
_STRING_MUTES = ("sordina", "sordina-piombo")

#: Timbre shared by a family (fields of :class:`Instrument`).
_FAMILY_TIMBRE: dict[str, dict] = {
    # Few harmonics, weak formant.
    "Flutes": dict(techniques=_ALL, even_gain=0.8, formant_gain_db=4.0, formant_width_oct=1.0,
                   attack_s=0.05),
    # Weak even harmonics.
    "Clarinets": dict(techniques=_NO_VIBRATO, even_gain=0.2, formant_gain_db=5.0),
    # Double reeds: nasal formant.
    "Oboes": dict(techniques=_ALL, formant_gain_db=10.0, formant_width_oct=0.5, attack_s=0.03),
    "Bassoons": dict(techniques=_ALL, formant_gain_db=10.0, formant_width_oct=0.6,
                     attack_s=0.04),
    "Saxophones": dict(techniques=_ALL, even_gain=0.9, formant_gain_db=8.0),
    # Brass: bright, mutes.
    "Horns": dict(techniques=_NO_VIBRATO, formant_gain_db=8.0, attack_s=0.06),
    "Trumpets": dict(techniques=_ALL, formant_gain_db=8.0, attack_s=0.03),
    "Trombones": dict(techniques=_ALL, formant_gain_db=8.0, attack_s=0.04, mutes=_BRASS_MUTES),
    "Tubas": dict(techniques=_ALL, formant_gain_db=8.0, attack_s=0.06),
    # Bowed strings: sawtooth-like, mutes; harmonic (the bow mode-locks the
    # partials, so stiffness does not show).
    "Strings": dict(techniques=_BOWED, formant_gain_db=6.0, attack_s=0.05, mutes=_STRING_MUTES),
    # Plucked strings: free decays, stiff (inharmonic) strings.
    "PluckedStrings": dict(techniques=_BOWED, even_gain=0.9, formant_gain_db=6.0,
                           attack_s=0.003, inharmonicity=5e-5),
}

#: name, family, lowest and highest note (Hz), formant (Hz), roll-off (dB/octave),
#: and what differs from the family's timbre.
_INSTRUMENT_SPECS = [
    ("Piccolo", "Flutes", 587.3, 3520.0, 2500, 12.0, {}),
    ("Flute", "Flutes", 261.6, 2349.3, 1500, 11.0, {}),
    ("Alto-Flute", "Flutes", 196.0, 1568.0, 1000, 12.0, {}),
    ("Bass-Flute", "Flutes", 130.8, 1046.5, 700, 13.0, {}),
    ("Clarinet-Eb", "Clarinets", 196.0, 1568.0, 1800, 7.0, {}),
    ("Clarinet-Bb", "Clarinets", 146.8, 1568.0, 1500, 7.0, {}),
    ("Bass-Clarinet", "Clarinets", 58.3, 698.5, 800, 7.5, {"even_gain": 0.25}),
    ("Oboe", "Oboes", 233.1, 1568.0, 1400, 4.0, {}),
    ("English-Horn", "Oboes", 164.8, 987.8, 1000, 4.5, {}),
    ("Bassoon", "Bassoons", 58.3, 622.3, 500, 5.0, {}),
    ("Contrabassoon", "Bassoons", F0_MIN_HZ, 311.1, 300, 5.0, {"formant_gain_db": 8.0}),
    ("Soprano-Sax", "Saxophones", 207.7, 1244.5, 1600, 4.5, {}),
    ("Alto-Sax", "Saxophones", 138.6, 880.0, 1200, 4.5, {}),
    ("Tenor-Sax", "Saxophones", 103.8, 659.3, 900, 4.5, {}),
    ("Baritone-Sax", "Saxophones", 69.3, 440.0, 600, 5.0, {}),
    ("Horn", "Horns", 61.7, 698.5, 700, 6.0, {"mutes": ("sordina", "stopped")}),
    ("Wagner-Tuba", "Horns", 61.7, 587.3, 600, 6.5, {}),
    ("Trumpet-C", "Trumpets", 164.8, 1046.5, 1300, 3.0, {"mutes": _BRASS_MUTES}),
    ("Flugelhorn", "Trumpets", 146.8, 932.3, 900, 5.0, {"formant_gain_db": 6.0}),
    ("Tenor-Trombone", "Trombones", 82.4, 587.3, 600, 3.5, {}),
    ("Bass-Trombone", "Trombones", 58.3, 466.2, 450, 4.0, {"attack_s": 0.05}),
    ("Bass-Tuba", "Tubas", 36.7, 349.2, 300, 5.5, {"mutes": ("straight",)}),
    ("Euphonium", "Tubas", 58.3, 523.3, 450, 5.5, {"formant_gain_db": 7.0}),
    ("Violin", "Strings", 196.0, 3136.0, 2800, 4.0, {}),
    ("Viola", "Strings", 130.8, 1760.0, 1800, 4.5, {}),
    ("Violoncello", "Strings", 65.4, 1046.5, 1000, 4.5, {"attack_s": 0.06}),
    ("Contrabass", "Strings", 41.2, 392.0, 500, 5.0, {"attack_s": 0.07}),
    # The harp plays no vibrato; no string instrument plays flatterzunge.
    ("Harp", "PluckedStrings", F0_MIN_HZ, 3136.0, 900, 8.0,
     {"techniques": _NO_VIBRATO - {"flatterzunge"}, "formant_gain_db": 4.0,
      "formant_width_oct": 1.0, "inharmonicity": 1e-4, "attack_s": 0.004, "decay_s": 1.5}),
    ("Guitar", "PluckedStrings", 82.4, 1174.7, 1200, 6.0, {"decay_s": 1.2}),
    ("Mandolin", "PluckedStrings", 196.0, 1568.0, 1800, 5.0, {"decay_s": 0.6, "attack_s": 0.002}),
]

_INSTRUMENT_LIST = [
    Instrument(name, family, (lo, hi), formant_hz=formant, tilt_db_per_octave=tilt,
               **{**_FAMILY_TIMBRE[family], **extra})
    for name, family, lo, hi, formant, tilt, extra in _INSTRUMENT_SPECS
]

#: The synthetic instruments by name (30 instruments in the 11 SOL families).
INSTRUMENTS: dict[str, Instrument] = {ins.name: ins for ins in _INSTRUMENT_LIST}


def instruments_for(technique: str) -> list[Instrument]:
    """Return the instruments that can play ``technique``, in table order."""
    return [ins for ins in _INSTRUMENT_LIST if technique in ins.techniques]


def families_for(technique: str) -> list[str]:
    """Return the families with at least one instrument that plays ``technique``."""
    return list(dict.fromkeys(ins.family for ins in instruments_for(technique)))
