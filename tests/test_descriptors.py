import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmt_core.data.descriptors import DESCRIPTOR_NAMES, describe

SR = 44100
N = 2**17  # 3 s: enough for rates >= 2 Hz, quick to analyse


def _harmonic(f0, n=N, am_rate=None, am_depth=0.0, fm_rate=None, fm_cents=0.0, n_harm=10):
    t = np.arange(n) / SR
    freq = f0 * np.ones(n)
    if fm_rate:
        freq = f0 * 2 ** (fm_cents / 1200 * np.sin(2 * np.pi * fm_rate * t))
    phase = 2 * np.pi * np.cumsum(freq) / SR
    x = sum(np.sin(k * phase + k) / k for k in range(1, n_harm + 1) if k * f0 < 0.45 * SR)
    if am_rate:
        x = x * (1 - am_depth * 0.5 * (1 + np.sin(2 * np.pi * am_rate * t)))
    return (0.1 * x).astype(np.float32)


def test_keys_and_types():
    d = describe(_harmonic(220.0))
    assert tuple(d) == DESCRIPTOR_NAMES
    assert all(isinstance(v, float) and np.isfinite(v) for v in d.values())


@pytest.mark.parametrize(
    "signal", [np.zeros(N), np.zeros(0), np.zeros(100) + 0.1, np.full(N, np.nan)]
)
def test_silence_and_degenerate_inputs_give_zeros(signal):
    d = describe(signal)
    assert set(d) == set(DESCRIPTOR_NAMES)
    assert all(np.isfinite(v) for v in d.values())
    assert d["envelope_rate_hz"] == 0.0 and d["pitch_rate_hz"] == 0.0 and d["f0_estimate_hz"] == 0.0


def test_rms_and_centroid_of_a_sine():
    t = np.arange(N) / SR
    d = describe(0.5 * np.sin(2 * np.pi * 1000.0 * t))
    assert d["rms"] == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)
    assert d["peak"] == pytest.approx(0.5, rel=1e-3)
    assert d["spectral_centroid_hz"] == pytest.approx(1000.0, rel=0.02)


@pytest.mark.parametrize("f0", [41.2, 110.0, 440.0, 1760.0, 3520.0])
def test_f0_estimate(f0):
    assert abs(np.log2(describe(_harmonic(f0))["f0_estimate_hz"] / f0)) < 1 / 24


def test_f0_estimate_with_weak_odd_partials_and_missing_fundamental():
    t = np.arange(N) / SR
    x = sum(np.sin(2 * np.pi * k * 196.0 * t) / k for k in range(2, 12))
    assert abs(np.log2(describe(x)["f0_estimate_hz"] / 196.0)) < 1 / 24


@settings(max_examples=10, deadline=None)
@given(rate=st.floats(3.0, 40.0), f0=st.floats(100.0, 2000.0))
def test_envelope_rate_of_am_tone(rate, f0):
    d = describe(_harmonic(f0, am_rate=rate, am_depth=0.6))
    assert abs(np.log2(d["envelope_rate_hz"] / rate)) < 0.05


@settings(max_examples=10, deadline=None)
@given(rate=st.floats(3.0, 12.0), f0=st.floats(80.0, 2000.0), cents=st.floats(15.0, 100.0))
def test_pitch_rate_of_fm_tone(rate, f0, cents):
    d = describe(_harmonic(f0, fm_rate=rate, fm_cents=cents))
    assert abs(np.log2(d["pitch_rate_hz"] / rate)) < 0.05
    assert d["pitch_depth_cents"] == pytest.approx(cents / np.sqrt(2), rel=0.25)


def test_low_note_pitch_period_not_taken_for_modulation():
    # A 41 Hz note's waveform repeats at 41 Hz: the envelope must not report it.
    d = describe(_harmonic(41.2, n_harm=40, am_rate=9.0, am_depth=0.5))
    assert abs(np.log2(d["envelope_rate_hz"] / 9.0)) < 0.05


