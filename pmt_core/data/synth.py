"""Synthetic stand-in for SOL-PMT with known ground truth (method.md section 6).

Each technique is produced by its physical mechanism on a harmonic carrier whose
timbre comes from one of 30 named instruments in the 11 SOL families. The data are
built so that the class is told by the modulation *mechanism*, not by its rate
alone, and never by a nuisance cue.

Mechanisms (table :data:`TECHNIQUE_SPECS`, one modulator function per technique)
--------------------------------------------------------------------------------
- vibrato: periodic frequency modulation, 10-100 cents peak deviation, skewed
  (non-sinusoidal) cycles, depth ramping in, a little coupled AM (FM through the
  body resonances);
- trill: alternation between the written note and the note a semitone or a tone
  above, portamento of 8-20 ms between notes and a small amplitude dip at each note
  change; on plucked instruments each note change is a hammer-on or pull-off that
  restarts the string's decay;
- tremolo: fast re-articulation of one note (bow strokes, repeated tonguing or
  plucks), each stroke a sharp attack then a decay (a sawtooth-like envelope) with
  an attack noise burst; on plucked instruments every stroke is a pluck with the
  string's own decay;
- flatterzunge: flutter-tongued wind note, irregular amplitude modulation with
  strongly jittered rate, depth and pulse shape; the breath noise follows the
  flutter;
- bisbigliando: one pitch alternated between two sources (two harp strings, two
  fingerings on winds, two strings in unison on bowed strings), detuned by a few
  cents, with their own level and timbre; each note re-articulated (plucked decays
  on plucked instruments).

Rates carry information per example
-----------------------------------
The mean rate of each example is drawn log-uniform over two octaves
(:data:`RATE_RANGE_HZ`; stratified within each class, so that a small class covers
its range evenly), twice the one-octave window (+-0.5 octave) that a
localisation claim scores, and centred on the physical band of
:data:`pmt_core.techniques.MODULATION_BAND_HZ` (which stays fixed, a priori, and is
*not* the generator's range). The ranges overlap (vibrato / trill / bisbigliando /
tremolo share 5.5-11 Hz; tremolo and flatterzunge 14-22 Hz): a map that always
peaks at one lambda2 per class hits about half of each class within +-0.5 octave
(:func:`pmt_core.data.shortcuts.class_constant_hit_rate`). The rate drifts within
a note (a log-linear accelerando or ritardando of up to
:attr:`TechniqueSpec.drift_max_oct`), and the cycle durations are jittered.

Definition of ``modulation_rate_hz`` (cycles per second): the realised mean rate
over the technique's part of the note, ``cycles / seconds`` from the technique's
start (``onset_s``, or ``onset_s + transition_s``) to the note's end. One cycle is
one period of what the signal repeats: one vibrato period; one trill alternation
A+B (notes per second = 2 x rate); one tremolo stroke; one flutter pulse; one
bisbigliando alternation A+B (the two sources differ in level and timbre, so the
envelope repeats once per A+B). The jittered cycle durations are rescaled so that
exactly ``rate x seconds`` cycles fit: the recorded mean is the realised one.
``modulation_rate_min_hz`` / ``_max_hz`` are the extremes of the jitter-free rate
curve (within about 1 % of the realised one, the rescaling's factor), and
``modulation_drift_oct`` its signed course, ``log2(end / start)``.

Units of ``modulation_depth``: vibrato peak deviation in cents; trill interval in
cents (100 or 200); tremolo and flatterzunge mean envelope dip as a fraction of the
peak amplitude (0-1); bisbigliando detuning between the two sources in cents.

Distractors in every clip (independent of the class)
----------------------------------------------------
A *brightness* modulation: the partials above ``DISTRACTOR_SPLIT_HARMONIC`` x f0
(between the 3rd and 4th harmonic) rise and fall together in amplitude, at a rate
log-uniform in :data:`DISTRACTOR_RATE_HZ` (2-60 Hz, all classes alike) and a depth
in the techniques' range (:data:`DISTRACTOR_DEPTH`, 0.4-0.9 of the upper partials'
amplitude against the tremolo's 0.5-0.95 of the whole note), present over the whole
note, twins included: a timbral pulsing such as a rotating loudspeaker, a pulsing
bow pressure or a player moving against a directional microphone. It is as strong
in the second-order coefficients of the upper carriers as a technique, so the input
and its energy see it, while the class does not depend on it; it is of a kind that
no technique is (a whole-note AM is a tremolo, an FM a vibrato: a class-independent
AM or FM at the techniques' depths and rates would make a vibrato with that AM the
same signal as a tremolo with that FM, so the class could no longer be told from the
clip). A claim can thus ask whether relevance follows the class's modulation rather
than the distractor's, and ``model.ignores_distractor`` whether the model does.
Also in every clip: a slow level drift (a crescendo or diminuendo of up to 6 dB over
the note).

Nuisance parameters, drawn from one distribution for every class
----------------------------------------------------------------
Family (uniform among the families that can play the technique, then the
instrument uniform within the family), f0 (log-uniform over the instrument's
range), dynamics, mute, onset, note duration, breath or bow noise relative to the
harmonic part (``noise_db``; not an instrument property, since instruments are not
spread alike over the classes), a recording noise floor through the whole clip
(``floor_db``), extra spectral tilt (``tilt_db_per_oct``), the free decay time of
plucked strings (``decay_s``, for every class played on a plucked instrument), a
unison doubling voice (``doubled``, with its own detuning, level and pitch wander),
slow intonation drift (``pitch_wander_cents``), level drift, distractor. The
technique may shape the noise in *time* (attack bursts, turbulence that follows
the flutter, finger noise at each pluck) but never its long-term level, which is
``noise_db`` for every clip.

What differs by class because the technique is defined by it
------------------------------------------------------------
- trill alternates two pitches a semitone or a tone apart (the only class whose
  pitch steps); vibrato sweeps the pitch continuously (its harmonics smear in a
  long-term spectrum: the modulation itself, not a nuisance);
- tremolo re-articulates one note, so attacks (and their noise bursts) recur;
- bisbigliando alternates two sources, so it is the one class with two sources
  taking turns (the second source is as likely brighter as darker: its tilt
  differs by +-0.5-3 dB/octave with a random sign);
- flatterzunge is a wind technique: impossible on bowed and plucked strings; the
  vibrato is not played on clarinets, horns or the harp. Family is therefore a weak
  cue; drawing the family (not the instrument) uniformly keeps it at its minimum
  (a Bayes balanced accuracy of 11/45 = 0.24 from family alone, chance 0.20);
- on plucked instruments the re-articulating techniques (tremolo, bisbigliando,
  trill by hammer-on / pull-off) restart the string's decay at every attack, so
  their notes decay between re-attacks but not over the whole clip, while a
  vibrato note (and every ablated twin) decays freely from its one pluck;
- every modulation leaves its trace in a fine-resolution long-term spectrum: FM
  smears the harmonics (vibrato), a trill doubles the lines a step apart, the two
  detuned sources of a bisbigliando split them, sharp re-attacks and flutter
  spread energy between them. Spectral flatness and slope read together with f0
  and centroid therefore tell the classes apart above chance (a linear guard
  reached balanced accuracy 0.40-0.43 at ci scale, seeds 0-2, each descriptor
  alone <= 0.30) while the same guard on the ablated twins, whose nuisance is the
  data's own, stays at chance (0.19-0.24): what it finds is the modulation.

Ablated twins (:func:`ablated_twin`)
------------------------------------
A twin keeps every nuisance parameter and the seed of its source row, so it draws
the same harmonic phases, noise, pitch wander, distractor, doubling and level; the
modulation is off: vibrato: no pitch modulation (and no coupled AM); trill: the
written (lower) note sustained; tremolo: one sustained stroke (one bow stroke, one
breath, one pluck left to decay); flatterzunge: the ordinario note, breath noise
unmodulated; bisbigliando: the first source sustained. Twins carry no class
information beyond the family's.

Transitions (off by default)
----------------------------
``synthetic_manifest(..., transition_fraction=f)`` starts the technique part-way
through the note for a fraction ``f`` of the examples: an ordinario segment (the
twin's signal) for ``transition_s`` seconds after the onset, then the technique,
cross-faded in over 0.1 s. ``transition_s`` is NaN when the technique starts with
the note. The default ``f = 0`` keeps every clip stationary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import uniform_filter1d

from pmt_core.techniques import TECHNIQUES

SAMPLE_RATE = 44100
N_SAMPLES = 2**18

#: Lowest and highest pitch in SOL-PMT (C#1 and B7, method.md section 6).
F0_MIN_HZ = 34.648
F0_MAX_HZ = 3951.07

#: Dynamics -> (note RMS level in dBFS, spectral tilt change in dB/octave).
#: Louder playing is brighter: less roll-off. ff stays 16 dB below full scale so
#: that the peak limiter (a loudness cue that would differ between classes, since
#: attacks raise the crest factor) almost never acts.
DYNAMICS: dict[str, tuple[float, float]] = {
    "pp": (-40.0, 3.0),
    "p": (-34.0, 1.5),
    "mf": (-28.0, 0.0),
    "f": (-22.0, -1.5),
    "ff": (-16.0, -3.0),
}

#: Probability that an instrument with mute options is played muted (all classes).
MUTE_PROBABILITY = 0.3

#: Generator range (Hz) of each technique's mean rate, drawn log-uniform: two
#: octaves centred (geometrically) on the physical band of
#: ``pmt_core.techniques.MODULATION_BAND_HZ``, so that the rate of one example
#: is not given by its class. Deliberately wider than common practice at both ends.
RATE_RANGE_HZ: dict[str, tuple[float, float]] = {
    "vibrato": (2.8, 11.2),
    "trill": (3.5, 14.0),
    "tremolo": (5.5, 22.0),
    "bisbigliando": (4.0, 16.0),
    "flatterzunge": (14.0, 56.0),
}

#: Distractor (a brightness modulation): rate range (Hz, log-uniform, every class
#: alike); depth range (fraction of the upper partials' amplitude, log-uniform), the
#: techniques' AM depths; the partials it moves: those above this multiple of f0
#: (between the 3rd and 4th harmonic, clear of both under a trill's whole tone).
DISTRACTOR_KIND = "brightness"
DISTRACTOR_RATE_HZ = (2.0, 60.0)
DISTRACTOR_DEPTH = (0.4, 0.9)
DISTRACTOR_SPLIT_HARMONIC = 3.5

#: Ranges of the class-independent nuisance parameters (uniform unless stated).
NOISE_DB_RANGE = (-42.0, -18.0)  # noise RMS relative to the harmonic part (dB)
FLOOR_DB_RANGE = (-70.0, -50.0)  # recording noise floor (room, microphone) re the note (dB)
TILT_RANGE_DB_PER_OCT = (-3.0, 3.0)  # extra spectral roll-off (player, room, microphone)
LEVEL_DRIFT_DB_RANGE = (-6.0, 6.0)  # level change over the note (dB)
WANDER_CENTS_RANGE = (2.0, 10.0)  # slow intonation drift, peak (cents, log-uniform)
DECAY_FACTOR_OCT = 0.7  # plucked decay: instrument's x 2**U(-0.7, 0.7)
DOUBLING_PROBABILITY = 0.35  # a second voice in unison (second player or string)
DOUBLING_DETUNE_CENTS = (2.0, 12.0)  # |detuning| of the doubling voice, random sign
DOUBLING_DB_RANGE = (-24.0, -12.0)  # its level relative to the main voice (beats stay weak)
TRANSITION_RAMP_S = 0.1  # cross-fade from ordinario into the technique

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

#: Columns that describe the technique's modulation: NaN in an ablated twin.
MODULATION_COLUMNS = (
    "modulation_rate_hz",
    "modulation_rate_min_hz",
    "modulation_rate_max_hz",
    "modulation_drift_oct",
    "modulation_depth",
    "transition_s",
)

_TABLE_SIZE = 4096
_N_DIRECT_PARTIALS = 6  # partials synthesised directly when the instrument is inharmonic
_CONTROL_HOP = 16  # samples per value of the envelope and pitch tracks
_MAX_PARTIALS = 2048  # harmonic phases drawn per voice (a fixed count: see _carrier)

# Independent random streams of one example (``default_rng([seed, stream])``): an
# ablated twin skips the modulation stream and so draws the same nuisance as its
# source, sample for sample.
_STREAM_NUISANCE, _STREAM_NOISE, _STREAM_MODULATION, _STREAM_DISTRACTOR = 0, 1, 2, 3
_STREAM_VOICE_A, _STREAM_VOICE_B, _STREAM_DOUBLING, _STREAM_FLOOR = 4, 5, 6, 7


# ------------------------------------------------------------------ modulators --
@dataclass
class _Context:
    """What a modulator needs: the time axis, the note and the cycle grid."""

    t: np.ndarray  # float32 time (s)
    control_rate: float  # samples per second of the control tracks
    ins: Instrument
    decay_s: float  # plucked decay (s); NaN for sustained instruments
    steady: np.ndarray  # ordinario amplitude shape: free decay (plucked) or ones
    start: float  # technique start (s)
    depth: float
    rng: np.random.Generator  # the modulation stream
    u: np.ndarray  # phase within the cycle, 0..1 (float32)
    index: np.ndarray  # cycle index per sample
    cycle_s: np.ndarray  # duration of the current cycle per sample (float32)
    cycle_depth: np.ndarray  # per-cycle depth factor (jitter around 1)


@dataclass
class _Modulation:
    """A modulator's output; each field replaces the ordinario value where it sounds."""

    amplitude: np.ndarray  # amplitude shape (replaces ``steady``)
    pitch_oct: np.ndarray | float = 0.0  # pitch offset (octaves)
    noise: np.ndarray | float = 1.0  # temporal shape of the noise (any scale)
    # Second source taking turns (bisbigliando): gate (0 = A, 1 = B), level of B,
    # tilt change of B (dB/octave), detuning of B (octaves).
    source_b: tuple[np.ndarray, float, float, float] | None = None


