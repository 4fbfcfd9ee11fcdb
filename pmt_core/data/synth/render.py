"""The audio of one example: :func:`synthesize` renders a manifest row.

Harmonic carriers from wavetables (stiff strings' lowest partials directly),
breath or bow noise around the formant, the recording's noise floor, the
distractor's brightness modulation, the note's shell and level; the
technique's tracks come from :mod:`pmt_core.data.synth.modulators`. Every
random draw comes from one of the example's independent streams, so an ablated
twin draws the same nuisance as its source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pmt_core.data.synth.instruments import INSTRUMENTS, Instrument
from pmt_core.data.synth.modulators import (
    TECHNIQUE_SPECS,
    Context,
    cycle_boundaries,
    cycle_position,
)
from pmt_core.data.synth.params import (
    DISTRACTOR_KIND,
    DISTRACTOR_SPLIT_HARMONIC,
    DYNAMICS,
    N_SAMPLES,
    SAMPLE_RATE,
    TRANSITION_RAMP_S,
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
        A row of :func:`~pmt_core.data.synth.manifest.synthetic_manifest` or
        :func:`~pmt_core.data.synth.manifest.ablated_twin`. Required:
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
        boundaries = cycle_boundaries(mod_rng, p.rate, p.drift, spec.jitter, start, length,
                                       t64[-1] + 1.0)
        index, u, cycle_s = cycle_position(t64, boundaries)
        cycle_depth = np.clip(1.0 + spec.depth_jitter * mod_rng.standard_normal(len(boundaries)),
                              0.4, 1.6)
        ctx = Context(t=t, control_rate=control_rate, ins=ins, decay_s=p.decay_s,
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
