"""Cheap signal descriptors computed once per example during the feature stage.

The data claims (validation/test_data_claims.py) use them instead of reloading
audio: brightness, noisiness, spectral slope and pitch as nuisance cues (the
shortcut guard, :mod:`pmt_core.data.shortcuts`), and the rates of the amplitude
envelope and of the pitch track as evidence of the modulation.

``rms`` and ``peak`` describe the clip as stored. The network never sees them:
every clip is divided by its own standard deviation before scattering
(:func:`pmt_core.data.audio.prepare_signals`), so the spectral descriptors meant
for the shortcut guard (``log_spectral_flatness``, ``ltas_slope_db_per_oct``) are
computed on the clip so normalised.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d, uniform_filter1d
from scipy.signal import get_window, welch

#: Band (Hz) searched for the envelope and pitch modulation rates.
RATE_BAND_HZ = (2.0, 64.0)
#: f0 search range (Hz): a little wider than SOL-PMT's C#1-B7.
F0_SEARCH_HZ = (30.0, 4200.0)

_CONTROL_RATE_HZ = 1000.0  # rate of the envelope and pitch tracks
_DETREND_S = 0.5  # moving average removed from the tracks: keeps rates above ~2 Hz
_PITCH_MIN_HZ = 150.0  # lowest harmonic the pitch track prefers (its band: +-30 Hz)
_EDGE_S = 0.1  # envelope and pitch-track frames dropped at each end of the note
_SOUNDING_DB = 30.0  # the note is where the envelope is within 30 dB of its maximum
_CLOSING_S = 0.5  # dips shorter than this (modulations above 2 Hz) stay in the note
_SHS_HARMONICS = 8
_SHS_DECAY = 0.84  # weight of harmonic h is 0.84**(h-1) (Hermes' subharmonic summation)
#: Bands (Hz) of the spectral flatness and of the long-term spectral slope fit:
#: where every instrument has energy, below the band limit of the synthetic data.
FLATNESS_BAND_HZ = (100.0, 16000.0)
SLOPE_BAND_HZ = (200.0, 10000.0)
_PSD_FLOOR = 1e-20  # on the unit-variance clip: keeps log() finite in empty bins

DESCRIPTOR_NAMES = (
    "rms",
    "peak",
    "spectral_centroid_hz",
    "f0_estimate_hz",
    "envelope_rate_hz",
    "envelope_rate_salience",
    "envelope_depth_db",
    "pitch_rate_hz",
    "pitch_rate_salience",
    "pitch_depth_cents",
    "partial_envelope_rate_hz",
    "partial_envelope_rate_salience",
    "sounding_s",
    "log_spectral_flatness",
    "ltas_slope_db_per_oct",
)


def describe(audio: np.ndarray, sample_rate: int = 44100) -> dict[str, float]:
    """Describe one clip.

    Parameters
    ----------
    audio : numpy.ndarray
        Mono signal.
    sample_rate : int
        Its sample rate (Hz).

    Returns
    -------
    dict of str to float
        ``rms`` and ``peak`` of the clip; ``spectral_centroid_hz`` (power-weighted
        mean frequency, Welch spectrum); ``f0_estimate_hz`` (subharmonic summation
        on the Welch spectrum, 30-4200 Hz, 1/48-octave grid); ``envelope_rate_hz``
        (fundamental in 2-64 Hz of the spectrum of the detrended log amplitude
        envelope over the sounding note, 0.1 s trimmed at its ends, by
        subharmonic summation); ``pitch_rate_hz`` (the same for the
        instantaneous-frequency track of the strongest of the first three
        harmonics); ``partial_envelope_rate_hz`` (the same for the log power of
        that harmonic: an amplitude modulation of the whole note shows there,
        while a timbral one that moves only the upper partials, such as a
        pulsing brightness, does not);
        ``*_salience`` (power at the rate over the median power in 2-64 Hz);
        ``envelope_depth_db`` and ``pitch_depth_cents`` (standard deviation of the
        detrended tracks); ``sounding_s`` (length of the note);
        ``log_spectral_flatness`` (log10 of the geometric over the arithmetic mean
        of the Welch power spectrum in 100-16000 Hz: 0 for white noise, very
        negative for a line spectrum) and ``ltas_slope_db_per_oct`` (least-squares
        slope of the long-term average spectrum, in dB per octave, over
        200-10000 Hz, each Welch bin one point), both of the clip divided by its
        standard deviation. Every value is finite: a silent or too short clip
        gives 0.0 for all of them.
    """
    x = np.asarray(audio, dtype=np.float64).ravel()
    out = dict.fromkeys(DESCRIPTOR_NAMES, 0.0)
    if len(x) == 0 or not np.all(np.isfinite(x)):
        return out
    out["rms"] = float(np.sqrt(np.mean(x**2)))
    out["peak"] = float(np.max(np.abs(x)))
    if out["peak"] < 1e-7 or len(x) < 4096:
        return out  # silence: nothing to measure

    freqs, psd = welch(x, fs=sample_rate, nperseg=8192, noverlap=4096)
    out["spectral_centroid_hz"] = float(np.sum(freqs * psd) / max(np.sum(psd), 1e-30))
    flatness, slope = _spectral_shape(freqs, psd / max(np.var(x), 1e-30), sample_rate)
    out["log_spectral_flatness"], out["ltas_slope_db_per_oct"] = flatness, slope
    f0 = _f0_shs(freqs, psd)
    out["f0_estimate_hz"] = f0

    hop = max(1, int(round(sample_rate / _CONTROL_RATE_HZ)))
    control_rate = sample_rate / hop
    envelope = _power_envelope(x, sample_rate, f0, hop)
    envelope_db = 10.0 * np.log10(envelope + 1e-12)
    region = _sounding_region(envelope_db, control_rate)
    if region.stop - region.start < int(4 * control_rate / RATE_BAND_HZ[0]):
        return out  # under two cycles of the slowest rate: rates undefined
    out["sounding_s"] = (region.stop - region.start) / control_rate

    # The note's attack and release are no modulation, and the band-pass of the
    # pitch track rings at the note's (or the clip's) edges: skip 0.1 s there.
    trim = int(_EDGE_S * control_rate)
    inner = slice(region.start + trim, region.stop - trim)
    env_track = _detrend(envelope_db[inner], control_rate)
    out["envelope_depth_db"] = float(np.std(env_track))
    out["envelope_rate_hz"], out["envelope_rate_salience"] = _dominant_rate(env_track, control_rate)

    tracks = _partial_tracks(x, sample_rate, f0, hop, freqs, psd)
    if tracks is not None and inner.stop - inner.start > 2 * control_rate / RATE_BAND_HZ[0]:
        pitch, power = tracks
        pitch_track = _detrend(pitch[inner], control_rate)
        out["pitch_depth_cents"] = float(1200.0 * np.std(pitch_track))
        out["pitch_rate_hz"], out["pitch_rate_salience"] = _dominant_rate(pitch_track, control_rate)
        partial_db = _detrend(10.0 * np.log10(power[inner] + 1e-30), control_rate)
        out["partial_envelope_rate_hz"], out["partial_envelope_rate_salience"] = (
            _dominant_rate(partial_db, control_rate))
    return {k: float(v) if np.isfinite(v) else 0.0 for k, v in out.items()}


def _spectral_shape(freqs, unit_psd, sample_rate) -> tuple[float, float]:
    """Log spectral flatness and long-term slope (dB/octave) of a unit-variance clip.

    Welch's power is linear in the signal's power, so the spectrum of the clip
    divided by its standard deviation is ``psd / var``: no second transform. The
    bands are clipped at 0.45 fs for low sample rates.
    """
    top = 0.45 * sample_rate
    band = (freqs >= FLATNESS_BAND_HZ[0]) & (freqs <= min(FLATNESS_BAND_HZ[1], top))
    power = unit_psd[band] + _PSD_FLOOR
    flatness = float(np.mean(np.log10(power)) - np.log10(np.mean(power))) if band.any() else 0.0
    fit = (freqs >= SLOPE_BAND_HZ[0]) & (freqs <= min(SLOPE_BAND_HZ[1], top))
    slope = 0.0
    if fit.sum() >= 2:
        slope = float(np.polyfit(np.log2(freqs[fit]), 10.0 * np.log10(unit_psd[fit] + _PSD_FLOOR),
                                 1)[0])
    return flatness, slope


def _f0_shs(freqs: np.ndarray, psd: np.ndarray) -> float:
    """Subharmonic summation on the square-root spectrum (robust to weak fundamentals)."""
    magnitude = np.sqrt(psd)
    # Tolerate vibrato and bin misalignment: max over +-1 bin.
    magnitude = np.maximum.reduce([magnitude, np.roll(magnitude, 1), np.roll(magnitude, -1)])
    candidates = F0_SEARCH_HZ[0] * 2.0 ** (
        np.arange(int(48 * np.log2(F0_SEARCH_HZ[1] / F0_SEARCH_HZ[0])) + 1) / 48.0
    )
    harmonics = np.arange(1, _SHS_HARMONICS + 1)
    weights = _SHS_DECAY ** (harmonics - 1)
    at = candidates[:, None] * harmonics[None, :]
    values = np.interp(at, freqs, magnitude, right=0.0)
    score = values @ weights
    return float(candidates[np.argmax(score)]) if np.max(score) > 0 else 0.0


def _power_envelope(x, sample_rate, f0, hop):
    """Short-time power, smoothed over whole pitch periods, sampled every ``hop``.

    A boxcar spanning a whole number of periods (>= 5 ms) has zeros at f0 and its
    multiples, so the pitch periodicity of low notes does not pose as modulation.
    """
    min_len = 0.005 * sample_rate
    period = sample_rate / f0 if f0 > 0 else min_len
    length = int(round(period * max(1, int(np.ceil(min_len / period)))))
    power = uniform_filter1d(x * x, size=max(1, length), mode="constant")
    n = len(power) // hop
    return power[: n * hop].reshape(n, hop).mean(axis=1)


def _sounding_region(envelope_db, control_rate):
    """Longest run of frames within ``_SOUNDING_DB`` of the (robust) maximum.

    The run is found on the closed envelope (a moving maximum, then a moving
    minimum, over ``_CLOSING_S``): the dips of a deep modulation (a flutter or a
    tremolo down to -35 dB) do not cut the note into pieces. The run is then
    trimmed to its first and last frames that are loud in the envelope itself,
    since the closing also fills the silence before a note near the clip's start.
    """
    size = max(1, int(_CLOSING_S * control_rate))
    closed = minimum_filter1d(maximum_filter1d(envelope_db, size), size)
    top = np.percentile(envelope_db, 99)
    threshold = top - _SOUNDING_DB
    loud_closed = np.concatenate([[0], (closed > threshold).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(loud_closed))
    starts, stops = edges[0::2], edges[1::2]
    if len(starts) == 0:
        return slice(0, 0)
    best = int(np.argmax(stops - starts))
    loud = np.flatnonzero(envelope_db[starts[best] : stops[best]] > threshold)
    if len(loud) == 0:
        return slice(0, 0)
    return slice(int(starts[best] + loud[0]), int(starts[best] + loud[-1] + 1))


def _detrend(track, control_rate):
    """Remove the slow course of a track (moving average over ``_DETREND_S``)."""
    size = max(1, int(_DETREND_S * control_rate))
    return track - uniform_filter1d(track, size=size, mode="nearest")


def _dominant_rate(track, control_rate):
    """Fundamental (Hz) and salience of the periodicity of a track in ``RATE_BAND_HZ``.

    A subharmonic summation on the magnitude spectrum (floor removed): candidate f
    scores ``M(f) + 0.5 M(2f) + 0.25 M(3f)``, so a pattern that repeats every A+B
    (two notes of unequal level) is reported at its repetition rate, not at the
    note rate, while a lone peak still wins over its subharmonics. The magnitude
    is max-filtered over +-0.3 Hz because jitter smears the harmonics.
    """
    n_fft = 1 << 15  # 0.03 Hz grid at 1 kHz
    windowed = (track - track.mean()) * get_window("hann", len(track))
    magnitude = np.abs(np.fft.rfft(windowed, n=n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / control_rate)
    band = (freqs >= RATE_BAND_HZ[0]) & (freqs <= RATE_BAND_HZ[1])
    floor = np.median(magnitude[band])
    if not np.max(magnitude[band]) > floor:
        return 0.0, 0.0
    spread = max(1, int(round(0.3 / (freqs[1] - freqs[0]))))
    smoothed = np.maximum(maximum_filter1d(magnitude, 2 * spread + 1) - floor, 0.0)
    candidates = freqs[band]
    score = np.maximum(magnitude[band] - floor, 0.0)
    for harmonic, weight in ((2, 0.5), (3, 0.25)):
        score = score + weight * np.interp(harmonic * candidates, freqs, smoothed)
    best = int(np.argmax(score))
    salience = (magnitude[band][best] / max(floor, 1e-30)) ** 2
    return float(candidates[best]), float(salience)


def _partial_tracks(x, sample_rate, f0, hop, freqs, psd):
    """log2 instantaneous frequency of one harmonic, power-weighted per ``hop``, and its power.

    The harmonic h in 1..3 maximising ``h * power`` within +-20% of ``h f0`` is
    isolated in the frequency domain (a band that holds both notes of a trill but
    no neighbouring harmonic); its analytic signal gives the phase increments.
    Harmonics below ``_PITCH_MIN_HZ`` are passed over when a higher one exists:
    their +-20% band is too narrow in Hz for the sidebands of a fast vibrato.
    """
    if f0 <= 0:
        return None
    best, best_score = None, 0.0
    lowest = next((h for h in (1, 2) if h * f0 >= _PITCH_MIN_HZ), 3)
    for h in range(lowest, 4):
        lo, hi = h * f0 / 1.2, h * f0 * 1.2
        if hi >= 0.45 * sample_rate:
            break
        score = h * psd[(freqs >= lo) & (freqs <= hi)].sum()
        if score > best_score:
            best, best_score = (lo, hi), score
    if best is None:
        return None
    fade = min(len(x) // 4, int(0.01 * sample_rate))  # no clicks at the clip's edges
    ramp = np.sin(np.linspace(0.0, np.pi / 2, fade)) ** 2
    x = x.copy()
    x[:fade] *= ramp
    x[len(x) - fade :] *= ramp[::-1]
    spectrum = np.fft.fft(x)
    bin_freqs = np.fft.fftfreq(len(x), 1.0 / sample_rate)
    lo, hi = best
    # Raised-cosine edges (10% of the band) keep the band-pass from ringing.
    edge = 0.1 * (hi - lo)
    gain = np.clip(np.minimum(bin_freqs - lo, hi - bin_freqs) / edge, 0.0, 1.0)
    gain = 0.5 - 0.5 * np.cos(np.pi * gain)
    analytic = np.fft.ifft(spectrum * gain)  # one-sided band: analytic signal
    increments = analytic[1:] * np.conj(analytic[:-1])
    n = len(increments) // hop
    summed = increments[: n * hop].reshape(n, hop).sum(axis=1)
    inst_freq = np.angle(summed) * sample_rate / (2.0 * np.pi)
    power = (np.abs(analytic[: n * hop]) ** 2).reshape(n, hop).mean(axis=1)
    return np.log2(np.clip(inst_freq, lo * 0.5, hi * 2.0)), power