def _smoothing(ctx: _Context, seconds: float) -> int:
    """Length (control samples) of a moving average over ``seconds``: no clicks."""
    return max(1, int(round(seconds * ctx.control_rate)))


def _since_attack(ctx: _Context, fraction: np.ndarray | float) -> np.ndarray:
    """Seconds since the last attack when attacks fall at ``u = 0`` and ``u = fraction``."""
    u = ctx.u
    return (np.where(u >= fraction, u - fraction, u) * ctx.cycle_s).astype(np.float32)


def _pluck(since: np.ndarray, decay_s: float, bright: float = 0.8) -> np.ndarray:
    """Envelope of a fresh pluck: 3 ms rise, a 30 ms bright part, the string's decay."""
    shape = (1.0 - np.exp(-since / 0.003)) * (np.exp(-since / decay_s)
                                              + bright * np.exp(-since / 0.03))
    return (shape / (1.0 + bright)).astype(np.float32)


def _vibrato(ctx: _Context) -> _Modulation:
    u = ctx.u
    shape = (np.sin(2 * np.pi * u) + 0.25 * np.sin(4 * np.pi * u + 0.8)) / 1.2  # skewed cycles
    ramp = np.clip(0.3 + (ctx.t - ctx.start) / ctx.rng.uniform(0.3, 0.8), 0.3, 1.0)
    pitch = (ctx.depth / 1200.0) * ctx.cycle_depth[ctx.index] * shape * ramp
    # FM through the body resonances gives a little AM, lagging the pitch.
    coupled = 1.0 + 0.08 * np.roll(shape, int(0.02 * ctx.control_rate))
    return _Modulation(amplitude=(ctx.steady * coupled).astype(np.float32),
                       pitch_oct=pitch.astype(np.float32))