def test_alternation_reported_at_its_repetition_rate():
    # Notes A B A B ... at 16 notes/s with B weaker (as in the synthetic
    # bisbigliando): the pattern repeats 8 times/s.
    t = np.arange(N) / SR
    note = np.floor(t * 16.0).astype(int)
    level = np.where(note % 2 == 0, 1.0, 0.6) * np.exp(-(t * 16.0 % 1.0) * 1.0)
    d = describe(_harmonic(330.0) * level)
    assert abs(np.log2(d["envelope_rate_hz"] / 8.0)) < 0.05


def test_steady_tone_has_no_salient_modulation():
    steady = describe(_harmonic(440.0))
    modulated = describe(_harmonic(440.0, am_rate=10.0, am_depth=0.5))
    assert modulated["envelope_rate_salience"] > 100 * max(steady["envelope_rate_salience"], 1.0)
    assert steady["pitch_depth_cents"] < 1.0


def test_sounding_region():
    x = np.zeros(N, dtype=np.float32)
    x[SR // 2 : SR // 2 + 2 * SR] = _harmonic(330.0, n=2 * SR)
    assert describe(x)["sounding_s"] == pytest.approx(2.0, abs=0.05)


def _coloured_noise(rng, exponent, n=N):
    """Gaussian noise whose power falls as f**-exponent (0 white, 1 pink, 2 brown)."""
    freqs = np.fft.rfftfreq(n, 1 / SR)
    gain = np.where(freqs > 0, np.maximum(freqs, 1.0) ** (-exponent / 2), 0.0)
    bins = rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))
    return np.fft.irfft(bins * gain, n=n)


@pytest.mark.parametrize(("exponent", "slope"), [(0, 0.0), (1, -3.01), (2, -6.02)])
def test_ltas_slope_of_coloured_noise(rng, exponent, slope):
    d = describe(_coloured_noise(rng, exponent))
    assert d["ltas_slope_db_per_oct"] == pytest.approx(slope, abs=0.3)


def test_flatness_tells_noise_from_lines(rng):
    white = describe(_coloured_noise(rng, 0))["log_spectral_flatness"]
    tone = _harmonic(220.0, n_harm=40)
    line = describe(tone)["log_spectral_flatness"]
    assert -0.35 < white <= 0.0  # Welch averages: the geometric mean is a little low
    assert line < -1.5
    # Adding noise to the tone makes it flatter, monotonically.
    levels = [describe(tone + g * _coloured_noise(rng, 0) * np.std(tone))["log_spectral_flatness"]
              for g in (0.01, 0.1, 1.0)]
    assert line < levels[0] < levels[1] < levels[2] < white + 0.05


@settings(max_examples=10, deadline=None)
@given(gain=st.floats(1e-4, 1e3), f0=st.floats(80.0, 1500.0))
def test_spectral_descriptors_ignore_the_level(gain, f0):
    # The network sees each clip divided by its standard deviation: these
    # descriptors must not change with the level.
    x = _harmonic(f0).astype(np.float64) + 1e-3 * np.sin(np.arange(N) * 0.3)
    ref, scaled = describe(x), describe(gain * x)
    for key in ("log_spectral_flatness", "ltas_slope_db_per_oct", "spectral_centroid_hz"):
        assert scaled[key] == pytest.approx(ref[key], rel=1e-6, abs=1e-9), key
    assert scaled["rms"] == pytest.approx(gain * ref["rms"], rel=1e-6)


def test_spectral_descriptors_at_a_low_sample_rate(rng):
    # The bands are clipped below the Nyquist frequency: still finite.
    d = describe(_coloured_noise(rng, 1, n=2**15), sample_rate=16000)
    assert d["ltas_slope_db_per_oct"] == pytest.approx(-3.01, abs=0.6)
    assert np.isfinite(d["log_spectral_flatness"])
