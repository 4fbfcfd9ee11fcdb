"""Sample format and the distributions the synthetic data set draws from.

Every range here is the same for all five classes (except the per-technique
rate ranges, :data:`RATE_RANGE_HZ`): what a class may differ in is the
modulation (:mod:`pmt_core.data.synth.modulators`), never a nuisance.
The design behind the numbers is in :mod:`pmt_core.data.synth`.
"""

from __future__ import annotations

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

#: Columns that describe the technique's modulation: NaN in an ablated twin.
MODULATION_COLUMNS = (
    "modulation_rate_hz",
    "modulation_rate_min_hz",
    "modulation_rate_max_hz",
    "modulation_drift_oct",
    "modulation_depth",
    "transition_s",
)