def _trill(ctx: _Context) -> _Modulation:
    n_cycles = len(ctx.cycle_depth)
    duty = np.clip(0.5 + 0.05 * ctx.rng.standard_normal(n_cycles), 0.35, 0.65)[ctx.index]
    upper = (ctx.u >= duty).astype(np.float32)
    glide = max(1, int(ctx.rng.uniform(0.008, 0.02) * ctx.control_rate))
    upper = uniform_filter1d(upper, glide)  # portamento between the two notes
    dip = 1.0 - 0.3 * (1.0 - np.abs(2.0 * upper - 1.0))  # at each note change
    if ctx.ins.plucked:
        # Hammer-on / pull-off: every note change restarts the string's decay.
        amplitude = dip * np.exp(-_since_attack(ctx, duty) / ctx.decay_s)
    else:
        amplitude = dip * ctx.steady
    return _Modulation(amplitude=amplitude.astype(np.float32),
                       pitch_oct=((ctx.depth / 1200.0) * upper).astype(np.float32))


def _tremolo(ctx: _Context) -> _Modulation:
    u = ctx.u
    d = np.clip(ctx.depth * ctx.cycle_depth, 0.0, 0.98)[ctx.index].astype(np.float32)
    if ctx.ins.plucked:
        stroke = _pluck(u * ctx.cycle_s, ctx.decay_s)  # one pluck per cycle
    else:
        # Stroke: sharp attack, then decay within the stroke.
        decay = ctx.rng.uniform(1.0, 3.0)
        stroke = (1.0 - np.exp(-u / 0.04)) * np.exp(-decay * u)
    stroke = stroke * (1.0 + 0.05 * (ctx.index % 2 == 0))  # bow directions differ a little
    amplitude = (1.0 - d) + d * stroke
    amplitude = uniform_filter1d(amplitude.astype(np.float32), _smoothing(ctx, 0.002))
    noise = 0.3 + d * np.exp(-u / 0.1)  # bow or tongue attack noise at each stroke
    return _Modulation(amplitude=amplitude, noise=noise.astype(np.float32))


def _flatterzunge(ctx: _Context) -> _Modulation:
    n_cycles = len(ctx.cycle_depth)
    d = np.clip(ctx.depth * ctx.cycle_depth, 0.0, 0.98)[ctx.index].astype(np.float32)
    sharpness = ctx.rng.uniform(1.0, 3.0, n_cycles).astype(np.float32)[ctx.index]
    pulse = (0.5 - 0.5 * np.cos(2 * np.pi * ctx.u)) ** sharpness
    amplitude = uniform_filter1d((ctx.steady * (1.0 - d * pulse)).astype(np.float32),
                                 _smoothing(ctx, 0.002))
    return _Modulation(amplitude=amplitude, noise=(0.3 + pulse).astype(np.float32))


def _bisbigliando(ctx: _Context) -> _Modulation:
    since = _since_attack(ctx, 0.5)  # A on the first half of the cycle, B on the second
    if ctx.ins.plucked:
        # Re-plucking damps the string: each note starts afresh and decays.
        note = _pluck(since, ctx.decay_s)
    else:
        note = (1.0 - 0.5 * np.exp(-since / 0.015)) * (1.0 + 0.4 * np.exp(-since / 0.05))
    note = 1.0 + ctx.cycle_depth[ctx.index].astype(np.float32) * (note - 1.0)
    gate = uniform_filter1d((ctx.u >= 0.5).astype(np.float32), _smoothing(ctx, 0.004))
    level_b = ctx.rng.uniform(0.5, 0.8)  # the second string or fingering is weaker
    # ... and brighter or darker, with equal probability: no class-wide tilt.
    tilt_b = ctx.rng.choice((-1.0, 1.0)) * ctx.rng.uniform(0.5, 3.0)
    noise = 1.0 + 2.0 * np.exp(-since / 0.01)  # finger or key noise at each note
    return _Modulation(amplitude=note.astype(np.float32), noise=noise.astype(np.float32),
                       source_b=(gate, level_b, tilt_b, ctx.depth / 1200.0))


