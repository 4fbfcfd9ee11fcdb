"""``pmt_core.explain_audio`` without a transform: ranks, records, notes, inputs, outputs.

The explanations here are built by hand; ``tests/test_cli.py`` runs the command on
real scatterings.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from pmt_core.data.recording import (
    CANCEL_RATIO,
    QUIET_FRACTION,
    SHORT_SIGNAL_FRACTION,
    RecordingInfo,
    probe_recording,
    quiet_fraction,
    recording_notes,
)
from pmt_core.explain_audio import AudioExplanation, format_explanation, read_recording
from pmt_core.explain_files import ExplainError, expand_inputs, plan_outputs
from pmt_core.features.scattering import PathTable
from pmt_core.infra.checks import printable

SR = 44100
N = 2**18


def _explanation(relevance, **changes) -> AudioExplanation:
    """Three S1 paths and three S2 paths with the given relevance."""
    paths = PathTable(order=np.array([1, 1, 1, 2, 2, 2]),
                      carrier_hz=np.array([100.0, 200.0, 400.0, 100.0, 200.0, 400.0]),
                      modulation_hz=np.array([np.nan] * 3 + [2.0, 4.0, 8.0]),
                      j=np.zeros((6, 2)), n=np.zeros((6, 2)), kymatio_index=np.arange(6))
    fields = dict(predicted="trill", probabilities={"trill": 0.6, "vibrato": 0.4},
                  relevance=np.asarray(relevance, dtype=float), paths=paths,
                  peak_modulation_hz=4.0, peak_carrier_hz=200.0, profile_peak_hz=float("nan"),
                  rule="epsilon_zplus", duration_s=1.0, used_s=1.0, window_s=N / SR,
                  file_sample_rate=SR, model_sample_rate=SR, channels=1)
    fields.update(changes)
    return AudioExplanation(**fields)


def test_top_paths_rank_by_magnitude_and_keep_the_sign():
    # the two largest magnitudes are negative S1 paths: the signed order dropped them
    e = _explanation([-0.9, 0.1, -0.5, 0.2, 0.3, -0.05])
    top = e.top_paths(3)
    assert [p.relevance for p in top] == [-0.9, -0.5, 0.3]
    assert [p.order for p in top] == [1, 1, 2]
    assert e.top_paths(0) == [] and len(e.top_paths(100)) == 6
    text = format_explanation(e, "take.wav", top=3)
    rows = text.split("relevance\n", 1)[1].splitlines()[:3]
    assert rows[0].split()[-1] == "-0.9" and rows[2].split()[-1] == "+0.3"


def test_record_is_strict_json_without_nan():
    e = _explanation([0.1] * 6, audio_rate={"rate_estimate_hz": float("nan"),
                                            "rate_salience": np.float64(0.2),
                                            "rate_cue": "pitch", "rate_confident": np.bool_(False),
                                            "rate_abstained": "no periodicity"},
                     notes=["a note"])
    record = e.to_record("take.wav", top=4, png=None)
    text = json.dumps(record, allow_nan=False)  # raises on NaN
    back = json.loads(text)
    assert back["profile_peak_hz"] is None and back["audio_rate"]["rate_estimate_hz"] is None
    assert back["audio_rate"]["rate_confident"] is False
    assert back["top_paths"][0]["modulation_hz"] is None  # an S1 path
    assert back["notes"] == ["a note"] and back["png"] is None


def test_printable_escapes_control_characters_only():
    assert printable("take é.wav") == "take é.wav"
    assert printable("a\x1b[2Jb\r\n.wav") == "a\\x1b[2Jb\\r\\n.wav"
    assert printable("x\udc80") == "x\\udc80"  # an undecodable byte of a file name
    assert printable("a\x1b[2Jb").isprintable()


def test_text_output_escapes_class_and_file_names():
    e = _explanation([0.1] * 6, predicted="tr\x1bill", probabilities={"tr\x1bill": 1.0})
    text = format_explanation(e, "a\x07.wav")
    assert "\x1b" not in text and "\x07" not in text
    assert text.startswith("a\\x07.wav: tr\\x1bill (p = 1.000)")


def _info(rate=SR, channels=1, ratio=1.0):
    return RecordingInfo(rate, channels, ratio)


def test_notes_name_what_the_figures_rest_on():
    window = N / SR

    def notes(**kw):
        base = dict(duration_s=3.0, used_s=3.0, window_s=window, quiet=0.1, info=_info(),
                    model_rate=SR)
        return recording_notes(**{**base, **kw})

    assert notes() == []
    short = notes(duration_s=0.1, used_s=0.1, quiet=0.98)
    assert len(short) == 1  # the short-signal note says it all; no second padding note
    assert "covers 0.10 s of the model's 5.94 s window (1.7 %)" in short[0]
    assert "rests mostly on padding" in short[0]
    edge = SHORT_SIGNAL_FRACTION * window
    assert notes(used_s=edge, duration_s=edge) == []
    quiet = notes(quiet=0.75)
    assert quiet == ["75 % of the model's 5.94 s window is padding or silence (frames more "
                     "than 60 dB below the loudest); the prediction rests mostly on frames "
                     "without sound"]
    assert notes(quiet=QUIET_FRACTION) == []
    cancel = notes(info=_info(channels=2, ratio=0.05))
    assert len(cancel) == 1 and "2 channels cancel in the mono mix (its RMS is 5.0 %" in cancel[0]
    assert notes(info=_info(channels=2, ratio=CANCEL_RATIO)) == []
    assert notes(info=_info(rate=22050)) == [
        "resampled from the file's 22050 Hz to the model's 44100 Hz; carriers above 11025 Hz "
        "(the file's Nyquist frequency) hold no signal"]
    assert notes(info=_info(rate=48000)) == [
        "resampled from the file's 48000 Hz to the model's 44100 Hz"]
    assert notes(duration_s=10.0, used_s=window) == [
        "only the first 5.94 s of 10.00 s are used (the model's window)"]


def test_quiet_fraction_counts_the_models_frames():
    frame = 2**13
    tone = np.sin(np.arange(8 * frame) * 0.1)
    assert quiet_fraction(tone, N, frame) == pytest.approx(24 / 32)  # 8 of 32 frames sound
    assert quiet_fraction(np.zeros(N), N, frame) == 1.0
    tone[4 * frame:] *= 1e-4  # -80 dB: silence to the note
    assert quiet_fraction(tone, N, frame) == pytest.approx(28 / 32)


def test_probe_reads_rate_channels_and_cancellation(tmp_path):
    t = np.arange(SR) / SR
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "mono.wav", tone, 22050)
    sf.write(tmp_path / "wide.wav", np.stack([tone, np.roll(tone, 37)], axis=1), SR)
    sf.write(tmp_path / "anti.wav", np.stack([tone, -0.9 * tone], axis=1), SR, subtype="FLOAT")
    assert probe_recording(tmp_path / "mono.wav", SR, N) == RecordingInfo(22050, 1, 1.0)
    wide = probe_recording(tmp_path / "wide.wav", SR, N)
    assert wide.channels == 2 and wide.mix_ratio > CANCEL_RATIO
    assert probe_recording(tmp_path / "anti.wav", SR, N).mix_ratio == pytest.approx(0.05 / 0.95,
                                                                                    rel=1e-3)


def test_exact_antiphase_is_refused_as_cancelled_not_just_silent(tmp_path):
    from pmt_core.explain_audio import _load, _refuse_silence

    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)
    path = tmp_path / "anti.wav"
    sf.write(path, np.stack([tone, -tone], axis=1), SR, subtype="FLOAT")
    audio = _load(path, SR)
    with pytest.raises(ExplainError, match="2 channels cancel in the mono mix"):
        _refuse_silence(audio, path, probe_recording(path, SR, N))
    with pytest.raises(ExplainError, match="silent file"):
        read_recording(path, SR)


def test_folders_expand_to_their_audio_files(tmp_path):
    for name in ("b.flac", "a.WAV", "c.wav", "notes.txt", "take.wav.relevance.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.wav").mkdir()  # a folder named like a recording is not one
    (tmp_path / "sub.wav" / "deep.wav").write_bytes(b"x")
    recordings, single = expand_inputs([tmp_path])
    assert [p.name for p in recordings] == ["a.WAV", "b.flac", "c.wav"] and not single
    recordings, single = expand_inputs([tmp_path / "c.wav"])
    assert recordings == [tmp_path / "c.wav"] and single
    with pytest.raises(ExplainError, match="no such audio file"):
        expand_inputs([tmp_path / "nowhere.wav"])
    with pytest.raises(ExplainError, match="AUDIO is empty"):
        expand_inputs([""])


def test_outputs_one_png_or_a_folder(tmp_path):
    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(b"x")
    a, b, ckpt = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "m.pt"
    assert plan_outputs([a], None, ckpt, single=True) == [tmp_path / "a.wav.relevance.png"]
    assert plan_outputs([a], tmp_path / "x.png", ckpt, single=True) == [tmp_path / "x.png"]
    assert plan_outputs([a, b], None, ckpt, single=False) == [
        tmp_path / "a.wav.relevance.png", tmp_path / "b.wav.relevance.png"]
    assert plan_outputs([a, b], tmp_path / "maps", ckpt, single=False) == [
        tmp_path / "maps" / "a.wav.relevance.png", tmp_path / "maps" / "b.wav.relevance.png"]
    # one recording from a folder: --out is still the folder
    assert plan_outputs([a], tmp_path / "maps", ckpt, single=False) == [
        tmp_path / "maps" / "a.wav.relevance.png"]
    with pytest.raises(ExplainError, match="names a folder for their maps"):
        plan_outputs([a, b], tmp_path / "x.png", ckpt, single=False)
    with pytest.raises(ExplainError, match="names a folder for their maps"):
        plan_outputs([a, b], a, ckpt, single=False)
    with pytest.raises(ExplainError, match="--out is empty"):
        plan_outputs([a, b], "", ckpt, single=False)
    # a recording whose name is another's map: the map would replace it
    (tmp_path / "a.wav.relevance.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ExplainError, match="is an input of this run"):
        plan_outputs([a, tmp_path / "a.wav.relevance.png"], None, ckpt, single=False)
