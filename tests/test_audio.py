import numpy as np
import pytest
import soundfile as sf

from pmt_core.data.audio import AudioError, fix_length, load_audio

SR = 44100


def _tone(freq=440.0, seconds=0.5, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x, sr=SR):
    spectrum = np.abs(np.fft.rfft(x))
    return np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)]


def test_mono_wav(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _tone(), SR, subtype="PCM_16")
    x = load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1 and len(x) == SR // 2
    np.testing.assert_allclose(x, _tone(), atol=1e-4)


def test_flac(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, _tone(), SR)
    np.testing.assert_allclose(load_audio(str(path)), _tone(), atol=1e-4)


def test_stereo_is_averaged(tmp_path):
    path = tmp_path / "st.wav"
    left, right = _tone(440.0), _tone(660.0)
    sf.write(path, np.stack([left, right], axis=1), SR, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), 0.5 * (left + right), atol=1e-6)


@pytest.mark.parametrize("file_rate", [22050, 48000, 16000])
def test_other_rate_is_resampled(tmp_path, file_rate):
    path = tmp_path / "r.wav"
    sf.write(path, _tone(1000.0, 1.0, file_rate), file_rate, subtype="FLOAT")
    x = load_audio(path, sample_rate=SR)
    assert abs(len(x) - SR) <= 1
    assert abs(_peak_hz(x) - 1000.0) < 2.0
    assert 0.3 < np.max(np.abs(x[1000:-1000])) < 0.7


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="nope.wav.*no such"):
        load_audio(tmp_path / "nope.wav")


def test_unreadable_file(tmp_path):
    path = tmp_path / "text.wav"
    path.write_text("not audio")
    with pytest.raises(AudioError, match="text.wav.*unreadable"):
        load_audio(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(AudioError, match="empty.wav.*0 samples"):
        load_audio(path)


def test_non_finite_samples(tmp_path):
    path = tmp_path / "nan.wav"
    x = _tone()
    x[100] = np.nan
    sf.write(path, x, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav.*non-finite"):
        load_audio(path)


def test_audio_error_is_value_error():
    assert issubclass(AudioError, ValueError)


def test_fix_length():
    x = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(fix_length(x, 3), [0, 1, 2])
    padded = fix_length(x, 8)
    np.testing.assert_array_equal(padded, [0, 1, 2, 3, 4, 0, 0, 0])
    assert padded.dtype == np.float32
    assert len(fix_length(x, 5)) == 5


def test_a_truncated_wav_reads_the_samples_that_are_there(tmp_path):
    # A header that declares more frames than the file holds (a copy cut short):
    # libsndfile sizes the data by the file, so the clip is the part that exists.
    path = tmp_path / "cut.wav"
    sf.write(path, np.full(10000, 0.1, dtype=np.float32), 44100, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    audio = load_audio(path, 44100)
    assert 4000 < len(audio) < 5100
    assert np.allclose(audio, 0.1, atol=1e-3)


def test_a_truncated_flac_is_one_clear_error(tmp_path):
    path = tmp_path / "cut.flac"
    noise = np.random.default_rng(0).standard_normal(200000).astype(np.float32) * 0.1
    sf.write(path, noise, 44100)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.9)])
    with pytest.raises(AudioError, match="unreadable audio file"):
        load_audio(path, 44100)