@dataclass(frozen=True)
class TechniqueSpec:
    """How one technique modulates the note.

    Attributes
    ----------
    mechanism : {"fm", "am"}
        Which track shows the rate: the pitch track (``pitch_rate_hz`` of
        :func:`pmt_core.data.descriptors.describe`) or the amplitude envelope of
        the same partial (``partial_envelope_rate_hz``).
    depth_range : tuple of float
        Range of ``modulation_depth`` (units: see the module docstring).
    jitter : float
        Log-normal sigma of the cycle durations.
    depth_jitter : float
        Relative jitter of the per-cycle depth.
    drift_max_oct : float
        Largest rate drift over the note, ``|log2(end rate / start rate)|``.
    ablated : str
        What "modulation off" means for this technique (its twin's note).
    """

    mechanism: str
    depth_range: tuple[float, float]
    jitter: float
    depth_jitter: float
    drift_max_oct: float
    ablated: str
    render: Callable[[_Context], _Modulation]


#: The techniques' modulators. Drifts: vibrato rate rises and falls with the
#: phrase, trills and flutter accelerate or relax; tremolo and bisbigliando are
#: steadier (a measured tremolo is played at a set rate).
TECHNIQUE_SPECS: dict[str, TechniqueSpec] = {
    "vibrato": TechniqueSpec("fm", (10.0, 100.0), 0.08, 0.15, 0.4,
                             "no pitch modulation", _vibrato),
    "trill": TechniqueSpec("fm", (100.0, 200.0), 0.08, 0.0, 0.5,
                           "the written (lower) note sustained", _trill),
    "tremolo": TechniqueSpec("am", (0.5, 0.95), 0.07, 0.15, 0.3,
                             "one sustained stroke", _tremolo),
    "bisbigliando": TechniqueSpec("am", (3.0, 15.0), 0.10, 0.2, 0.25,
                                  "the first source sustained", _bisbigliando),
    "flatterzunge": TechniqueSpec("am", (0.4, 0.9), 0.18, 0.35, 0.5,
                                  "the ordinario note, breath noise unmodulated", _flatterzunge),
}

#: The descriptor that recovers each technique's rate from the signal.
RATE_DESCRIPTOR = {
    name: "pitch_rate_hz" if spec.mechanism == "fm" else "partial_envelope_rate_hz"
    for name, spec in TECHNIQUE_SPECS.items()
}


def instruments_for(technique: str) -> list[Instrument]:
    """Return the instruments that can play ``technique``, in table order."""
    return [ins for ins in _INSTRUMENT_LIST if technique in ins.techniques]


def families_for(technique: str) -> list[str]:
    """Return the families with at least one instrument that plays ``technique``."""
    return list(dict.fromkeys(ins.family for ins in instruments_for(technique)))


def rate_curve(rate_hz: float, drift_oct: float) -> tuple[float, float]:
    """Start and end rate of a log-linear drift whose time-average is ``rate_hz``.

    The jitter-free rate is ``r(tau) = r0 2**(drift_oct tau)`` over the technique's
    part of the note (``tau`` from 0 to 1); its time average
    ``r0 (2**d - 1) / (d ln 2)`` equals the recorded mean rate.

    Returns
    -------
    tuple of float
        ``(r0, r0 * 2**drift_oct)``.
    """
    d = float(drift_oct)
    r0 = rate_hz if abs(d) < 1e-9 else rate_hz * d * np.log(2.0) / (2.0**d - 1.0)
    return float(r0), float(r0 * 2.0**d)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def synthetic_manifest(
    class_sizes: Mapping[str, int], seed: int = 0, transition_fraction: float = 0.0
) -> pd.DataFrame:
    """Draw the parameters of a synthetic data set, one row per example.

    Parameters
    ----------
    class_sizes : mapping of str to int
        Number of examples per technique (any subset of the five techniques).
    seed : int
        Seed of the whole manifest (parameters and per-example seeds).
    transition_fraction : float
        Fraction of the examples (drawn at random, every class alike) whose
        technique starts part-way through the note after an ordinario segment.
        0 (the default): none.

    Returns
    -------
    pandas.DataFrame
        One row per example, in shuffled order. Columns: ``path`` (empty:
        synthetic), ``example_id`` (row number), ``technique``, ``instrument``,
        ``family``, ``f0_hz``; the modulation: ``modulation_rate_hz`` (realised
        mean rate), ``modulation_rate_min_hz``, ``modulation_rate_max_hz`` and
        ``modulation_drift_oct`` (the jitter-free rate curve),
        ``modulation_depth``, ``transition_s`` (technique start after the onset,
        NaN: with the note); the distractor: ``distractor_kind`` ("brightness"),
        ``distractor_rate_hz``, ``distractor_depth`` (fraction of the upper partials),
        ``level_drift_db``; the nuisance: ``dynamics``, ``mute``, ``mute_type``,
        ``onset_s``, ``duration_s``, ``noise_db``, ``tilt_db_per_oct``,
        ``decay_s`` (NaN unless plucked), ``doubled``,
        ``doubling_detune_cents`` and ``doubling_db`` (NaN unless doubled);
        ``ablated`` (False) and ``twin_of`` (-1; see :func:`ablated_twin`);
        ``seed``. No split (:func:`pmt_core.data.split.assign_split` makes one).
        ``attrs["source"] == "synthetic"``.
    """
    if not 0.0 <= transition_fraction <= 1.0:
        raise ValueError(f"transition_fraction must lie in [0, 1], got {transition_fraction}")
    rng = np.random.default_rng(seed)
    dynamics = list(DYNAMICS)
    rows = []
    for technique in TECHNIQUES:  # canonical order: the manifest does not depend on dict order
        n = int(class_sizes.get(technique, 0))
        if n <= 0:
            continue
        spec = TECHNIQUE_SPECS[technique]
        families = families_for(technique)
        # Mean rates log-uniform over the class's range, stratified (one draw per
        # 1/n of the log range, in random order): even a class of 45 covers its
        # two octaves evenly, so no lambda2 catches more of it by chance.
        lo, hi = RATE_RANGE_HZ[technique]
        position = (rng.permutation(n) + rng.random(n)) / n
        for rate in lo * (hi / lo) ** position:
            rows.append(_draw_row(rng, technique, spec, families, dynamics, transition_fraction,
                                  float(rate)))
    df = pd.DataFrame(rows)
    if len(df):
        df = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        df.insert(1, "example_id", np.arange(len(df), dtype=np.int64))
    df.attrs["source"] = "synthetic"  # split by pmt_core.data.split.assign_split
    return df


