"""The techniques' mechanisms: one modulator per technique, and its cycle grid.

A modulator turns the note's cycle grid (a drifting, jittered rate:
:func:`rate_curve`, :func:`cycle_boundaries`) into the tracks the technique
changes: amplitude, pitch, the noise's temporal shape, and for bisbigliando a
second source taking turns. :data:`TECHNIQUE_SPECS` holds each technique's
mechanism, depth range, jitters, drift and modulator;
:mod:`pmt_core.data.synth.render` turns the tracks into audio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter1d

from pmt_core.data.synth.instruments import Instrument


@dataclass
class Context:
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
class Modulation:
    """A modulator's output; each field replaces the ordinario value where it sounds."""

    amplitude: np.ndarray  # amplitude shape (replaces ``steady``)
    pitch_oct: np.ndarray | float = 0.0  # pitch offset (octaves)
    noise: np.ndarray | float = 1.0  # temporal shape of the noise (any scale)
    # Second source taking turns (bisbigliando): gate (0 = A, 1 = B), level of B,
    # tilt change of B (dB/octave), detuning of B (octaves).
    source_b: tuple[np.ndarray, float, float, float] | None = None


def _smoothing(ctx: Context, seconds: float) -> int:
    """Length (control samples) of a moving average over ``seconds``: no clicks."""
    return max(1, int(round(seconds * ctx.control_rate)))


def _since_attack(ctx: Context, fraction: np.ndarray | float) -> np.ndarray:
    """Seconds since the last attack when attacks fall at ``u = 0`` and ``u = fraction``."""
    u = ctx.u
    return (np.where(u >= fraction, u - fraction, u) * ctx.cycle_s).astype(np.float32)


def _pluck(since: np.ndarray, decay_s: float, bright: float = 0.8) -> np.ndarray:
    """Envelope of a fresh pluck: 3 ms rise, a 30 ms bright part, the string's decay."""
    shape = (1.0 - np.exp(-since / 0.003)) * (np.exp(-since / decay_s)
                                              + bright * np.exp(-since / 0.03))
    return (shape / (1.0 + bright)).astype(np.float32)


def _vibrato(ctx: Context) -> Modulation:
    u = ctx.u
    shape = (np.sin(2 * np.pi * u) + 0.25 * np.sin(4 * np.pi * u + 0.8)) / 1.2  # skewed cycles
    ramp = np.clip(0.3 + (ctx.t - ctx.start) / ctx.rng.uniform(0.3, 0.8), 0.3, 1.0)
    pitch = (ctx.depth / 1200.0) * ctx.cycle_depth[ctx.index] * shape * ramp
    # FM through the body resonances gives a little AM, lagging the pitch.
    coupled = 1.0 + 0.08 * np.roll(shape, int(0.02 * ctx.control_rate))
    return Modulation(amplitude=(ctx.steady * coupled).astype(np.float32),
                       pitch_oct=pitch.astype(np.float32))


def _trill(ctx: Context) -> Modulation:
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
    return Modulation(amplitude=amplitude.astype(np.float32),
                       pitch_oct=((ctx.depth / 1200.0) * upper).astype(np.float32))


def _tremolo(ctx: Context) -> Modulation:
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
    return Modulation(amplitude=amplitude, noise=noise.astype(np.float32))


def _flatterzunge(ctx: Context) -> Modulation:
    n_cycles = len(ctx.cycle_depth)
    d = np.clip(ctx.depth * ctx.cycle_depth, 0.0, 0.98)[ctx.index].astype(np.float32)
    sharpness = ctx.rng.uniform(1.0, 3.0, n_cycles).astype(np.float32)[ctx.index]
    pulse = (0.5 - 0.5 * np.cos(2 * np.pi * ctx.u)) ** sharpness
    amplitude = uniform_filter1d((ctx.steady * (1.0 - d * pulse)).astype(np.float32),
                                 _smoothing(ctx, 0.002))
    return Modulation(amplitude=amplitude, noise=(0.3 + pulse).astype(np.float32))


def _bisbigliando(ctx: Context) -> Modulation:
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
    return Modulation(amplitude=note.astype(np.float32), noise=noise.astype(np.float32),
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
        Range of ``modulation_depth`` (units: the docstring of :mod:`pmt_core.data.synth`).
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
    render: Callable[[Context], Modulation]


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


# ------------------------------------------------------------------ cycle grid --
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


def cycle_boundaries(rng, rate, drift_oct, jitter, start, length, total_s):
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


def cycle_position(t, boundaries):
    """Cycle index, phase within the cycle (0..1) and cycle duration at times ``t``."""
    pos = np.interp(t, boundaries, np.arange(len(boundaries), dtype=np.float64))
    index = np.minimum(pos.astype(np.int64), len(boundaries) - 2)
    durations = np.diff(boundaries).astype(np.float32)
    return index, (pos - index).astype(np.float32), durations[index]
