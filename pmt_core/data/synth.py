"""Synthetic stand-in for SOL-PMT with known ground truth (method.md section 6).

Each technique is produced by its physical mechanism on a harmonic carrier whose
timbre comes from one of 30 named instruments in the 11 SOL families:

- vibrato: periodic frequency modulation, 4-8 Hz, 10-100 cents peak deviation,
  skewed (non-sinusoidal) cycles, depth ramping in, a little coupled AM;
- trill: alternation between the written note and the note a semitone or a tone
  above, 5-10 cycles/s, linear portamento of 8-20 ms between notes and a small
  amplitude dip at each note change;
- tremolo: fast re-articulation of one note (bow strokes, repeated tonguing or
  plucks), 8-16 attacks/s, each stroke a sharp attack then a decay (a sawtooth-like,
  non-sinusoidal envelope) with a noise burst;
- flatterzunge: flutter-tongued note, irregular amplitude modulation 20-40 Hz with
  strongly jittered rate, depth and pulse shape, plus modulated breath noise;
- bisbigliando: one pitch alternated between two sources (two harp strings, or two
  fingerings on winds, two strings in unison on bowed strings), detuned by a few
  cents and with different timbres and levels; each note re-articulated (plucked
  decays on plucked instruments), 6-12 alternation cycles (A+B) per second.

Definition of ``modulation_rate_hz`` (cycles per second): the mean rate of the
jittered modulator, ``1 / mean(cycle durations)``, where one cycle is one period of
what the signal repeats: one vibrato period; one trill alternation A+B (the pitch
track repeats once per A+B: notes per second = 2 x rate); one tremolo stroke
(attack); one flutter pulse; one bisbigliando alternation A+B (the two sources
differ in level and timbre, so the envelope repeats once per A+B; notes or plucks
per second = 2 x rate). The
cycle durations are drawn with jitter and then rescaled so that their mean is
exactly ``1 / modulation_rate_hz``.

Units of ``modulation_depth``: vibrato peak deviation in cents; trill interval in
cents (100 or 200); tremolo and flatterzunge mean envelope dip as a fraction of
the peak amplitude (0-1); bisbigliando detuning between the two sources in cents.

Nuisance parameters (f0 log-uniform over the instrument's range, dynamics, mute,
onset, note duration) are drawn from the same distributions for every class. The
instrument is drawn uniformly among those that can play the technique; every
technique is playable by several families, so family is only a weak cue
(flatterzunge is impossible on bowed and plucked strings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import uniform_filter1d
from scipy.signal import butter, sosfilt

from pmt_core.techniques import MODULATION_BAND_HZ, TECHNIQUES

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
    noise_level : float
        Breath or bow noise relative to the harmonic part (RMS ratio).
    attack_s : float
        Attack time of a note.
    decay_s : float or None
        Exponential decay time of plucked notes; None for sustained instruments.
    mutes : tuple of str
        Mute options (empty when the instrument has none).
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
    noise_level: float = 0.02
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
    # Breathy, few harmonics, weak formant.
    "Flutes": dict(techniques=_ALL, even_gain=0.8, formant_gain_db=4.0, formant_width_oct=1.0,
                   noise_level=0.06, attack_s=0.05),
    # Weak even harmonics.
    "Clarinets": dict(techniques=_NO_VIBRATO, even_gain=0.2, formant_gain_db=5.0),
    # Double reeds: nasal formant.
    "Oboes": dict(techniques=_ALL, formant_gain_db=10.0, formant_width_oct=0.5, noise_level=0.03,
                  attack_s=0.03),
    "Bassoons": dict(techniques=_ALL, formant_gain_db=10.0, formant_width_oct=0.6,
                     noise_level=0.03, attack_s=0.04),
    "Saxophones": dict(techniques=_ALL, even_gain=0.9, formant_gain_db=8.0),
    # Brass: bright, little noise, mutes.
    "Horns": dict(techniques=_NO_VIBRATO, formant_gain_db=8.0, noise_level=0.01, attack_s=0.06),
    "Trumpets": dict(techniques=_ALL, formant_gain_db=8.0, noise_level=0.01, attack_s=0.03),
    "Trombones": dict(techniques=_ALL, formant_gain_db=8.0, noise_level=0.01, attack_s=0.04,
                      mutes=_BRASS_MUTES),
    "Tubas": dict(techniques=_ALL, formant_gain_db=8.0, noise_level=0.01, attack_s=0.06),
    # Bowed strings: sawtooth-like, bow noise, mutes; harmonic (the bow mode-locks
    # the partials, so stiffness does not show).
    "Strings": dict(techniques=_BOWED, formant_gain_db=6.0, noise_level=0.03, attack_s=0.05,
                    mutes=_STRING_MUTES),
    # Plucked strings: free decays, stiff (inharmonic) strings.
    "PluckedStrings": dict(techniques=_BOWED, even_gain=0.9, formant_gain_db=6.0,
                           noise_level=0.005, attack_s=0.003, inharmonicity=5e-5),
}

#: name, family, lowest and highest note (Hz), formant (Hz), roll-off (dB/octave),
#: and what differs from the family's timbre.
_INSTRUMENT_SPECS = [
    ("Piccolo", "Flutes", 587.3, 3520.0, 2500, 12.0, {}),
    ("Flute", "Flutes", 261.6, 2349.3, 1500, 11.0, {}),
    ("Alto-Flute", "Flutes", 196.0, 1568.0, 1000, 12.0, {"noise_level": 0.07}),
    ("Bass-Flute", "Flutes", 130.8, 1046.5, 700, 13.0, {"noise_level": 0.08}),
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

#: Technique -> (depth range, jitter of cycle durations (log-normal sigma),
#: relative jitter of the per-cycle depth). Depth units: see the module docstring.
_MODULATION = {
    "vibrato": ((10.0, 100.0), 0.08, 0.15),
    "trill": ((100.0, 200.0), 0.08, 0.0),
    "tremolo": ((0.5, 0.95), 0.07, 0.15),
    "flatterzunge": ((0.4, 0.9), 0.18, 0.35),
    "bisbigliando": ((3.0, 15.0), 0.10, 0.2),
}

_TABLE_SIZE = 4096
_N_DIRECT_PARTIALS = 6  # partials synthesised directly when the instrument is inharmonic


def instruments_for(technique: str) -> list[Instrument]:
    """Return the instruments that can play ``technique``, in table order."""
    return [ins for ins in _INSTRUMENT_LIST if technique in ins.techniques]


def synthetic_manifest(class_sizes: Mapping[str, int], seed: int = 0) -> pd.DataFrame:
    """Draw the parameters of a synthetic data set, one row per example.

    Parameters
    ----------
    class_sizes : mapping of str to int
        Number of examples per technique (any subset of the five techniques).
    seed : int
        Seed of the whole manifest (parameters, per-example seeds and split).

    Returns
    -------
    pandas.DataFrame
        Columns ``path`` (empty: synthetic), ``technique``, ``instrument``,
        ``family``, ``f0_hz``, ``modulation_rate_hz``, ``modulation_depth``,
        ``dynamics``, ``mute``, ``mute_type``, ``onset_s``, ``duration_s``,
        and ``seed``; no split (:func:`pmt_core.data.split.assign_split` makes
        one). ``attrs["source"] == "synthetic"``.
    """
    rng = np.random.default_rng(seed)
    dynamics = list(DYNAMICS)
    rows = []
    for technique in TECHNIQUES:  # canonical order: the manifest does not depend on dict order
        n = int(class_sizes.get(technique, 0))
        if n <= 0:
            continue
        candidates = instruments_for(technique)
        band = MODULATION_BAND_HZ[technique]
        depth_range = _MODULATION[technique][0]
        for _ in range(n):
            ins = candidates[rng.integers(len(candidates))]
            lo, hi = ins.f0_range_hz
            f0 = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            rate = float(rng.uniform(*band))
            if technique == "trill":
                depth = float(100.0 * rng.integers(1, 3))  # semitone or tone
            else:
                depth = float(rng.uniform(*depth_range))
            muted = bool(ins.mutes) and bool(rng.random() < MUTE_PROBABILITY)
            rows.append(
                {
                    "path": "",
                    "technique": technique,
                    "instrument": ins.name,
                    "family": ins.family,
                    "f0_hz": f0,
                    "modulation_rate_hz": rate,
                    "modulation_depth": depth,
                    "dynamics": dynamics[rng.integers(len(dynamics))],
                    "mute": muted,
                    "mute_type": ins.mutes[rng.integers(len(ins.mutes))] if muted else "",
                    # SOL notes start near the file start and last most of it.
                    "onset_s": float(rng.uniform(0.0, 0.3)),
                    "duration_s": float(rng.uniform(2.5, 5.5)),
                    "seed": int(rng.integers(2**31 - 1)),
                }
            )
    df = pd.DataFrame(rows)
    df = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    df.attrs["source"] = "synthetic"  # split by pmt_core.data.split.assign_split
    return df


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
    table = np.fft.irfft(spectrum, n=_TABLE_SIZE)
    return np.append(table, table[0]).astype(np.float32)


def _lookup(table: np.ndarray, phase_cycles: np.ndarray) -> np.ndarray:
    """Linear-interpolated wavetable read at ``phase_cycles`` (in periods)."""
    pos = (phase_cycles % 1.0) * _TABLE_SIZE
    idx = pos.astype(np.int64)
    frac = (pos - idx).astype(np.float32)
    return table[idx] + frac * (table[idx + 1] - table[idx])


def _carrier(
    rng: np.random.Generator,
    ins: Instrument,
    f0: float,
    pitch_oct: np.ndarray,
    sample_rate: int,
    tilt_shift: float,
    muted: bool,
    mute_type: str,
) -> np.ndarray:
    """Harmonic (or slightly inharmonic) tone following ``f0 * 2**pitch_oct``."""
    inst_freq = f0 * np.exp2(pitch_oct, dtype=np.float64)
    max_freq = float(inst_freq.max())
    # Band-limit: every partial stays below 0.45 fs at the highest sounding pitch.
    n_partials = max(1, int(0.45 * sample_rate / max_freq))
    amps = _harmonic_amplitudes(ins, f0, n_partials, tilt_shift, muted, mute_type)
    phase = np.cumsum(inst_freq / sample_rate)
    # Random harmonic phases (body resonances scramble them): a realistic crest
    # factor instead of the pulse-like peaks of aligned phases.
    phases = rng.uniform(0.0, 2.0 * np.pi, n_partials)
    if ins.inharmonicity <= 0.0:
        return _lookup(_wavetable(amps, phases), phase)
    # Stiff strings: the lowest partials are stretched and synthesised directly; the
    # higher ones (weak, fast-decaying in reality) come from the harmonic table.
    n_direct = min(_N_DIRECT_PARTIALS, n_partials)
    out = _lookup(_wavetable(amps, phases, first_partial=n_direct + 1), phase)
    two_pi_phase = (2.0 * np.pi) * phase
    for k in range(1, n_direct + 1):
        stretch = k * np.sqrt(1.0 + ins.inharmonicity * k * k)
        if stretch * max_freq < 0.45 * sample_rate:
            out += amps[k - 1] * np.sin(stretch * two_pi_phase + phases[k - 1]).astype(np.float32)
    return out


def _cycles(rng, rate, jitter, start, duration):
    """Jittered cycle boundaries (s) covering [start, start + duration].

    Durations are log-normal around ``1 / rate`` and rescaled so that their mean
    is exactly ``1 / rate``: the recorded rate is the modulator's mean rate.
    """
    n = int(np.ceil(duration * rate)) + 2
    periods = np.exp(jitter * rng.standard_normal(n))
    periods *= 1.0 / (rate * periods.mean())
    return start + np.concatenate([[0.0], np.cumsum(periods)])


def _cycle_position(t, boundaries):
    """Cycle index and phase within the cycle (0..1) at times ``t``."""
    pos = np.interp(t, boundaries, np.arange(len(boundaries), dtype=np.float64))
    index = np.minimum(pos.astype(np.int64), len(boundaries) - 2)
    return index, (pos - index).astype(np.float32)


def _note_envelope(ins, t, onset, duration, free_decay=True, release=0.08):
    """Attack, sustain (or free decay for plucked instruments), release.

    ``free_decay=False`` for re-articulated plucked notes (tremolo, bisbigliando),
    whose decays restart at every stroke.
    """
    rel = t - onset
    env = np.clip(rel / ins.attack_s, 0.0, 1.0)
    env *= np.clip((onset + duration - t) / release, 0.0, 1.0)
    if ins.plucked and free_decay:
        env *= np.exp(-np.maximum(rel, 0.0) / ins.decay_s)
    return env.astype(np.float32)


def _get(params, key, default=None):
    value = params.get(key, default) if hasattr(params, "get") else getattr(params, key, default)
    return default if value is None or (isinstance(value, float) and np.isnan(value)) else value


def synthesize(params, sample_rate: int = SAMPLE_RATE, n_samples: int = N_SAMPLES) -> np.ndarray:
    """Render one example from its manifest row.

    Parameters
    ----------
    params : pandas.Series or mapping
        A row of :func:`synthetic_manifest` (``technique``, ``instrument``,
        ``f0_hz``, ``modulation_rate_hz``, ``modulation_depth``, ``dynamics``,
        ``mute``, ``seed``; ``mute_type``, ``onset_s``, ``duration_s`` optional).
    sample_rate : int
        Output sample rate (Hz).
    n_samples : int
        Output length; the note is cut at the clip end when longer.

    Returns
    -------
    numpy.ndarray
        float32 mono signal, deterministic for the row (its ``seed``).
    """
    technique = _get(params, "technique")
    if technique not in _MODULATION:
        raise ValueError(f"unknown technique {technique!r}")
    ins = INSTRUMENTS[_get(params, "instrument")]
    rng = np.random.default_rng(int(_get(params, "seed", 0)))
    f0 = float(_get(params, "f0_hz"))
    rate = float(_get(params, "modulation_rate_hz"))
    depth = float(_get(params, "modulation_depth"))
    level_db, tilt_shift = DYNAMICS[_get(params, "dynamics", "mf")]
    muted = bool(_get(params, "mute", False))
    mute_type = str(_get(params, "mute_type", "") or (ins.mutes[0] if muted and ins.mutes else ""))
    onset = float(_get(params, "onset_s", 0.1))
    duration = float(_get(params, "duration_s", 4.0))
    _, jitter, depth_jitter = _MODULATION[technique]

    t = np.arange(n_samples, dtype=np.float64) / sample_rate
    boundaries = _cycles(rng, rate, jitter, onset, duration)
    index, u = _cycle_position(t, boundaries)
    n_cycles = len(boundaries) - 1
    cycle_depth = np.clip(1.0 + depth_jitter * rng.standard_normal(n_cycles), 0.4, 1.6)

    # Slow pitch wander of a few cents, common to all classes.
    t32 = t.astype(np.float32)
    pitch = np.zeros(n_samples, dtype=np.float32)
    for _ in range(2):
        cents, hz, phase0 = rng.uniform(1.0, 4.0), rng.uniform(0.1, 1.0), rng.uniform(0.0, 6.3)
        omega = np.float32(2 * np.pi * hz)
        pitch += np.float32(cents / 1200.0) * np.sin(omega * t32 + np.float32(phase0))
    rearticulated = technique in ("tremolo", "bisbigliando")
    env = _note_envelope(ins, t32, onset, duration, free_decay=not rearticulated)
    noise_env = np.float32(ins.noise_level) * env
    sounding = (t32 >= onset) & (t32 < onset + duration)

    if technique == "vibrato":
        shape = np.sin(2 * np.pi * u) + 0.25 * np.sin(4 * np.pi * u + 0.8)
        shape /= 1.2
        ramp = np.clip(0.3 + (t32 - onset) / rng.uniform(0.3, 0.8), 0.3, 1.0).astype(np.float32)
        pitch = pitch + (depth / 1200.0) * cycle_depth[index].astype(np.float32) * shape * ramp
        env = env * (1.0 + 0.08 * np.roll(shape, int(0.02 * sample_rate)))
        signal = _carrier(rng, ins, f0, pitch, sample_rate, tilt_shift, muted, mute_type)
    elif technique == "trill":
        duty = np.clip(0.5 + 0.05 * rng.standard_normal(n_cycles), 0.35, 0.65)
        upper = (u >= duty[index]).astype(np.float32)
        glide = max(1, int(rng.uniform(0.008, 0.02) * sample_rate))
        upper = uniform_filter1d(upper, glide)  # portamento between the two notes
        pitch = pitch + (depth / 1200.0) * upper
        env = env * (1.0 - 0.3 * (1.0 - np.abs(2.0 * upper - 1.0)))  # dip at note changes
        signal = _carrier(rng, ins, f0, pitch, sample_rate, tilt_shift, muted, mute_type)
    elif technique in ("tremolo", "flatterzunge"):
        d = np.clip(depth * cycle_depth, 0.0, 0.98)[index].astype(np.float32)
        if technique == "tremolo":
            # Stroke: sharp attack, then decay (faster on plucked instruments).
            decay = rng.uniform(1.0, 3.0) * (2.0 if ins.plucked else 1.0)
            stroke = (1.0 - np.exp(-u / 0.04)) * np.exp(-decay * u)
            # Alternate bow directions differ slightly in level.
            stroke = stroke * (1.0 + 0.05 * (index % 2 == 0))
            env = env * ((1.0 - d) + d * stroke)
            noise_env = noise_env + 0.15 * env * d * np.exp(-u / 0.1)  # bow or tongue attack noise
        else:
            sharpness = rng.uniform(1.0, 3.0, n_cycles).astype(np.float32)[index]
            pulse = (0.5 - 0.5 * np.cos(2 * np.pi * u)) ** sharpness
            env = env * (1.0 - d * pulse)
            noise_env = noise_env + 0.25 * env * d * (0.3 + pulse)
        env = uniform_filter1d(env, int(0.002 * sample_rate))  # no clicks
        signal = _carrier(rng, ins, f0, pitch, sample_rate, tilt_shift, muted, mute_type)
    else:  # bisbigliando: two detuned sources with different timbres, alternated
        half = depth / 2400.0
        level_b = rng.uniform(0.6, 0.85)  # the second string or fingering is weaker
        # Two notes per cycle: A on the first half, B on the second.
        second = (u >= 0.5).astype(np.float32)
        since = (np.where(u >= 0.5, u - 0.5, u) / rate).astype(np.float32)  # since attack (s)
        if ins.plucked:
            # Re-plucking damps the string: each note starts afresh and decays, with
            # a fast bright pluck component on top of the slow decay.
            note = (1.0 - np.exp(-since / 0.003)) * (
                np.exp(-since / ins.decay_s) + 0.8 * np.exp(-since / 0.03)
            )
        else:
            note = (1.0 - 0.5 * np.exp(-since / 0.015)) * (1.0 + 0.4 * np.exp(-since / 0.05))
        d = cycle_depth[index].astype(np.float32)
        note = 1.0 + d * (note - 1.0)
        gate = uniform_filter1d(second, int(0.004 * sample_rate))  # short crossfade
        timbre = (muted, mute_type)
        voice_a = _carrier(rng, ins, f0, pitch - half, sample_rate, tilt_shift, *timbre)
        voice_b = _carrier(rng, ins, f0, pitch + half, sample_rate, tilt_shift + 2.5, *timbre)
        signal = ((1.0 - gate) * voice_a + gate * level_b * voice_b) * note
        noise_env = noise_env + 0.1 * env * np.exp(-since / 0.01)  # finger or key noise

    signal = signal * env
    noise = _noise(rng, n_samples, sample_rate, ins)
    signal = signal / max(_rms(signal[sounding]), 1e-12)
    out = signal + noise * noise_env / max(_rms(env[sounding]), 1e-12)
    # Note RMS = dynamics level, with +-2 dB of player variation.
    gain = 10.0 ** ((level_db + rng.uniform(-2.0, 2.0)) / 20.0) / max(_rms(out[sounding]), 1e-12)
    out = out * gain
    peak = float(np.max(np.abs(out)))
    if peak > 0.99:
        out *= 0.99 / peak
    return out.astype(np.float32)


def _noise(rng, n_samples, sample_rate, ins):
    """Breath or bow noise: white noise band-passed around the instrument's formant."""
    centre = min(max(2.0 * ins.formant_hz, 500.0), 0.3 * sample_rate)
    sos = butter(2, [centre / 2.0, min(centre * 2.0, 0.45 * sample_rate)], btype="band",
                 fs=sample_rate, output="sos")
    white = rng.standard_normal(n_samples, dtype=np.float32)
    noise = sosfilt(sos, white).astype(np.float32)
    return noise / max(_rms(noise), 1e-12)


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