def _draw_row(rng, technique, spec, families, dynamics, transition_fraction, rate) -> dict:
    """One manifest row.

    Every parameter is drawn for every row, used or not (a transition time without
    a transition, a decay for a wind): switching transitions on changes
    ``transition_s`` only, and the rows of one class do not shift another's draws
    differently from a row of any other class.
    """
    family = families[rng.integers(len(families))]
    candidates = [ins for ins in instruments_for(technique) if ins.family == family]
    ins = candidates[rng.integers(len(candidates))]
    lo, hi = ins.f0_range_hz
    f0 = _log_uniform(rng, lo, hi)
    drift = float(rng.uniform(-spec.drift_max_oct, spec.drift_max_oct))
    start_rate, end_rate = rate_curve(rate, drift)
    depth_draw = rng.uniform(*spec.depth_range)
    interval = float(100.0 * rng.integers(1, 3))  # trill: semitone or tone
    depth = interval if technique == "trill" else float(depth_draw)
    muted = bool(rng.random() < MUTE_PROBABILITY) and bool(ins.mutes)
    mute_draw = rng.random()
    mute_type = ins.mutes[int(mute_draw * len(ins.mutes))] if ins.mutes else ""
    onset = float(rng.uniform(0.0, 0.3))  # SOL notes start near the file start
    duration = float(rng.uniform(2.5, 5.5))  # ... and last most of it
    with_transition = bool(rng.random() < transition_fraction)
    transition = float(rng.uniform(0.4, 0.5 * duration))  # the technique lasts >= half the note
    # One uniform draw is kept from the former AM-or-FM choice, so that a seed draws
    # every other parameter as before and data sets differ in the distractor only.
    rng.random()
    distractor_rate = _log_uniform(rng, *DISTRACTOR_RATE_HZ)
    distractor_depth = _log_uniform(rng, *DISTRACTOR_DEPTH)
    decay_factor = 2.0 ** rng.uniform(-DECAY_FACTOR_OCT, DECAY_FACTOR_OCT)  # drawn for every row
    decay = ins.decay_s * decay_factor if ins.plucked else np.nan
    doubled = bool(rng.random() < DOUBLING_PROBABILITY)
    detune = rng.choice((-1.0, 1.0)) * rng.uniform(*DOUBLING_DETUNE_CENTS)
    doubling_db = rng.uniform(*DOUBLING_DB_RANGE)
    return {
        "path": "",
        "technique": technique,
        "instrument": ins.name,
        "family": ins.family,
        "f0_hz": f0,
        "modulation_rate_hz": rate,
        "modulation_rate_min_hz": min(start_rate, end_rate),
        "modulation_rate_max_hz": max(start_rate, end_rate),
        "modulation_drift_oct": drift,
        "modulation_depth": depth,
        "transition_s": transition if with_transition else np.nan,
        "distractor_kind": DISTRACTOR_KIND,
        "distractor_rate_hz": distractor_rate,
        "distractor_depth": distractor_depth,
        "level_drift_db": float(rng.uniform(*LEVEL_DRIFT_DB_RANGE)),
        "dynamics": dynamics[rng.integers(len(dynamics))],
        "mute": muted,
        "mute_type": mute_type if muted else "",
        "onset_s": onset,
        "duration_s": duration,
        "noise_db": float(rng.uniform(*NOISE_DB_RANGE)),
        "floor_db": float(rng.uniform(*FLOOR_DB_RANGE)),
        "tilt_db_per_oct": float(rng.uniform(*TILT_RANGE_DB_PER_OCT)),
        "pitch_wander_cents": _log_uniform(rng, *WANDER_CENTS_RANGE),
        "decay_s": float(decay),
        "doubled": doubled,
        "doubling_detune_cents": float(detune) if doubled else np.nan,
        "doubling_db": float(doubling_db) if doubled else np.nan,
        "ablated": False,
        "twin_of": -1,
        "seed": int(rng.integers(2**31 - 1)),
    }


def ablated_twin(row) -> pd.Series:
    """Return the modulation-ablated twin of a manifest row.

    The twin keeps every other column, the ``seed`` included, so it renders the
    same instrument, pitch, dynamics, noise, distractor, level drift, doubling and
    seed-derived randomness as its source, with the technique's modulation off
    (:attr:`TechniqueSpec.ablated`; module docstring). Its ``technique`` stays the
    source's: a model at chance on twins predicts it no better than chance.

    Parameters
    ----------
    row : pandas.Series or mapping
        A row of :func:`synthetic_manifest` (a twin gives an equal twin).

    Returns
    -------
    pandas.Series
        The row with ``ablated = True``, ``twin_of`` = the source's
        ``example_id`` (its index label when it has none) and the
        :data:`MODULATION_COLUMNS` set to NaN.
    """
    source = pd.Series(row)
    twin = source.copy()
    if not bool(source.get("ablated", False)):
        twin["twin_of"] = int(source["example_id"]) if "example_id" in source else source.name
    twin["ablated"] = True
    for column in MODULATION_COLUMNS:
        twin[column] = np.nan
    return twin


