"""``python -m pmt_core``: explain a recording, clear errors, cache and baseline commands.

The CLI runs in-process through ``main(argv)`` so the scattering filter bank (~7 s)
is built once; only the "no traceback" check starts a subprocess, on a path that
fails before any scattering.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from pmt_core.__main__ import main
from pmt_core.features.compression import LogCompression
from pmt_core.features.scattering import ScatteringConfig
from pmt_core.infra.cache import FeatureCache
from pmt_core.model.checkpoint import save_checkpoint
from pmt_core.model.network import PMTConvNet
from pmt_core.techniques import TECHNIQUES

SR = 44100


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A random-weight S1+S2 checkpoint, an S1 one, and WAVs: modulated, silent, empty, bad."""
    folder = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    config = ScatteringConfig()
    compression = LogCompression().fit(rng.gamma(2.0, 1e-3, size=(4, 1200, 32)))
    out = {}
    for kind, n_paths in (("s1s2", 1200), ("s1", 74)):
        fitted = compression if kind == "s1s2" else LogCompression(mu=compression.mu[:n_paths])
        out[kind] = save_checkpoint(folder / f"{kind}.pt", PMTConvNet(n_paths).eval(),
                                    scattering_config=config, class_names=TECHNIQUES,
                                    compression=fitted, input_kind=kind)
    # J=12 keeps 1,052 paths: a consistent checkpoint, of other settings than the paper's
    out["other_config"] = save_checkpoint(
        folder / "other.pt", PMTConvNet(1052).eval(), scattering_config=ScatteringConfig(J=12),
        class_names=TECHNIQUES, compression=LogCompression(mu=compression.mu[:1052]),
        input_kind="s1s2")
    t = np.arange(int(1.5 * SR)) / SR
    tone = 0.3 * (1 + 0.8 * np.cos(2 * np.pi * 6 * t)) * np.sin(2 * np.pi * 440 * t)
    sf.write(folder / "tremolo.wav", tone.astype(np.float32), SR)
    sf.write(folder / "silent.wav", np.zeros(SR, dtype=np.float32), SR)
    sf.write(folder / "empty.wav", np.zeros(0, dtype=np.float32), SR)
    (folder / "garbage.wav").write_bytes(b"not a wave file at all")
    out.update({name: folder / f"{name}.wav" for name in ("tremolo", "silent", "empty",
                                                         "garbage")})
    out["folder"] = folder
    return out


def test_explain_writes_map_and_prints_summary(files, capsys):
    png = files["folder"] / "map.png"
    assert main(["explain", str(files["tremolo"]), "--checkpoint", str(files["s1s2"]),
                 "--out", str(png), "--top", "4"]) == 0
    text = capsys.readouterr().out
    assert "probabilities:" in text and "top 4 paths by |relevance|" in text
    predicted = text.split(": ", 1)[1].split(" (p = ")[0]
    assert predicted in TECHNIQUES
    probs = [float(x.split()[-1]) for x in text.split("probabilities: ")[1].split("\n")[0]
             .split(", ")]
    assert sum(probs) == pytest.approx(1.0, abs=2e-3)
    assert text.count("\n    ") >= 5  # header + 4 rows
    assert "dominant modulation:" in text and "profile peaks at" in text
    assert "the peak the validation suite validates; compare this one" in text
    # 1.5 s of a 5.94 s window: three quarters of the model's frames are padding
    assert "note: 7" in text and "% of the model's 5.94 s window is padding or silence" in text
    assert "rate in the audio:" in text  # the smoke clip is too short: none confident
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_explain_measures_the_rate_in_the_audio_without_the_model():
    from pmt_core.data.synth.manifest import synthetic_manifest
    from pmt_core.data.synth.render import synthesize
    from pmt_core.explain_audio import audio_rate

    row = synthetic_manifest({"vibrato": 1}, seed=2).iloc[0]
    rate = audio_rate(synthesize(row), 44100, "vibrato")
    assert rate["rate_cue"] == "pitch" and rate["rate_confident"]
    assert abs(np.log2(rate["rate_estimate_hz"] / row["modulation_rate_hz"])) < 0.25
    assert audio_rate(synthesize(row), 44100, "ordinario") is None


