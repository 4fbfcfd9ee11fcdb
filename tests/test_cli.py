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
    assert "probabilities:" in text and "top 4 paths:" in text
    predicted = text.split(": ", 1)[1].split(" (p = ")[0]
    assert predicted in TECHNIQUES
    probs = [float(x.split()[-1]) for x in text.split("probabilities: ")[1].split("\n")[0]
             .split(", ")]
    assert sum(probs) == pytest.approx(1.0, abs=2e-3)
    assert text.count("\n    ") >= 5  # header + 4 rows
    assert "dominant modulation:" in text and "profile peaks at" in text
    assert "rate in the audio:" in text  # the smoke clip is too short: none confident
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_explain_measures_the_rate_in_the_audio_without_the_model():
    from pmt_core.data.synth import synthesize, synthetic_manifest
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