def ablated_twins(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the ablated twin of every row of a manifest (same order and index)."""
    twins = pd.DataFrame([ablated_twin(row) for _, row in frame.iterrows()], index=frame.index)
    twins = twins.astype({c: frame[c].dtype for c in frame.columns
                          if c not in MODULATION_COLUMNS + ("ablated", "twin_of")})
    twins = twins.astype({c: np.float64 for c in MODULATION_COLUMNS if c in twins})
    twins["ablated"] = twins["ablated"].astype(bool)
    twins["twin_of"] = twins["twin_of"].astype(np.int64)
    twins.attrs = dict(frame.attrs)
    return twins


# ------------------------------------------------------------------- synthesis --
def _harmonic_amplitudes(
    ins: Instrument, f0: float, n_partials: int, tilt_shift: float, muted: bool, mute_type: str
) -> np.ndarray:
    """Spectral envelope of the harmonics 1..n_partials (linear amplitudes)."""
    k = np.arange(1, n_partials + 1, dtype=np.float64)
    freqs = k * f0
    tilt = ins.tilt_db_per_octave + tilt_shift
    db = -tilt * np.log2(k)
    db += ins.formant_gain_db * np.exp(
        -0.5 * (np.log2(freqs / ins.formant_hz) / ins.formant_width_oct) ** 2
    )
    if muted:
        # Mutes damp the highs and add a nasal resonance (harmon/stopped most).
        nasal = 12.0 if mute_type in ("harmon", "stopped", "wah") else 6.0
        db -= 4.0 * np.maximum(np.log2(freqs / 1000.0), 0.0)
        db += nasal * np.exp(-0.5 * (np.log2(freqs / 1800.0) / 0.3) ** 2)
    amps = 10.0 ** (db / 20.0)
    amps[1::2] *= ins.even_gain
    return amps


def _wavetable(amps: np.ndarray, phases: np.ndarray, first_partial: int = 1) -> np.ndarray:
    """One period of the sum of harmonics ``first_partial..`` (inverse real FFT)."""
    spectrum = np.zeros(_TABLE_SIZE // 2 + 1, dtype=np.complex128)
    n = min(len(amps), _TABLE_SIZE // 2 - 1)
    # sin(k phase + theta): coefficient -i/2 N e^(i theta) in numpy's irfft convention.
    spectrum[1 : n + 1] = -0.5j * _TABLE_SIZE * amps[:n] * np.exp(1j * phases[:n])
    spectrum[1:first_partial] = 0.0
    return np.fft.irfft(spectrum, n=_TABLE_SIZE).astype(np.float32)


def _lookup(table: np.ndarray, phase_cycles: np.ndarray) -> np.ndarray:
    """Linear-interpolated read of a one-period table at ``phase_cycles`` (periods)."""
    pos = phase_cycles * float(_TABLE_SIZE)
    idx = pos.astype(np.int64)
    frac = (pos - idx).astype(np.float32)
    idx = (idx & (_TABLE_SIZE - 1)).astype(np.int32)  # the table size is a power of 2
    slope = np.roll(table, -1) - table
    return np.take(table, idx) + frac * np.take(slope, idx)


def _carrier(rng, ins, f0, pitch_oct, sample_rate, tilt_shift, muted, mute_type):
    """Harmonic (or slightly inharmonic) tone following ``f0 * 2**pitch_oct``."""
    inst_freq = f0 * np.exp2(pitch_oct, dtype=np.float64)
    max_freq = float(inst_freq.max())
    # Band-limit: every partial stays below 0.45 fs at the highest sounding pitch.
    n_partials = max(1, min(_MAX_PARTIALS, int(0.45 * sample_rate / max_freq)))
    amps = _harmonic_amplitudes(ins, f0, n_partials, tilt_shift, muted, mute_type)
    phase = np.cumsum(inst_freq / sample_rate)
    # Random harmonic phases (body resonances scramble them): a realistic crest
    # factor. A fixed count is drawn so that a twin, whose highest pitch (and so
    # its partial count) differs, still gets the same phase of every partial.
    phases = rng.uniform(0.0, 2.0 * np.pi, _MAX_PARTIALS)
    if ins.inharmonicity <= 0.0:
        return _lookup(_wavetable(amps, phases), phase)
    # Stiff strings: the lowest partials are stretched and synthesised directly; the
    # higher ones (weak, fast-decaying in reality) come from the harmonic table.
    n_direct = min(_N_DIRECT_PARTIALS, n_partials)
    out = _lookup(_wavetable(amps, phases, first_partial=n_direct + 1), phase)
    for k in range(1, n_direct + 1):
        stretch = k * np.sqrt(1.0 + ins.inharmonicity * k * k)
        if stretch * max_freq < 0.45 * sample_rate:
            cycles = stretch * phase
            cycles -= np.floor(cycles)  # float32 sine of the wrapped phase: fast and exact enough
            out += amps[k - 1] * np.sin(
                np.float32(2 * np.pi) * cycles.astype(np.float32) + np.float32(phases[k - 1])
            )
    return out


def _cycle_boundaries(rng, rate, drift_oct, jitter, start, length, total_s):
    """Jittered cycle boundaries (s) from ``start`` to past ``total_s``.

    The jitter-free rate follows :func:`rate_curve` over ``[start, start + length]``
    and stays at its end value afterwards (the release). Durations are log-normal
    around it; all of them are then rescaled by one factor (close to 1) so that
    exactly ``rate * length`` cycles fit into the technique's segment.
    """
    r0, r1 = rate_curve(rate, drift_oct)
    cycles_in_segment = rate * length
    n = int(np.ceil(cycles_in_segment + max(total_s - start - length, 0.0) * r1
                    + 2.0 + 4.0 * jitter * np.sqrt(cycles_in_segment + 1.0))) + 4
    k = np.arange(n + 1, dtype=np.float64)
    d = float(drift_oct)
    inside = np.minimum(k, cycles_in_segment)
    if abs(d) < 1e-9:
        tau = inside / cycles_in_segment
    else:
        # Inverse of the phase integral r0 L (2**(d tau) - 1) / (d ln 2).
        tau = np.log2(1.0 + inside * d * np.log(2.0) / (r0 * length)) / d
    nominal = start + length * tau + np.maximum(k - cycles_in_segment, 0.0) / r1
    durations = np.diff(nominal) * np.exp(jitter * rng.standard_normal(n))
    boundaries = np.concatenate([[0.0], np.cumsum(durations)])
    at_end = np.interp(cycles_in_segment, k, boundaries)
    return start + boundaries * (length / at_end)


def _cycle_position(t, boundaries):
    """Cycle index, phase within the cycle (0..1) and cycle duration at times ``t``."""
    pos = np.interp(t, boundaries, np.arange(len(boundaries), dtype=np.float64))
    index = np.minimum(pos.astype(np.int64), len(boundaries) - 2)
    durations = np.diff(boundaries).astype(np.float32)
    return index, (pos - index).astype(np.float32), durations[index]


def _get(params, key, default=None):
    value = params.get(key, default) if hasattr(params, "get") else getattr(params, key, default)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return default
    return value


@dataclass(frozen=True)
class _Params:
    """A manifest row with defaults for the columns an older row may lack."""

    technique: str
    ins: Instrument
    seed: int
    f0: float
    rate: float
    drift: float
    depth: float
    dynamics: str
    muted: bool
    mute_type: str
    onset: float
    duration: float
    transition: float
    noise_db: float
    floor_db: float
    tilt: float
    wander_cents: float
    decay_s: float
    level_drift_db: float
    distractor_kind: str
    distractor_rate: float
    distractor_depth: float
    doubled: bool
    doubling_detune: float
    doubling_db: float
    ablated: bool

    @classmethod
    def from_row(cls, params) -> _Params:
        technique = _get(params, "technique")
        if technique not in TECHNIQUE_SPECS:
            raise ValueError(f"unknown technique {technique!r}")
        ins = INSTRUMENTS[_get(params, "instrument")]
        ablated = bool(_get(params, "ablated", False))
        muted = bool(_get(params, "mute", False))
        mute_type = str(_get(params, "mute_type", "") or "")
        if muted and not mute_type:
            mute_type = ins.mutes[0] if ins.mutes else ""
        rate = float(_get(params, "modulation_rate_hz", np.nan))
        if not ablated and not rate > 0:
            raise ValueError("a row that is not ablated needs a positive modulation_rate_hz")
        default_decay = ins.decay_s if ins.plucked else np.nan
        return cls(
            technique=technique,
            ins=ins,
            seed=int(_get(params, "seed", 0)),
            f0=float(_get(params, "f0_hz")),
            rate=rate,
            drift=float(_get(params, "modulation_drift_oct", 0.0)),
            depth=float(_get(params, "modulation_depth", np.nan)),
            dynamics=str(_get(params, "dynamics", "mf")),
            muted=muted,
            mute_type=mute_type,
            onset=float(_get(params, "onset_s", 0.1)),
            duration=float(_get(params, "duration_s", 4.0)),
            transition=float(_get(params, "transition_s", 0.0)),
            noise_db=float(_get(params, "noise_db", -30.0)),
            floor_db=float(_get(params, "floor_db", -200.0)),
            tilt=float(_get(params, "tilt_db_per_oct", 0.0)),
            wander_cents=float(_get(params, "pitch_wander_cents", 5.0)),
            decay_s=float(_get(params, "decay_s", default_decay)) if ins.plucked else np.nan,
            level_drift_db=float(_get(params, "level_drift_db", 0.0)),
            distractor_kind=str(_get(params, "distractor_kind", "") or ""),
            distractor_rate=float(_get(params, "distractor_rate_hz", 0.0)),
            distractor_depth=float(_get(params, "distractor_depth", 0.0)),
            doubled=bool(_get(params, "doubled", False)),
            doubling_detune=float(_get(params, "doubling_detune_cents", 0.0)),
            doubling_db=float(_get(params, "doubling_db", -120.0)),
            ablated=ablated,
        )


def synthesize(params, sample_rate: int = SAMPLE_RATE, n_samples: int = N_SAMPLES) -> np.ndarray:
    """Render one example from its manifest row.

    Parameters
    ----------
    params : pandas.Series or mapping
        A row of :func:`synthetic_manifest` or :func:`ablated_twin`. Required:
        ``technique``, ``instrument``, ``f0_hz``, ``modulation_rate_hz`` (unless
        ``ablated``), ``seed``; ``modulation_depth`` for every technique but the
        twin. Any other column missing (or NaN) takes a neutral default: no drift,
        transition, distractor, doubling or level drift, tilt 0, noise -30 dB,
        the instrument's decay, ``dynamics`` mf, onset 0.1 s, duration 4 s.
    sample_rate : int
        Output sample rate (Hz).
    n_samples : int
        Output length; the note is cut at the clip end when longer.

    Returns
    -------
    numpy.ndarray
        float32 mono signal, deterministic for the row (its ``seed``).
    """
    p = _Params.from_row(params)
    spec = TECHNIQUE_SPECS[p.technique]
    ins = p.ins

    def stream(k):
        return np.random.default_rng([p.seed, k])

    nuisance = stream(_STREAM_NUISANCE)
    # Envelopes and pitch are computed at a control rate (every _CONTROL_HOP
    # samples, 0.36 ms at 44.1 kHz) and interpolated: their fastest features (2 ms
    # attacks) are well resolved, and synthesis stays fast.
    control_rate = sample_rate / _CONTROL_HOP
    t64 = np.arange(n_samples // _CONTROL_HOP + 2, dtype=np.float64) / control_rate
    t = t64.astype(np.float32)
    end = p.onset + p.duration

    # The note's shell: attack, release and level drift (every class alike).
    release = 0.08
    shell = np.clip((t - p.onset) / ins.attack_s, 0.0, 1.0)
    shell *= np.clip((end - t) / release, 0.0, 1.0)
    tau = np.clip((t - p.onset) / p.duration, 0.0, 1.0)
    shell *= np.exp(np.float32(p.level_drift_db * np.log(10.0) / 20.0) * (tau - 0.5))
    steady = np.ones(len(t), dtype=np.float32)
    if ins.plucked:
        steady = np.exp(-np.maximum(t - p.onset, 0.0) / np.float32(p.decay_s))

    # Slow pitch wander (intonation drift, every class alike): two slow sinusoids
    # whose peaks add up to the example's pitch_wander_cents.
    pitch = np.zeros(len(t), dtype=np.float32)
    weights = nuisance.uniform(0.25, 1.0, 2)
    for weight in weights * (p.wander_cents / weights.sum()):
        hz, phase0 = nuisance.uniform(0.1, 1.0), nuisance.uniform(0.0, 2 * np.pi)
        omega = np.float32(2 * np.pi * hz)
        pitch += np.float32(weight / 1200.0) * np.sin(omega * t + np.float32(phase0))
    level_jitter_db = nuisance.uniform(-2.0, 2.0)  # player variation of the note level

    # Distractor: the upper partials' gain over the whole note, twins included.
    brightness = None
    if p.distractor_kind == DISTRACTOR_KIND and p.distractor_rate > 0:
        phase0 = stream(_STREAM_DISTRACTOR).uniform(0.0, 2 * np.pi)
        wave = np.sin(np.float32(2 * np.pi * p.distractor_rate) * t + np.float32(phase0))
        brightness = 1.0 + np.float32(p.distractor_depth) * wave

    amplitude, noise_shape, source_b = steady, np.float32(1.0), None
    if not p.ablated:
        start = p.onset + p.transition
        length = max(end - start, 1.0 / p.rate)
        mod_rng = stream(_STREAM_MODULATION)
        boundaries = _cycle_boundaries(mod_rng, p.rate, p.drift, spec.jitter, start, length,
                                       t64[-1] + 1.0)
        index, u, cycle_s = _cycle_position(t64, boundaries)
        cycle_depth = np.clip(1.0 + spec.depth_jitter * mod_rng.standard_normal(len(boundaries)),
                              0.4, 1.6)
        ctx = _Context(t=t, control_rate=control_rate, ins=ins, decay_s=p.decay_s,
                       steady=steady, start=start, depth=p.depth, rng=mod_rng, u=u,
                       index=index, cycle_s=cycle_s, cycle_depth=cycle_depth)
        mod = spec.render(ctx)
        # After a transition the technique fades in; before, the note is its twin.
        gate = np.float32(1.0)
        if p.transition > 0:
            gate = np.clip((t - np.float32(start)) / np.float32(TRANSITION_RAMP_S), 0.0, 1.0)
        amplitude = steady + gate * (mod.amplitude - steady)
        pitch = pitch + gate * mod.pitch_oct
        noise_shape = 1.0 + gate * (mod.noise - 1.0)
        if mod.source_b is not None:
            b_gate, b_level, b_tilt, b_detune = mod.source_b
            source_b = (gate * b_gate, b_level, b_tilt, b_detune)

    def full(track):
        return _upsample(track, n_samples)

    level_db, dynamics_tilt = DYNAMICS[p.dynamics]
    tilt = dynamics_tilt + p.tilt
    timbre = (sample_rate, tilt, p.muted, p.mute_type)
    pitch_full = full(pitch)
    harmonic = _carrier(stream(_STREAM_VOICE_A), ins, p.f0, pitch_full, *timbre)
    if source_b is not None:
        b_gate, b_level, b_tilt, b_detune = source_b
        voice_b = _carrier(stream(_STREAM_VOICE_B), ins, p.f0, pitch_full + np.float32(b_detune),
                           sample_rate, tilt + b_tilt, p.muted, p.mute_type)
        harmonic += full(b_gate) * (np.float32(b_level) * voice_b - harmonic)
    if p.doubled:
        doubling = stream(_STREAM_DOUBLING)
        # The second player's own slow pitch wander: its beats with the first voice
        # are irregular, as in an ensemble, not a steady AM.
        cents, hz, phase0 = doubling.uniform(1.0, 3.0), doubling.uniform(0.1, 0.5), \
            doubling.uniform(0.0, 2 * np.pi)
        own = np.float32(cents / 1200.0) * np.sin(np.float32(2 * np.pi * hz) * t
                                                  + np.float32(phase0))
        double = _carrier(doubling, ins, p.f0,
                          full(pitch + own + np.float32(p.doubling_detune / 1200.0)), *timbre)
        harmonic += np.float32(10.0 ** (p.doubling_db / 20.0)) * double

    if brightness is not None:
        harmonic = _modulate_upper(harmonic, full(brightness), p.f0 * DISTRACTOR_SPLIT_HARMONIC,
                                   sample_rate)
    envelope = shell * amplitude
    # The note's samples (the whole clip if the note starts after its end).
    first = min(int(np.ceil(p.onset * sample_rate)), n_samples)
    last = min(int(np.ceil(end * sample_rate)), n_samples)
    sounding = slice(first, last) if last > first else slice(0, n_samples)
    harmonic *= full(envelope)
    harmonic *= np.float32(1.0 / max(_rms(harmonic[sounding]), 1e-12))
    noise = _noise(stream(_STREAM_NOISE), n_samples, sample_rate, ins)
    noise *= full(envelope * noise_shape)
    # The long-term noise level is the example's noise_db whatever the technique.
    noise *= np.float32(10.0 ** (p.noise_db / 20.0) / max(_rms(noise[sounding]), 1e-12))
    out = harmonic + noise
    if p.floor_db > -150.0:
        # A recording's noise floor runs through the whole clip, silence included.
        floor = _shaped_noise(stream(_STREAM_FLOOR), n_samples, sample_rate, _pink)
        out += np.float32(10.0 ** (p.floor_db / 20.0)) * floor
    # Note RMS = dynamics level, with +-2 dB of player variation.
    gain = 10.0 ** ((level_db + level_jitter_db) / 20.0) / max(_rms(out[sounding]), 1e-12)
    out *= np.float32(gain)
    peak = float(np.max(np.abs(out)))
    if peak > 0.99:
        out *= np.float32(0.99 / peak)
    return out.astype(np.float32, copy=False)


def _modulate_upper(x: np.ndarray, gain: np.ndarray, split_hz: float,
                    sample_rate: int) -> np.ndarray:
    """``x`` with its spectrum above ``split_hz`` multiplied by ``gain`` (per sample).

    An exact split (the two parts sum to ``x``); the split sits between partials,
    so the brick wall cuts no line.
    """
    spectrum = np.fft.rfft(x)
    upper = np.fft.rfftfreq(len(x), 1.0 / sample_rate) > split_hz
    high = np.fft.irfft(np.where(upper, spectrum, 0.0), n=len(x)).astype(np.float32)
    return x + (gain - np.float32(1.0)) * high


def _upsample(track: np.ndarray, n_samples: int) -> np.ndarray:
    """Linear interpolation of a control-rate track (one value per _CONTROL_HOP samples)."""
    track = np.asarray(track, dtype=np.float32)
    weights = np.arange(_CONTROL_HOP, dtype=np.float32) / np.float32(_CONTROL_HOP)
    before, after = track[:-1, None], track[1:, None]
    return (before + (after - before) * weights).ravel()[:n_samples]


def _noise(rng, n_samples, sample_rate, ins):
    """Breath or bow noise: Gaussian noise band-passed around the instrument's formant.

    A fourth-order Butterworth band-pass magnitude from half to twice the noise
    centre (twice the formant, 500 Hz at least).
    """
    centre = min(max(2.0 * ins.formant_hz, 500.0), 0.3 * sample_rate)
    lo, hi = centre / 2.0, min(centre * 2.0, 0.45 * sample_rate)

    def band_pass(freqs):
        x = (freqs**2 - lo * hi) / (np.maximum(freqs, 1e-9) * (hi - lo))
        return 1.0 / np.sqrt(1.0 + np.minimum(np.abs(x), 1e8) ** 4)

    return _shaped_noise(rng, n_samples, sample_rate, band_pass)


def _pink(freqs):
    """Magnitude of pink noise (-3 dB/octave) from 20 Hz to the band limit."""
    return np.where(freqs >= 20.0, 1.0 / np.sqrt(np.maximum(freqs, 20.0)), 0.0)


def _shaped_noise(rng, n_samples, sample_rate, magnitude):
    """Unit-RMS Gaussian noise with the spectral ``magnitude(freqs)``, below 0.45 fs.

    Drawn in the frequency domain (complex Gaussian bins times the magnitude):
    one inverse FFT instead of a recursive filter.
    """
    freqs = np.fft.rfftfreq(n_samples, 1.0 / sample_rate).astype(np.float32)
    gain = np.where(freqs <= 0.45 * sample_rate, magnitude(freqs), 0.0).astype(np.float32)
    bins = rng.standard_normal((2, len(freqs)), dtype=np.float32)
    noise = np.fft.irfft((bins[0] + 1j * bins[1]) * gain, n=n_samples).astype(np.float32)
    return noise / max(_rms(noise), 1e-12)


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