def test_explain_s1_checkpoint_has_no_modulation(files, capsys):
    png = files["folder"] / "s1.png"
    assert main(["explain", str(files["tremolo"]), "--checkpoint", str(files["s1"]),
                 "--out", str(png), "--rule", "epsilon"]) == 0
    text = capsys.readouterr().out
    assert "n/a (the model sees first-order paths only)" in text
    assert "74 input paths" in text and png.exists()


@pytest.mark.parametrize(("audio", "checkpoint", "message"), [
    ("tremolo", "missing", "no checkpoint at"),
    ("tremolo", "other_config", "other scattering settings: J: checkpoint 12, expected 13"),
    ("silent", "s1s2", "silent file: nothing to explain"),
    ("empty", "s1s2", "empty audio file"),
    ("garbage", "s1s2", "unreadable audio file"),
    ("nowhere", "s1s2", "no such audio file"),
])
def test_explain_errors_are_one_line(files, capsys, audio, checkpoint, message):
    wav = files.get(audio, files["folder"] / "nowhere.wav")
    ckpt = files.get(checkpoint, files["folder"] / "missing.pt")
    assert main(["explain", str(wav), "--checkpoint", str(ckpt)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert captured.out == ""


EXPLAIN_KEYS = {"path", "predicted", "probabilities", "rule", "top_relevance", "duration_s",
                "used_s", "window_s", "file_sample_rate", "model_sample_rate", "channels",
                "peak_modulation_hz", "peak_carrier_hz", "profile_peak_hz", "top_paths",
                "audio_rate", "notes", "png"}


def _strict_json(line: str):
    def refuse(name):
        raise AssertionError(f"{name} in the JSON output: {line}")
    return json.loads(line, parse_constant=refuse)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A folder of awkward recordings: 0.1 s, antiphase stereo, 22050 Hz, silent."""
    folder = tmp_path_factory.mktemp("batch")
    t = np.arange(int(1.5 * SR)) / SR
    tone = 0.3 * (1 + 0.8 * np.cos(2 * np.pi * 6 * t)) * np.sin(2 * np.pi * 440 * t)
    sf.write(folder / "short.flac", tone[: SR // 10].astype(np.float32), SR)
    # the right channel's polarity inverted (and 10 % quieter): the mono mix keeps 5 %
    sf.write(folder / "antiphase.wav", np.stack([tone, -0.9 * tone], axis=1), SR,
             subtype="FLOAT")
    t22 = np.arange(int(1.5 * 22050)) / 22050
    sf.write(folder / "rate22050.wav", (0.3 * np.sin(2 * np.pi * 440 * t22)), 22050)
    sf.write(folder / "silent.wav", np.zeros(SR, dtype=np.float32), SR)
    (folder / "notes.txt").write_text("not audio: a folder argument skips it")
    (folder / "sub").mkdir()
    sf.write(folder / "sub" / "deeper.wav", tone.astype(np.float32), SR)
    return folder


def test_explain_several_files_as_json_lines(files, batch, tmp_path, capsys):
    maps = tmp_path / "maps"
    status = main(["explain", str(batch), str(files["tremolo"]), "--checkpoint",
                   str(files["s1s2"]), "--json", "--out", str(maps), "--top", "3"])
    captured = capsys.readouterr()
    # the silent file fails on its own line; the other four are explained
    assert status == 2
    assert captured.err.splitlines() == [
        f"error: {batch / 'silent.wav'}: silent file: nothing to explain"]
    records = [_strict_json(line) for line in captured.out.splitlines()]
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in records}
    # the folder's audio files, sorted, not its subfolders; then the file argument
    assert list(by_name) == ["antiphase.wav", "rate22050.wav", "short.flac", "tremolo.wav"]
    for name, r in by_name.items():
        assert set(r) == EXPLAIN_KEYS
        assert r["top_relevance"] == "onehot" and r["rule"] == "epsilon_zplus"
        assert r["predicted"] in TECHNIQUES and set(r["probabilities"]) == set(TECHNIQUES)
        assert r["model_sample_rate"] == SR and r["window_s"] == pytest.approx(2**18 / SR)
        assert len(r["top_paths"]) == 3
        magnitudes = [abs(p["relevance"]) for p in r["top_paths"]]
        assert magnitudes == sorted(magnitudes, reverse=True)
        assert {"order", "carrier_hz", "modulation_hz", "relevance"} == set(r["top_paths"][0])
        assert all(p["modulation_hz"] is None for p in r["top_paths"] if p["order"] == 1)
        assert r["png"] == str(maps / f"{name}.relevance.png")
        assert (maps / f"{name}.relevance.png").read_bytes()[:4] == b"\x89PNG"
    short, stereo, low = by_name["short.flac"], by_name["antiphase.wav"], by_name["rate22050.wav"]
    assert short["used_s"] == pytest.approx(0.1)
    assert any("covers 0.10 s of the model's 5.94 s window (1.7 %)" in n and "padding" in n
               for n in short["notes"])
    assert stereo["channels"] == 2
    assert any("channels cancel in the mono mix (its RMS is 5.3 %" in n for n in stereo["notes"])
    assert low["file_sample_rate"] == 22050
    assert any("resampled from the file's 22050 Hz to the model's 44100 Hz" in n
               for n in low["notes"])
    assert not any("cancel" in n or "resampled" in n for n in by_name["tremolo.wav"]["notes"])
    assert not (batch / "silent.wav.relevance.png").exists() and not (maps / "sub").exists()


def test_explain_peak_is_the_claims_onehot_peak(files, monkeypatch):
    from pmt_core import explain_audio
    from pmt_core.explain.relevance import peak_carrier_hz, peak_modulation_hz

    tops, real = [], explain_audio.explain

    def recording(*args, **kwargs):
        tops.append(kwargs.get("top"))
        return real(*args, **kwargs)

    monkeypatch.setattr(explain_audio, "explain", recording)
    e = explain_audio.Explainer.load(files["s1s2"]).explain(files["tremolo"])
    assert tops == ["onehot"] and e.top_relevance == "onehot"
    assert e.peak_modulation_hz == peak_modulation_hz(e.relevance[None], e.paths)[0]
    assert e.peak_carrier_hz == peak_carrier_hz(e.relevance[None], e.paths)[0]


def test_explain_escapes_file_names(files, tmp_path, capsys):
    hostile = tmp_path / "a\x1b[2Jb.wav"
    hostile.write_bytes(files["tremolo"].read_bytes())
    assert main(["explain", str(hostile), "--checkpoint", str(files["s1"]), "--no-png",
                 "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "a\\x1b[2Jb.wav: " in out
    assert "relevance map: not written" in out and not list(tmp_path.glob("*.png"))


def test_explain_class_names_with_escapes_are_one_escaped_line(files, tmp_path, capsys):
    payload = torch.load(files["s1"], weights_only=True)
    payload["metadata"]["class_names"][0] = "trill\x1b[2J"
    forged = tmp_path / "forged.pt"
    torch.save(payload, forged)
    assert main(["explain", str(files["tremolo"]), "--checkpoint", str(forged),
                 "--no-png"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "\x1b" not in captured.err
    assert captured.err.count("\n") == 1
    assert "class names must be printable text" in captured.err and "trill\\x1b[2J" in captured.err


def _no_scatter(*args, **kwargs):
    raise AssertionError("scatter reached: the refusal came after minutes of work")


@pytest.mark.parametrize(("layout", "message"), [
    ("same-name", "would both write"),
    ("twice", "is given twice"),
    ("png-for-several", "names a folder for their maps"),
    ("empty-folder", "a folder without WAV or FLAC files"),
])
def test_explain_refuses_clashes_before_work(files, tmp_path, capsys, monkeypatch, layout,
                                             message):
    from pmt_core import explain_audio

    monkeypatch.setattr(explain_audio, "scatter", _no_scatter)
    for side in ("left", "right"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "take.wav").write_bytes(files["tremolo"].read_bytes())
    left, right = tmp_path / "left" / "take.wav", tmp_path / "right" / "take.wav"
    (tmp_path / "empty").mkdir()
    argv = {"same-name": [left, right, "--out", tmp_path / "maps"],
            "twice": [tmp_path / "left", left],
            "png-for-several": [left, right, "--out", tmp_path / "map.png"],
            "empty-folder": [left, tmp_path / "empty"]}[layout]
    assert main(["explain", *map(str, argv), "--checkpoint", str(files["s1"])]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and message in captured.err
    assert not list(tmp_path.rglob("*.png"))


def test_error_exit_has_no_traceback(files):
    done = subprocess.run(
        [sys.executable, "-m", "pmt_core", "explain", str(files["tremolo"]), "--checkpoint",
         str(files["folder"] / "missing.pt")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_cache_info_and_clear(tmp_path, capsys):
    root = tmp_path / "cache"
    FeatureCache(root, "namespace1").put("ab" + "0" * 30, np.ones((4, 2)), {"f0_hz": 1.0})
    assert main(["cache", "info", "--cache-dir", str(root)]) == 0
    text = capsys.readouterr().out
    assert "entries: 1" in text and "namespace: namespace1 (1 entries" in text
    assert "marker: .pmt-cache present" in text and "not cache entries" not in text
    assert main(["cache", "clear", "--cache-dir", str(root)]) == 0
    assert "cache cleared" in capsys.readouterr().out
    assert not root.exists()  # the cache made the folder, so it goes too


def test_baseline_update_and_compare(tmp_path, capsys):
    report = {"profile": "ci", "device": "cpu", "replicates": 1,
              "dataset": {"source": "synthetic", "n_examples": 3}, "settings": {"seed": 0},
              "claims": [{"id": "accuracy.s1.per_class", "status": "passed", "verdict": "holds",
                          "decided_by_profile": True,
                          "figures": {"trill": {"value": 0.9, "interval": [0.8, 1.0]}}}]}
    run = tmp_path / "validation.json"
    run.write_text(json.dumps(report))
    base = tmp_path / "base.json"
    assert main(["baseline", "update", str(run), str(base)]) == 0
    assert main(["baseline", "compare", str(run), str(base)]) == 0
    assert "no drift" in capsys.readouterr().out
    report["claims"][0]["figures"]["trill"]["value"] = 0.7
    run.write_text(json.dumps(report))
    assert main(["baseline", "compare", str(run), str(base)]) == 1
    assert "accuracy.s1.per_class [trill]: figure 0.9 -> 0.7" in capsys.readouterr().out
    # a verdict change with every figure as in the baseline: listed, and drift
    report["claims"][0]["figures"]["trill"]["value"] = 0.9
    report["claims"][0]["verdict"] = "inconclusive"
    run.write_text(json.dumps(report))
    assert main(["baseline", "compare", str(run), str(base)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "1 drift(s) in 1 claims; 1 verdict change(s)"
    assert "verdict  accuracy.s1.per_class: holds -> inconclusive" in out
    assert main(["baseline", "compare", "--json", str(run), str(base)]) == 1
    comparison = json.loads(capsys.readouterr().out)
    assert comparison["verdict_changes"] == [{"claim": "accuracy.s1.per_class",
                                              "baseline": "holds", "current": "inconclusive",
                                              "drift": True, "decided_by_profile": True}]
    # the same change of a claim the profile is not sized to decide: listed only
    report["claims"][0]["decided_by_profile"] = False
    run.write_text(json.dumps(report))
    assert main(["baseline", "compare", str(run), str(base)]) == 0
    assert "listed   accuracy.s1.per_class: holds -> inconclusive" in capsys.readouterr().out
    assert comparison["summary"] == "1 drift(s) in 1 claims; 1 verdict change(s)"
    main(["claims", "--json"])
    listing = json.loads(capsys.readouterr().out)
    assert {"id", "title", "group", "bounds", "paper"} <= set(listing[0])
    assert {"figure", "op", "value"} <= set(listing[0]["bounds"][0])
    assert main(["claims", "--group", "nosuch"]) == 2
    assert main(["baseline", "compare", str(run), str(tmp_path / "none.json")]) == 2
    assert "no baseline file" in capsys.readouterr().err


def test_one_line_shows_control_characters_as_escapes():
    from pmt_core.infra.checks import one_line

    text = one_line("cannot read \x1b[2Jtake.wav\r\nerror: forged\tline")
    assert text == "cannot read \\x1b[2Jtake.wav error: forged\\tline"
    assert text.isprintable()


def test_no_command_prints_the_help(capsys):
    from pmt_core.__main__ import main

    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage:" in out and "explain" in out and "baseline" in out
