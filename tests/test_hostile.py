"""Hostile input and faults (issue 15): nothing deleted, overwritten or silently wrong.

Every case is a ``pytest.param`` made by :func:`case`, whose id names what it
breaks; :data:`TABLE` collects ``(kind, id, what it breaks, behaviour)`` of each,
and ``python tests/test_hostile.py OUT.md`` writes the table. Kinds:

* ``data loss``: a command would delete or overwrite something it does not own;
* ``hang``: the input would run for hours or exhaust memory;
* ``silently wrong``: the result would be wrong without a word;
* ``traceback``: a raw traceback (often after minutes of work) where one line does;
* ``fault``: a file-system fault the feature cache must survive, running uncached;
* ``valid edge``: a legal input at the edge, handled as documented.

No test here scatters a clip: the CLI cases replace ``scatter`` with a function
that fails the test, which also proves every refusal comes before the transform.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from pmt_core import __main__ as cli
from pmt_core import explain_audio
from pmt_core.data.audio import AudioError, fix_length, load_audio, prepare_signals
from pmt_core.data.datasets import DatasetError, load_dataset
from pmt_core.explain_audio import write_relevance_png
from pmt_core.explain_files import ExplainError, check_output, default_output
from pmt_core.features.compression import LogCompression
from pmt_core.features.scattering import ScatteringConfig, path_table
from pmt_core.infra import cache as cache_module
from pmt_core.infra import checks
from pmt_core.infra.cache import (
    ENV_VAR,
    MARKER,
    CacheError,
    CacheWarning,
    FeatureCache,
    clear_cache,
    default_cache_dir,
    resolve_cache_dir,
)
from pmt_core.infra.checks import (
    CheckError,
    check_batch_size,
    check_output_path,
    check_scattering_config,
    check_seed,
    scattering_path_counts,
)
from pmt_core.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pmt_core.model.network import PMTConvNet
from pmt_core.techniques import TECHNIQUES

SR = 44100
LOSS, HANG, WRONG, TRACE, FAULT, EDGE = ("data loss", "hang", "silently wrong", "traceback",
                                         "fault", "valid edge")
TABLE: list[tuple[str, str, str, str]] = []


def case(kind: str, case_id: str, breaks: str, behaviour: str, *values):
    """Record a case in :data:`TABLE` and return it as a ``pytest.param``."""
    TABLE.append((kind, case_id, breaks, behaviour))
    return pytest.param(*values, id=case_id)


def write_table(path) -> Path:
    """Write :data:`TABLE` as a Markdown table with counts by kind."""
    counts = {}
    for kind, *_ in TABLE:
        counts[kind] = counts.get(kind, 0) + 1
    lines = [f"{len(TABLE)} hostile cases: "
             + ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())), "",
             "| case id | kind | what it breaks | behaviour / message |", "|---|---|---|---|"]
    lines += [f"| {cid} | {kind} | {breaks} | {behaviour} |" for kind, cid, breaks, behaviour
              in TABLE]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tree_state(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes: what 'nothing touched' compares."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# =========================================================== audio entering the transform


AUDIO_REFUSED = [
    case(HANG, "stereo-channels-last", "stereo as soundfile.read returns it, (frames, 2)",
         "AudioError: shape (4410, 2) looks like (frames, channels); average with "
         "audio.mean(axis=1)", np.zeros((4410, 2)), SR,
         r"\(4410, 2\).*\(frames, channels\).*mean\(axis=1\)"),
    case(HANG, "mono-channels-last", "mono read with always_2d=True, (frames, 1)",
         "AudioError naming the shape and the fix", np.zeros((4410, 1)), SR, r"\(4410, 1\)"),
    case(HANG, "sixteen-channels-last", "one second of 16-channel audio, (frames, 16): "
         "was one clip per frame, 44,100 clips", "AudioError naming the layout",
         np.zeros((SR, 16)), SR, r"\(44100, 16\).*\(frames, channels\)"),
    case(HANG, "many-channels-last", "0.1 s of a 256-microphone array, (frames, 256)",
         "AudioError naming the layout", np.zeros((4410, 256)), SR, r"\(frames, channels\)"),
    case(HANG, "eight-channels-last", "an 8-channel file as (frames, 8)",
         "AudioError naming the shape", np.zeros((44100, 8)), SR, r"\(44100, 8\)"),
    case(TRACE, "three-axes", "a (1, 2, 100) array", "AudioError: average multi-channel audio",
         np.zeros((1, 2, 100)), SR, "multi-channel"),
    case(WRONG, "complex-samples", "complex samples (imaginary part dropped)",
         "AudioError: complex values; pass x.real or abs on purpose",
         np.ones(100) * (1 + 1j), SR, "complex"),
    case(WRONG, "complex-tensor", "a complex torch tensor",
         "AudioError: real samples expected", torch.ones(100, dtype=torch.complex64), SR,
         "complex"),
    case(WRONG, "bool-samples", "a boolean array", "AudioError: numeric samples expected",
         np.ones(100, dtype=bool), SR, "booleans"),
    case(TRACE, "object-dtype", "an object array of floats", "AudioError naming dtype object",
         np.array([0.1] * 100, dtype=object), SR, "dtype object"),
    case(TRACE, "ragged-lists", "lists of unequal lengths",
         "AudioError: not an array of samples; equal lengths needed",
         [[0.0] * 10, [0.0] * 5], SR, "not an array of samples"),
    case(TRACE, "text-samples", "an array of strings", "AudioError naming the dtype",
         np.array(["a"] * 10), SR, "dtype <U1"),
    case(TRACE, "scalar-audio", "a single number", "AudioError: shape ()", 0.5, SR,
         r"shape \(\)"),
    case(TRACE, "empty-signal", "zero samples", "AudioError: empty audio", np.array([]), SR,
         "empty"),
    case(WRONG, "nan-sample", "a NaN sample", "AudioError naming the example",
         np.array([0.0, np.nan, 1.0]), SR, r"NaN or inf \(examples \[0\]\)"),
    case(WRONG, "inf-sample", "an inf sample", "AudioError naming the example",
         np.array([[0.0, 1.0, 2.0], [0.0, np.inf, 1.0]]), SR, r"examples \[1\]"),
    case(WRONG, "rate-fractional", "sr=44100.7 (was truncated to 44100)",
         "CheckError: a whole number of Hz", np.ones(100), 44100.7, "whole number of Hz"),
    case(TRACE, "rate-zero", "sr=0", "CheckError: at least 1", np.ones(100), 0, "at least 1"),
    case(TRACE, "rate-negative", "sr=-44100", "CheckError: at least 1", np.ones(100), -44100,
         "at least 1"),
    case(TRACE, "rate-text", "sr='44100'", "CheckError: must be an integer", np.ones(100),
         "44100", "must be an integer"),
    case(WRONG, "rate-boolean", "sr=True (int(True) == 1)", "CheckError: boolean",
         np.ones(100), True, "boolean"),
    case(TRACE, "rate-nan", "sr=NaN", "CheckError: must be an integer", np.ones(100),
         float("nan"), "must be an integer"),
    case(WRONG, "rate-other", "audio at 22050 Hz for a 44100 Hz transform",
         "CheckError: resample first", np.ones(100), 22050, "resample first"),
]


@pytest.mark.parametrize(("audio", "sr", "message"), AUDIO_REFUSED)
def test_audio_refused_where_it_enters(audio, sr, message):
    with pytest.raises(CheckError, match=message) as error:
        prepare_signals(audio, sr, SR, 1024)
    assert "\n" not in str(error.value)


def test_unsigned_samples_lose_their_offset():
    # 8-bit WAV is offset binary: silence is 128. Kept, the offset was a DC term that
    # the normalisation divided into the signal (features off by a factor of ~34).
    t = np.arange(4096) / SR
    wave = np.sin(2 * np.pi * 440 * t)
    as_uint8 = np.round(128 + 100 * wave).astype(np.uint8)
    as_int16 = np.round(100 * 256 * wave).astype(np.int16)
    np.testing.assert_allclose(prepare_signals(as_uint8, SR, SR, 4096),
                               prepare_signals(as_int16, SR, SR, 4096), atol=0.02)
    assert abs(prepare_signals(as_uint8, SR, SR, 4096).mean()) < 0.01


def test_channels_last_refusal_comes_before_any_large_allocation():
    # 2 s of stereo once asked for 86 GiB: the refusal must come before the buffers
    # (measured in bytes allocated, which does not depend on the machine's speed).
    import tracemalloc

    audio = np.zeros((2 * SR, 2), dtype=np.float32)
    tracemalloc.start()
    try:
        with pytest.raises(AudioError):
            prepare_signals(audio, SR, SR, 2**18)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"{peak / 2**20:.1f} MiB allocated before the refusal"


AMPLITUDES = [
    case(WRONG, "amplitude-1e200", "samples around 1e200 (std overflowed: silence)",
         "rescaled by the peak first: same output as at unit scale", 1e200),
    case(WRONG, "amplitude-1e-200", "samples around 1e-200 (std underflowed: silence)",
         "rescaled by the peak first: same output as at unit scale", 1e-200),
    case(EDGE, "amplitude-near-float-max", "samples near 1e307",
         "rescaled: same output as at unit scale", 1e307),
]


@pytest.mark.parametrize("scale", AMPLITUDES)
def test_extreme_finite_amplitudes_are_not_silenced(rng, scale):
    x = rng.standard_normal(2000)
    reference = prepare_signals(x, SR, SR, 2048)
    out = prepare_signals(x * scale, SR, SR, 2048)
    assert np.abs(out).max() > 1.0  # not silence
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-6)


def test_ordinary_audio_is_bit_for_bit_the_authors_normalisation(rng):
    # The amplitude guard must not touch ordinary audio (cached features stay valid).
    x = rng.standard_normal(3000) * 0.3
    expected = (x / x.std()).astype(np.float32)[:2048]
    np.testing.assert_array_equal(prepare_signals(x, SR, SR, 2048)[0], expected)


AUDIO_EDGES = [
    case(EDGE, "int16-pcm", "integer PCM samples", "accepted: normalisation is scale-free",
         "int16"),
    case(EDGE, "rate-integral-float", "sr=44100.0", "accepted as 44100", "float_rate"),
    case(EDGE, "rate-numpy-integer", "sr=numpy.int64(44100)", "accepted", "numpy_rate"),
    case(EDGE, "bfloat16-tensor", "a bfloat16 torch tensor (numpy has no bfloat16)",
         "accepted, converted to float64", "bfloat16"),
    case(EDGE, "one-row-batch", "a (1, samples) batch", "accepted: one example", "row"),
]


@pytest.mark.parametrize("variant", AUDIO_EDGES)
def test_audio_edge_cases_are_handled(rng, variant):
    x = rng.standard_normal(1500)
    pcm = np.round(x * 3000).astype(np.int16)
    expected = prepare_signals(pcm.astype(np.float64) if variant == "int16" else x, SR, SR, 1024)
    got = {
        "int16": lambda: prepare_signals(pcm, SR, SR, 1024),
        "float_rate": lambda: prepare_signals(x, 44100.0, SR, 1024),
        "numpy_rate": lambda: prepare_signals(x, np.int64(SR), SR, 1024),
        "bfloat16": lambda: prepare_signals(torch.from_numpy(x).to(torch.bfloat16), SR, SR,
                                            1024),
        "row": lambda: prepare_signals(x[None, :], SR, SR, 1024),
    }[variant]()
    assert got.shape == (1, 1024) and got.dtype == np.float32
    tolerance = 2e-2 if variant == "bfloat16" else 1e-6
    np.testing.assert_allclose(got, expected, atol=tolerance * 4, rtol=tolerance)


LOAD_REFUSED = [
    case(HANG, "file-rate-1hz", "a WAV header declaring 1 Hz (x44100 upsampling)",
         "AudioError: declared rate outside 1000-768000 Hz", "rate1"),
    case(TRACE, "audio-path-is-folder", "a folder given as the recording",
         "AudioError: is a folder, not an audio file", "folder"),
    case(WRONG, "load-rate-fractional", "load_audio(path, 44100.5)",
         "CheckError: a whole number of Hz", "fractional"),
    case(TRACE, "fix-length-two-axes", "fix_length of a (frames, channels) array",
         "AudioError: one mono signal expected", "fix2d"),
    case(TRACE, "fix-length-zero", "fix_length(x, 0)", "CheckError: at least 1", "fix0"),
]


@pytest.mark.parametrize("variant", LOAD_REFUSED)
def test_audio_files_refused(tmp_path, variant):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.full(2000, 0.1, dtype=np.float32), SR)
    if variant == "rate1":
        sf.write(tmp_path / "slow.wav", np.zeros(100, dtype=np.float32), 1)
        call, message = lambda: load_audio(tmp_path / "slow.wav"), "declares a sample rate of 1"
    elif variant == "folder":
        call, message = lambda: load_audio(tmp_path), "is a folder"
    elif variant == "fractional":
        call, message = lambda: load_audio(wav, 44100.5), "whole number"
    elif variant == "fix2d":
        call, message = lambda: fix_length(np.zeros((100, 2)), 50), r"shape \(100, 2\)"
    else:
        call, message = lambda: fix_length(np.zeros(10), 0), "at least 1"
    with pytest.raises(CheckError, match=message):
        call()


# ================================================================ checks for others


SEEDS_REFUSED = [
    case(TRACE, "seed-negative", "seed=-1", "CheckError: in [0, 4294967295]", -1),
    case(TRACE, "seed-2**32", "seed=2**32 (numpy's legacy RandomState limit)",
         "CheckError: in [0, 4294967295]", 2**32),
    case(TRACE, "seed-above-2**64", "seed=2**64 + 1", "CheckError: in [0, 4294967295]",
         2**64 + 1),
    case(WRONG, "seed-fractional", "seed=3.5 (int() would give 3)",
         "CheckError: must be an integer", 3.5),
    case(TRACE, "seed-text", "seed='3'", "CheckError: must be an integer", "3"),
    case(WRONG, "seed-boolean", "seed=True", "CheckError: boolean", True),
    case(TRACE, "seed-none", "seed=None", "CheckError: must be an integer", None),
]


@pytest.mark.parametrize("seed", SEEDS_REFUSED)
def test_bad_seeds_are_refused(seed):
    with pytest.raises(CheckError, match="--seed must be"):
        check_seed(seed, "--seed")


@pytest.mark.parametrize("seed", [0, 2**32 - 1, np.int64(7), 7.0])
def test_valid_seeds_are_ints(seed):
    value = check_seed(seed)
    assert type(value) is int and value == int(seed)


BATCH_REFUSED = [
    case(HANG, "batch-size-zero", "batch_size=0 (range step 0)", "CheckError: at least 1", 0),
    case(TRACE, "batch-size-negative", "batch_size=-4", "CheckError: at least 1", -4),
    case(WRONG, "batch-size-fractional", "batch_size=2.5", "CheckError: must be an integer",
         2.5),
]


@pytest.mark.parametrize("batch_size", BATCH_REFUSED)
def test_bad_batch_sizes_are_refused(batch_size):
    with pytest.raises(CheckError, match="batch_size must"):
        check_batch_size(batch_size)
    assert check_batch_size(np.int32(16)) == 16


CONFIGS_REFUSED = [
    case(TRACE, "config-T-zero", "T=0 (ZeroDivisionError in ScatteringConfig)",
         "CheckError naming T", {"T": 0}, "T must be at least 1"),
    case(TRACE, "config-T-not-dividing", "T=3", "CheckError: T must divide n_samples",
         {"T": 3}, "T=3 must divide"),
    case(TRACE, "config-n-samples-not-power-of-two", "n_samples=1000",
         "CheckError: power of two", {"n_samples": 1000}, "power of two"),
    case(TRACE, "config-J-zero", "J=0", "CheckError naming J", {"J": 0}, "J must be in"),
    case(WRONG, "config-J-fractional", "J=12.5", "CheckError naming J", {"J": 12.5},
         "J must be an integer"),
    case(TRACE, "config-Q-zero", "Q=(0, 2)", "CheckError naming Q[0]", {"Q": [0, 2]},
         r"Q\[0\] must be in"),
    case(TRACE, "config-Q-one-value", "Q=(8,)", "CheckError: two integers", {"Q": [8]},
         "two integers"),
    case(WRONG, "config-zero-paths", "min_carrier_hz above every wavelet",
         "CheckError: keeps no path; lower min_carrier_hz", {"min_carrier_hz": 1e9},
         "keeps no path"),
    case(WRONG, "config-min-carrier-nan", "min_carrier_hz=NaN (keeps nothing, silently)",
         "CheckError: must be finite", {"min_carrier_hz": float("nan")}, "must be finite"),
    case(TRACE, "config-min-carrier-negative", "min_carrier_hz=-1",
         "CheckError: 0 or more", {"min_carrier_hz": -1.0}, "0 or more"),
    case(WRONG, "config-rate-fractional", "sample_rate=44100.7",
         "CheckError: a whole number of Hz", {"sample_rate": 44100.7}, "whole number"),
    case(WRONG, "config-undo-scaling-text", "undo_kymatio_scaling='no' (truthy)",
         "CheckError: True or False", {"undo_kymatio_scaling": "no"}, "True or False"),
]


@pytest.mark.parametrize(("override", "message"), CONFIGS_REFUSED)
def test_bad_scattering_configs_are_refused(override, message):
    fields = {**ScatteringConfig().to_dict(), **override}
    with pytest.raises(CheckError, match=message):
        check_scattering_config(fields)


def test_config_objects_are_checked_too():
    check_scattering_config(ScatteringConfig())
    with pytest.raises(CheckError, match="keeps no path"):
        check_scattering_config(ScatteringConfig(min_carrier_hz=1e9))


@pytest.mark.parametrize("config", [ScatteringConfig(), ScatteringConfig(
    n_samples=2**12, J=6, Q=(2, 1), T=2**6, min_carrier_hz=200.0)], ids=["paper", "small"])
def test_path_counts_agree_with_the_filter_bank(config):
    # scattering_path_counts mirrors scattering._Transform without building filters.
    table = path_table(config)
    assert scattering_path_counts(config) == (int(table.first_order.sum()), len(table))
    if config == ScatteringConfig():
        assert scattering_path_counts(config) == (74, 1200)


# ======================================================================== checkpoints


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    """A consistent S1 checkpoint of the paper's config (74 paths, five classes)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ckpt")
    mu = np.random.default_rng(0).gamma(2.0, 1e-3, size=74)
    return save_checkpoint(folder / "s1.pt", PMTConvNet(74).eval(),
                           scattering_config=ScatteringConfig(), class_names=TECHNIQUES,
                           compression=LogCompression(mu=mu), input_kind="s1")


def _damaged(source: Path, target: Path, edit) -> Path:
    payload = torch.load(source, weights_only=True)
    edit(payload)
    torch.save(payload, target)
    return target


def _set_config(payload, **changes):
    config = {**payload["metadata"]["scattering_config"], **changes}
    payload["metadata"]["scattering_config"] = config
    # a consistent forgery: the stored fingerprint follows the config
    import hashlib

    text = json.dumps(config, sort_keys=True)
    payload["metadata"]["scattering_fingerprint"] = hashlib.sha256(text.encode()).hexdigest()[:16]


def _nan_at(name):
    def edit(payload):
        payload["state_dict"][name].view(-1)[0] = float("nan")
    return edit


CHECKPOINTS_REFUSED = [
    case(WRONG, "ckpt-nan-weight", "a NaN convolution weight (explained with p = nan)",
         "CheckpointError: weights are not finite, naming the tensor",
         _nan_at("conv1.weight"), "conv1.weight holds 1 NaN"),
    case(WRONG, "ckpt-inf-weight", "an inf dense weight", "CheckpointError naming fc2.weight",
         lambda p: p["state_dict"]["fc2.weight"].view(-1).__setitem__(0, float("inf")),
         "fc2.weight holds 1 NaN or inf"),
    case(WRONG, "ckpt-nan-running-mean", "a NaN batch-norm statistic",
         "CheckpointError naming input_norm.running_mean", _nan_at("input_norm.running_mean"),
         "input_norm.running_mean"),
    case(WRONG, "ckpt-negative-running-var", "a negative batch-norm variance",
         "CheckpointError: negative variance",
         lambda p: p["state_dict"]["bn1.running_var"].view(-1).__setitem__(0, -1.0),
         "bn1.running_var has negative"),
    case(WRONG, "ckpt-nan-compression-mean", "a NaN compression mean",
         "CheckpointError: means must be finite and positive",
         lambda p: p["metadata"]["compression"]["mu"].__setitem__(3, float("nan")),
         r"finite and positive; 1 are not \(paths \[3\]"),
    case(WRONG, "ckpt-negative-compression-mean", "a negative compression mean",
         "CheckpointError: means must be finite and positive",
         lambda p: p["metadata"]["compression"]["mu"].__setitem__(0, -1e-3),
         "finite and positive"),
    case(WRONG, "ckpt-zero-compression-mean", "a zero compression mean (division by eps)",
         "CheckpointError: means must be finite and positive",
         lambda p: p["metadata"]["compression"]["mu"].__setitem__(0, 0.0), "finite and positive"),
    case(TRACE, "ckpt-compression-size", "73 compression means for 74 paths",
         "CheckpointError: compression has 73 paths, the model 74",
         lambda p: p["metadata"]["compression"]["mu"].pop(), "compression has 73 paths"),
    case(WRONG, "ckpt-compression-c-zero", "compression c=0", "CheckpointError naming c",
         lambda p: p["metadata"]["compression"].update(c=0.0), "compression c must be"),
    case(WRONG, "ckpt-duplicate-classes", "two outputs named trill (probabilities collapse)",
         "CheckpointError: class names must be unique; repeated ['trill']",
         lambda p: p["metadata"].update(class_names=["trill", "trill", "tremolo",
                                                     "vibrato", "flatterzunge"]),
         r"unique; repeated: \['trill'\]"),
    case(WRONG, "ckpt-empty-class-name", "an empty class name",
         "CheckpointError: non-empty strings",
         lambda p: p["metadata"]["class_names"].__setitem__(0, " "), "non-empty strings"),
    case(TRACE, "ckpt-class-names-string", "class_names stored as one string",
         "CheckpointError: a list of strings",
         lambda p: p["metadata"].update(class_names="abcde"), "list of strings"),
    case(TRACE, "ckpt-config-T-zero", "a stored config with T=0 (ZeroDivisionError)",
         "CheckpointError: invalid config, T must be at least 1",
         lambda p: _set_config(p, T=0), "invalid config.*T must be at least 1"),
    case(WRONG, "ckpt-config-zero-paths", "a stored config keeping no path",
         "CheckpointError: invalid config, keeps no path",
         lambda p: _set_config(p, min_carrier_hz=1e9), "keeps no path"),
    case(HANG, "ckpt-n-paths-huge", "n_paths=10**9 (a network of terabytes)",
         "CheckpointError before any network is built",
         lambda p: p["metadata"].update(n_paths=10**9), "n_paths=1000000000, but s1"),
    case(TRACE, "ckpt-n-paths-text", "n_paths='74'", "CheckpointError: must be an integer",
         lambda p: p["metadata"].update(n_paths="74"), "n_paths must be an integer"),
    case(TRACE, "ckpt-input-kind-swapped", "an S1 model labelled s1s2 (fails after scatter)",
         "CheckpointError: n_paths=74 but s1s2 features have 1200 paths",
         lambda p: p["metadata"].update(input_kind="s1s2"), "s1s2 features .* 1200 paths"),
    case(TRACE, "ckpt-state-dict-not-mapping", "state_dict stored as a list",
         "CheckpointError: state_dict is not a mapping",
         lambda p: p.update(state_dict=[1, 2]), "state_dict is not a mapping"),
]


@pytest.mark.parametrize(("edit", "message"), CHECKPOINTS_REFUSED)
def test_damaged_checkpoints_are_refused_on_load(good_checkpoint, tmp_path, edit, message):
    damaged = _damaged(good_checkpoint, tmp_path / "bad.pt", edit)
    with pytest.raises(CheckpointError, match=message) as error:
        load_checkpoint(damaged, device="cpu")
    assert "\n" not in str(error.value)


def test_good_checkpoint_loads(good_checkpoint):
    loaded = load_checkpoint(good_checkpoint, device="cpu", expected_config=ScatteringConfig())
    assert loaded.class_names == TECHNIQUES and loaded.model.n_paths == 74


SAVES_REFUSED = [
    case(WRONG, "save-nan-weights", "saving a diverged (NaN) model",
         "CheckpointError, nothing written", "nan", "weights are not finite"),
    case(WRONG, "save-duplicate-classes", "saving with a repeated class name",
         "CheckpointError, nothing written", "classes", "repeated"),
    case(WRONG, "save-negative-mean", "saving a compression with a negative mean",
         "CheckpointError, nothing written", "mean", "finite and positive"),
    case(TRACE, "save-path-count", "saving a 24-path model for a 74-path config",
         "CheckpointError, nothing written", "paths", "24 input paths but s1 features"),
]


@pytest.mark.parametrize(("what", "message"), SAVES_REFUSED)
def test_inconsistent_checkpoints_are_never_written(tmp_path, what, message):
    model = PMTConvNet(24 if what == "paths" else 74).eval()
    mu = np.full(model.n_paths, 1e-3)
    names = list(TECHNIQUES)
    if what == "nan":
        with torch.no_grad():
            model.conv2.weight[0, 0, 0] = float("nan")
    elif what == "classes":
        names[1] = names[0]
    elif what == "mean":
        mu[5] = -1.0
    target = tmp_path / "x.pt"
    with pytest.raises(CheckpointError, match=message):
        save_checkpoint(target, model, scattering_config=ScatteringConfig(), class_names=names,
                        compression=LogCompression(mu=mu), input_kind="s1")
    assert list(tmp_path.iterdir()) == []


# =========================================================================== data sets


def _wav(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).standard_normal(2205) * 0.1
    sf.write(path, noise.astype(np.float32), SR)
    return path


def _manifest(folder: Path, rows: list[dict]) -> Path:
    csv = folder / "m.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def _dataset_case(folder: Path, variant: str) -> Path:
    a = _wav(folder / "a.wav", 1)
    _wav(folder / "b.wav", 2)
    if variant == "twice":
        return _manifest(folder, [{"path": "a.wav", "technique": "trill"},
                                  {"path": "b.wav", "technique": "trill"},
                                  {"path": "a.wav", "technique": "trill"}])
    if variant == "two-labels":
        return _manifest(folder, [{"path": "a.wav", "technique": "trill"},
                                  {"path": "a.wav", "technique": "vibrato"}])
    if variant == "respelled":
        (folder / "sub").mkdir()
        return _manifest(folder, [{"path": "a.wav", "technique": "trill"},
                                  {"path": "sub/../a.wav", "technique": "trill"}])
    if variant == "copy":
        (folder / "copy.wav").write_bytes(a.read_bytes())
        return _manifest(folder, [{"path": "a.wav", "technique": "trill"},
                                  {"path": "b.wav", "technique": "trill"},
                                  {"path": "copy.wav", "technique": "tremolo"}])
    if variant == "authors":
        rows = [("Flutes", "Flute", "vibrato", "vibrato", "Fl-vib-A4.wav", "training")] * 2
        _wav(folder / "Flutes/Flute/vibrato/Fl-vib-A4.wav", 3)
        csv = folder / "meta.csv"
        pd.DataFrame(rows, columns=["instrument family", "instrument", "technique original",
                                    "modulation technique", "file_name", "subset"]).to_csv(
            csv, index=False)
        return csv
    if variant == "sol-copy":
        tree = folder / "sol"
        first = _wav(tree / "Strings/Viola/tremolo/Va-trem-C4.wav", 4)
        second = tree / "Strings/Viola/vibrato/Va-vib-C4.wav"
        second.parent.mkdir(parents=True)
        second.write_bytes(first.read_bytes())
        return tree
    if variant == "synthetic":
        return _manifest(folder, [{"path": "", "technique": "trill", "seed": 5, "f0_hz": 440.0},
                                  {"path": "", "technique": "trill", "seed": 5,
                                   "f0_hz": 440.0}])
    column, value = {"f0-text": ("f0_hz", "A4"), "f0-negative": ("f0_hz", -440.0),
                     "f0-infinite": ("f0_hz", "inf"),
                     "rate-zero": ("modulation_rate_hz", 0.0)}[variant]
    return _manifest(folder, [{"path": "a.wav", "technique": "trill", column: value},
                              {"path": "b.wav", "technique": "trill", column: 440.0}])


DATASETS_REFUSED = [
    case(WRONG, "manifest-file-twice", "a manifest listing a.wav twice (training and test)",
         "DatasetError: a.wav appears 2 times (line 2, line 4)", "twice",
         r"a\.wav appears 2 times \(line 2, line 4\)"),
    case(WRONG, "manifest-two-techniques", "a.wav labelled trill and vibrato",
         "DatasetError: labelled with 2 techniques, naming the lines", "two-labels",
         "labelled with 2 techniques .trill at line 2, vibrato at line 3"),
    case(WRONG, "manifest-same-path-respelled", "a.wav and sub/../a.wav",
         "DatasetError: a.wav appears 2 times", "respelled", "a.wav appears 2 times"),
    case(WRONG, "manifest-same-content", "copy.wav, a byte-identical copy of a.wav",
         "DatasetError: the same audio (identical content), labelled twice", "copy",
         "the same audio .identical file content. is labelled with 2 techniques"),
    case(WRONG, "authors-csv-row-twice", "the authors' CSV listing one file twice",
         "DatasetError naming lines 2 and 3", "authors", r"appears 2 times \(line 2, line 3\)"),
    case(WRONG, "sol-tree-copy-in-two-folders", "one recording in tremolo/ and vibrato/",
         "DatasetError naming both relative paths", "sol-copy",
         "tremolo at Strings/Viola/tremolo/Va-trem-C4.wav"),
    case(WRONG, "synthetic-rows-identical", "two synthetic rows with the same parameters",
         "DatasetError: a synthetic example appears twice", "synthetic",
         "a synthetic example .same parameters. appears 2 times"),
    case(WRONG, "f0-not-a-number", "f0_hz='A4' (was coerced to NaN)",
         "DatasetError: positive numbers, naming line 2", "f0-text", r"line 2 \('A4'\)"),
    case(WRONG, "f0-negative", "f0_hz=-440", "DatasetError naming the line", "f0-negative",
         "'f0_hz' must hold positive numbers"),
    case(WRONG, "f0-infinite", "f0_hz=inf", "DatasetError naming the line", "f0-infinite",
         "'f0_hz' must hold positive numbers"),
    case(WRONG, "modulation-rate-zero", "modulation_rate_hz=0", "DatasetError naming the line",
         "rate-zero", "'modulation_rate_hz' must hold positive numbers"),
]


@pytest.mark.parametrize(("variant", "message"), DATASETS_REFUSED)
def test_bad_data_sets_are_refused(tmp_path, variant, message):
    source = _dataset_case(tmp_path, variant)
    with pytest.raises(DatasetError, match=message) as error:
        load_dataset(source)
    assert "\n" not in str(error.value)


def test_empty_descriptor_cells_stay_unknown(tmp_path):
    _wav(tmp_path / "a.wav", 1)
    _wav(tmp_path / "b.wav", 2)
    frame = load_dataset(_manifest(tmp_path, [{"path": "a.wav", "technique": "trill",
                                               "f0_hz": 440.0},
                                              {"path": "b.wav", "technique": "trill",
                                               "f0_hz": None}]))
    assert frame["f0_hz"].iloc[0] == 440.0 and np.isnan(frame["f0_hz"].iloc[1])


# ====================================================================== feature cache


def _entry():
    return np.ones((3, 2), dtype=np.float32), {"f0_hz": 1.0}


KEY = "ab" + "0" * 30


def _legacy_namespace(root: Path) -> Path:
    entry = root / "0123456789abcdef-89abcdef" / "ab" / f"{KEY}.npz"
    entry.parent.mkdir(parents=True)
    entry.write_bytes(b"entry")
    return entry


def _clear_setup(root: Path, variant: str) -> None:
    root.mkdir()
    if variant == "foreign":
        (root / "notes.txt").write_text("mine")
    elif variant == "home":
        (root / ".bashrc").write_text("alias ll='ls -l'")
        (root / "Documents").mkdir()
        (root / "Documents" / "thesis.tex").write_text("\\begin{document}")
        _legacy_namespace(root)
    elif variant == "marked-user-file":
        root.rmdir()
        FeatureCache(root, "ns").put(KEY, *_entry())
        (root / "ns" / "README").write_text("my notes")
    elif variant == "symlink":
        root.rmdir()
        FeatureCache(root, "ns").put(KEY, *_entry())
        outside = root.parent / "outside"
        outside.mkdir()
        (outside / "data.txt").write_text("keep me")
        (root / "linked").symlink_to(outside, target_is_directory=True)
    elif variant == "lookalike":
        root.rmdir()
        FeatureCache(root, "ns").put(KEY, *_entry())
        (root / "ns" / "ab" / "notes.txt").write_text("x")


CLEARS_REFUSED = [
    case(LOSS, "clear-foreign-folder", "cache clear on a folder holding one user file",
         "CacheError naming notes.txt; nothing removed", "foreign", "notes.txt"),
    case(LOSS, "clear-home-folder", "PMT_CACHE_DIR=$HOME: dotfiles, documents and a "
         "cache-like folder", "CacheError: a folder without a cache marker; nothing removed",
         "home", "without a cache marker holding 2 item"),
    case(LOSS, "clear-marked-with-user-file", "a user's README inside a real cache",
         "CacheError naming ns/README; entries kept too", "marked-user-file", "ns/README"),
    case(LOSS, "clear-symlinked-folder", "a symlink in the cache to a folder outside it",
         "CacheError naming the link; the target untouched", "symlink", "linked"),
    case(LOSS, "clear-lookalike-file", "a non-entry file inside a shard folder",
         "CacheError naming ns/ab/notes.txt", "lookalike", "ns/ab/notes.txt"),
]


@pytest.mark.parametrize(("variant", "message"), CLEARS_REFUSED)
def test_clear_removes_nothing_it_does_not_own(tmp_path, variant, message):
    root = tmp_path / "root"
    _clear_setup(root, variant)
    before, around = tree_state(root), tree_state(tmp_path)
    with pytest.raises(CacheError, match=message) as error:
        clear_cache(root)
    assert "nothing removed" in str(error.value)
    assert tree_state(root) == before and tree_state(tmp_path) == around


def test_clear_refuses_a_file_and_keeps_it(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("data")
    with pytest.raises(CacheError, match="is a file, not a folder"):
        clear_cache(target)
    assert target.read_text() == "data"


def test_clear_through_the_environment_refuses_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".profile").write_text("export A=1")
    monkeypatch.setenv(ENV_VAR, str(home))
    with pytest.raises(CacheError, match=r"\.profile"):
        clear_cache()
    assert (home / ".profile").exists()


CLEAR_EDGES = [
    case(EDGE, "clear-legacy-cache", "a cache from before markers (fingerprint namespaces)",
         "entries removed, the unmarked folder itself kept", "legacy"),
    case(EDGE, "clear-adopted-folder", "a user-made empty folder the cache adopted",
         "entries and marker removed, the user's folder kept", "adopted"),
    case(EDGE, "clear-created-folder", "a folder the cache created",
         "everything removed, the folder too", "created"),
    case(EDGE, "clear-leftover-temporaries", "temporary files of an interrupted write",
         "removed with the entries", "temporaries"),
]


@pytest.mark.parametrize("variant", CLEAR_EDGES)
def test_clear_removes_what_it_owns(tmp_path, variant):
    root = tmp_path / "cache"
    if variant == "legacy":
        root.mkdir()
        _legacy_namespace(root)
    else:
        if variant == "adopted":
            root.mkdir()
        FeatureCache(root, "ns").put(KEY, *_entry())
        if variant == "temporaries":
            (root / "ns" / "ab" / f".{KEY}.npz.x1y2.tmp").write_bytes(b"half")
    assert (root / MARKER).exists() == (variant != "legacy")
    assert clear_cache(root) == root
    assert root.exists() == (variant in ("legacy", "adopted"))
    if root.exists():
        assert list(root.iterdir()) == []


CACHE_FAULTS = [
    case(FAULT, "cache-root-is-file", "--cache-dir naming a file",
         "one CacheWarning, runs uncached; the file untouched", "root-file"),
    case(FAULT, "cache-parent-is-file", "--cache-dir under a file",
         "one CacheWarning, runs uncached", "parent-file"),
    case(FAULT, "cache-namespace-is-file", "a file where the namespace folder should be",
         "one CacheWarning, runs uncached", "namespace-file"),
    case(FAULT, "cache-read-only", "a read-only cache folder (EACCES/EROFS on put)",
         "one CacheWarning, runs uncached", "read-only"),
    case(FAULT, "cache-disk-full", "disk full on put (ENOSPC)",
         "one CacheWarning, runs uncached", "disk-full"),
    case(FAULT, "cache-permission-denied-read", "permission denied reading an entry",
         "one CacheWarning, a miss, runs uncached", "read-denied"),
    case(LOSS, "cache-foreign-folder", "PMT_CACHE_DIR=$HOME (a folder that is not a cache)",
         "one CacheWarning; nothing written into it", "foreign"),
]


@pytest.mark.parametrize("variant", CACHE_FAULTS)
def test_cache_faults_fall_back_to_uncached_with_one_warning(tmp_path, monkeypatch, variant):
    root = tmp_path / "cache"
    if variant == "root-file":
        root.write_text("not a folder")
    elif variant == "parent-file":
        (tmp_path / "file").write_text("x")
        root = tmp_path / "file" / "cache"
    elif variant == "namespace-file":
        FeatureCache(root, "other").put(KEY, *_entry())
        (root / "ns").write_text("in the way")
    elif variant in ("read-only", "disk-full"):
        code = errno.EROFS if variant == "read-only" else errno.ENOSPC

        def refuse(*args, **kwargs):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(cache_module, "write_bytes_atomic", refuse)
    elif variant == "read-denied":
        FeatureCache(root, "ns").put(KEY, *_entry())

        def denied(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(np, "load", denied)
    elif variant == "foreign":
        root.mkdir()
        (root / "holiday.jpg").write_bytes(b"\xff\xd8")
    around = tree_state(tmp_path)
    cache = FeatureCache(root, "ns")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(3):  # three puts and gets: still one warning
            key = f"{i:02x}" + "1" * 30
            cache.put(key, *_entry())
            assert cache.get(key, (3, 2)) is None
        assert cache.get(KEY, (3, 2)) is None
    assert [w.category for w in caught] == [CacheWarning]
    assert "computing uncached" in str(caught[0].message)
    assert cache.stats()["fault"] and cache.stats()["hits"] == 0
    if variant in ("root-file", "parent-file", "foreign", "namespace-file"):
        assert tree_state(tmp_path) == around  # nothing written, nothing removed


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes through permission bits")
def test_really_read_only_folder_falls_back(tmp_path):
    root = tmp_path / "cache"
    root.mkdir()
    root.chmod(0o500)
    try:
        cache = FeatureCache(root, "ns")
        with pytest.warns(CacheWarning):
            cache.put(KEY, *_entry())
        assert cache.get(KEY, (3, 2)) is None
    finally:
        root.chmod(0o700)


DISABLED_WORDS = [
    case(WRONG, "cache-env-disabled", "PMT_CACHE_DIR=disabled (was a folder named disabled)",
         "cache off", "disabled"),
    case(WRONG, "cache-env-no", "PMT_CACHE_DIR=no", "cache off", "no"),
    case(EDGE, "cache-env-mixed-case", "PMT_CACHE_DIR=Off", "cache off", "Off"),
    case(EDGE, "cache-env-padded", "PMT_CACHE_DIR=' none '", "cache off", " none "),
    case(EDGE, "cache-env-false-upper", "PMT_CACHE_DIR=FALSE", "cache off", "FALSE"),
    case(EDGE, "cache-env-zero", "PMT_CACHE_DIR=0", "cache off", "0"),
    case(EDGE, "cache-env-empty", "PMT_CACHE_DIR=''", "cache off", ""),
]


@pytest.mark.parametrize("word", DISABLED_WORDS)
def test_disabled_words_switch_the_cache_off(monkeypatch, word):
    monkeypatch.setenv(ENV_VAR, word)
    assert default_cache_dir() is None
    assert resolve_cache_dir(word) is None  # --cache-dir off, too
    assert clear_cache() is None


def test_cache_dir_tilde_is_expanded(monkeypatch, tmp_path):
    # case "cache-env-tilde" (valid edge): '~/c' was a folder named '~' in the cwd
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(ENV_VAR, "~/c")
    assert default_cache_dir() == tmp_path / "c"


TABLE.append((EDGE, "cache-env-tilde", "PMT_CACHE_DIR=~/c (was a folder named '~')",
              "expanded to the home folder"))

NAMESPACES_REFUSED = [
    case(LOSS, "cache-namespace-traversal", "namespace '../outside' (writes outside root)",
         "CacheError: one plain name", "../outside"),
    case(LOSS, "cache-namespace-absolute", "namespace '/etc' (Path join drops the root)",
         "CacheError: one plain name", "/etc"),
    case(TRACE, "cache-namespace-empty", "an empty namespace (entries at the root)",
         "CacheError: one plain name", ""),
]


@pytest.mark.parametrize("namespace", NAMESPACES_REFUSED)
def test_unsafe_namespaces_are_refused(tmp_path, namespace):
    with pytest.raises(CacheError, match="one plain name"):
        FeatureCache(tmp_path, namespace)


def test_recipe_keys_the_namespace():
    fingerprint = ScatteringConfig().fingerprint()
    plain = FeatureCache.namespace_for(fingerprint)
    cpu = FeatureCache.namespace_for(fingerprint, {"device": "cpu", "threads": 1})
    assert plain == FeatureCache.namespace_for(fingerprint, None)
    assert cpu == FeatureCache.namespace_for(fingerprint, {"threads": 1, "device": "cpu"})
    assert len({plain, cpu, FeatureCache.namespace_for(fingerprint, {"device": "cuda"})}) == 3
    with pytest.raises(CacheError):
        FeatureCache.namespace_for("../x")


# ======================================================================== output paths


def _outputs_setup(folder: Path):
    audio = folder / "take.wav"
    sf.write(audio, np.full(1000, 0.1, dtype=np.float32), SR)
    checkpoint = folder / "model.pt"
    checkpoint.write_bytes(b"weights")
    return audio, checkpoint


def _out_for(folder: Path, variant: str, audio: Path, checkpoint: Path) -> Path:
    if variant == "audio":
        return audio
    if variant == "checkpoint":
        return checkpoint
    if variant == "hardlink":
        link = folder / "take.png"
        os.link(audio, link)
        return link
    if variant == "symlink":
        link = folder / "alias.png"
        link.symlink_to(audio)
        return link
    if variant == "under-file":
        return audio / "map.png"
    if variant == "deep-under-file":
        return audio / "maps" / "map.png"
    if variant == "folder":
        (folder / "maps.png").mkdir()
        return folder / "maps.png"
    if variant == "suffix":
        return folder / "take.flac"
    if variant == "not-png":
        notes = folder / "notes.png"
        notes.write_text("my notes, not a picture")
        return notes
    raise AssertionError(variant)


OUTPUTS_REFUSED = [
    case(LOSS, "out-is-the-recording", "explain x.wav --out x.wav (overwrote it with a PNG)",
         "ExplainError: is an input of this run", "audio", "is an input of this run"),
    case(LOSS, "out-is-the-checkpoint", "--out model.pt", "ExplainError: an input",
         "checkpoint", "is an input of this run"),
    case(LOSS, "out-hard-link-to-recording", "--out a hard link of the recording",
         "ExplainError: an input (same file)", "hardlink", "is an input of this run"),
    case(LOSS, "out-symlink-to-recording", "--out a symlink to the recording",
         "ExplainError: an input", "symlink", "is an input of this run"),
    case(TRACE, "out-under-a-file", "--out x.wav/map.png (traceback after the scatter)",
         "ExplainError: take.wav is a file, not a folder", "under-file",
         "is a file, not a folder"),
    case(TRACE, "out-deep-under-a-file", "--out x.wav/maps/map.png",
         "ExplainError: take.wav is a file, not a folder", "deep-under-file",
         "is a file, not a folder"),
    case(TRACE, "out-is-a-folder", "--out naming a folder", "ExplainError: is a folder",
         "folder", "is a folder; give a file name"),
    case(LOSS, "out-not-png-suffix", "--out take.flac (a sibling recording)",
         "ExplainError: must end in .png", "suffix", r"must end in \.png"),
    case(LOSS, "out-existing-non-png", "--out notes.png holding text",
         "ExplainError: not an earlier output; refusing to overwrite", "not-png",
         "refusing to overwrite"),
]


@pytest.mark.parametrize(("variant", "message"), OUTPUTS_REFUSED)
def test_outputs_never_replace_inputs_or_other_files(tmp_path, variant, message):
    audio, checkpoint = _outputs_setup(tmp_path)
    out = _out_for(tmp_path, variant, audio, checkpoint)
    before = tree_state(tmp_path)
    with pytest.raises(ExplainError, match=message):
        check_output(out, audio, checkpoint)
    with pytest.raises(ExplainError, match=message):
        write_relevance_png(None, out, inputs=[audio, checkpoint])  # refused before drawing
    assert tree_state(tmp_path) == before


def test_unwritable_output_folder_is_refused_first(tmp_path, monkeypatch):
    # case "out-unwritable-folder": root ignores permission bits, so the probe is made
    # to fail as on a read-only mount.
    audio, checkpoint = _outputs_setup(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    real = checks.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == locked:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(checks.tempfile, "mkstemp", mkstemp)
    with pytest.raises(ExplainError, match="cannot write in .*locked.*Permission denied"):
        check_output(locked / "map.png", audio, checkpoint)


TABLE.append((TRACE, "out-unwritable-folder", "--out in a read-only folder (traceback after "
              "the scatter)", "ExplainError: cannot write in DIR (Permission denied)"))


def test_output_inside_an_input_folder_is_refused(tmp_path):
    # case "out-inside-input-folder": e.g. a report written into the data set's folder
    data = tmp_path / "dataset"
    data.mkdir()
    with pytest.raises(CheckError, match="lies inside the input folder"):
        check_output_path(data / "reports" / "x.json", inputs=[data], name="--report-dir")


TABLE.append((LOSS, "out-inside-input-folder", "an output path inside an input folder",
              "CheckError: lies inside the input folder"))


def test_default_outputs_keep_the_extension(tmp_path):
    # case "default-out-per-extension": x.wav, x.flac, x.ogg, x.mp3 shared one map
    names = {default_output(tmp_path / f"x.{ext}") for ext in ("wav", "flac", "ogg", "mp3")}
    assert len(names) == 4
    assert default_output(tmp_path / "x.wav") == tmp_path / "x.wav.relevance.png"


TABLE.append((LOSS, "default-out-per-extension", "x.wav, x.flac, x.ogg, x.mp3 (one default "
              "map, each overwriting the last)", "x.wav -> x.wav.relevance.png: four names"))


def test_earlier_maps_and_new_folders_are_fine(tmp_path):
    # case "out-earlier-png-replaced" (valid edge): a rerun replaces its own map
    audio, checkpoint = _outputs_setup(tmp_path)
    earlier = default_output(audio)
    earlier.write_bytes(b"\x89PNG\r\n\x1a\n...")
    assert check_output(None, audio, checkpoint) == earlier
    assert check_output(tmp_path / "new" / "map.png", audio, checkpoint).name == "map.png"


TABLE.append((EDGE, "out-earlier-png-replaced", "a rerun writing over its earlier map, or "
              "into a folder yet to be made", "accepted"))


# =============================================================== the CLI error contract


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, good_checkpoint):
    folder = tmp_path_factory.mktemp("cli-hostile")
    audio = folder / "take.wav"
    t = np.arange(SR // 5) / SR
    sf.write(audio, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    outputs = tmp_path_factory.mktemp("cli-hostile-out")
    files = {"folder": folder, "audio": audio, "good": good_checkpoint,
             "under_file": audio / "map.png", "out_png": outputs / "x.png",
             "new_baseline": outputs / "b.json", "out_dir": outputs / "maps"}
    # another take.wav, in a subfolder (which a folder argument does not search)
    files["same_name"] = folder / "other" / "take.wav"
    files["same_name"].parent.mkdir()
    files["same_name"].write_bytes(audio.read_bytes())
    files["no_audio"] = folder / "no-audio"
    files["no_audio"].mkdir()
    for name, edit in (("nan", _nan_at("conv1.weight")),
                       ("dupes", lambda p: p["metadata"].update(
                           class_names=["trill"] * 2 + list(TECHNIQUES[2:]))),
                       ("negmean", lambda p: p["metadata"]["compression"]["mu"].__setitem__(
                           0, -1.0)),
                       ("paths", lambda p: p["metadata"].update(input_kind="s1s2")),
                       ("escape", lambda p: p["metadata"]["class_names"].__setitem__(
                           0, "trill\x1b[2J"))):
        files[name] = _damaged(good_checkpoint, folder / f"{name}.pt", edit)
    (folder / "garbage.pt").write_bytes(b"not a checkpoint")
    files["garbage"] = folder / "garbage.pt"
    report = {"profile": "ci", "device": "cpu", "dataset": {"source": "synthetic"},
              "environment": {"seed": 0},
              "claims": [{"id": "accuracy.s1", "status": "passed", "verdict": "holds",
                          "figures": {"a": {"value": 0.9, "interval": [0.8, 1.0]}}}]}
    files["report"] = folder / "validation.json"
    files["report"].write_text(json.dumps(report))
    files["nan_report"] = folder / "nan.json"
    files["nan_report"].write_text(json.dumps({**report, "claims": [
        {"id": "x", "status": "passed", "figures": {"a": {"value": float("nan")}}}]}))
    files["no_id_report"] = folder / "noid.json"
    files["no_id_report"].write_text(json.dumps({**report, "claims": [{"status": "passed"}]}))
    files["bad_claims"] = folder / "badclaims.json"
    files["bad_claims"].write_text(json.dumps({**report, "claims": [1, 2]}))
    files["notes"] = folder / "notes.txt"
    files["notes"].write_text("my notes")
    files["baseline"] = folder / "baseline.json"
    assert cli.main(["baseline", "update", str(files["report"]), str(files["baseline"])]) == 0
    files["foreign_cache"] = folder / "home"
    files["foreign_cache"].mkdir()
    (files["foreign_cache"] / ".bashrc").write_text("x")
    return files


def _argv(f, *parts):
    return [str(f[p[1:]]) if isinstance(p, str) and p.startswith("@") else str(p)
            for p in parts]


CLI_REFUSED = [
    case(TRACE, "cli-unknown-command", "python -m pmt_core frobnicate", "one line, exit 2",
         ("frobnicate",)),
    case(TRACE, "explain-no-file", "explain without FILE", "one line, exit 2", ("explain",)),
    case(TRACE, "explain-top-negative", "explain --top -1", "one line: must be 0 or more",
         ("explain", "@audio", "--top", "-1")),
    case(TRACE, "explain-top-text", "explain --top ten", "one line: a whole number",
         ("explain", "@audio", "--top", "ten")),
    case(TRACE, "explain-unknown-rule", "explain --rule lrp", "one line: invalid choice",
         ("explain", "@audio", "--rule", "lrp")),
    case(TRACE, "explain-unknown-device", "explain --device gpu", "one line: unsupported device",
         ("explain", "@audio", "--checkpoint", "@good", "--device", "gpu")),
    case(LOSS, "explain-out-is-recording", "explain take.wav --out take.wav",
         "one line: an input; recording unchanged",
         ("explain", "@audio", "--checkpoint", "@good", "--out", "@audio")),
    case(LOSS, "explain-out-is-checkpoint", "explain --out model.pt",
         "one line: an input; checkpoint unchanged",
         ("explain", "@audio", "--checkpoint", "@good", "--out", "@good")),
    case(TRACE, "explain-out-under-file", "explain --out take.wav/map.png",
         "one line, before the scatter",
         ("explain", "@audio", "--checkpoint", "@good", "--out", "@under_file")),
    case(TRACE, "explain-out-is-folder", "explain --out FOLDER", "one line: must end in .png",
         ("explain", "@audio", "--checkpoint", "@good", "--out", "@folder")),
    case(TRACE, "explain-audio-missing", "explain nowhere.wav", "one line: no such audio file",
         ("explain", "nowhere.wav", "--checkpoint", "@good", "--out", "@out_png")),
    case(LOSS, "explain-folder-out-png", "explain FOLDER --out x.png (every map of the "
         "folder written to one file)", "one line: --out names a folder for their maps",
         ("explain", "@folder", "--checkpoint", "@good", "--out", "@out_png")),
    case(LOSS, "explain-several-out-png", "explain a.wav b.wav --out x.png",
         "one line: --out names a folder for their maps",
         ("explain", "@audio", "@same_name", "--checkpoint", "@good", "--out", "@out_png")),
    case(LOSS, "explain-same-map-name", "explain x/take.wav y/take.wav --out DIR (the "
         "second map replaced the first)", "one line: would both write, before the scatter",
         ("explain", "@audio", "@same_name", "--checkpoint", "@good", "--out", "@out_dir")),
    case(WRONG, "explain-audio-twice", "explain FOLDER FOLDER/take.wav (explained twice)",
         "one line: is given twice", ("explain", "@folder", "@audio", "--checkpoint", "@good")),
    case(TRACE, "explain-folder-without-audio", "explain FOLDER with no WAV or FLAC file",
         "one line: a folder without WAV or FLAC files",
         ("explain", "@no_audio", "--checkpoint", "@good")),
    case(TRACE, "explain-out-and-no-png", "explain --out x.png --no-png",
         "one line: not allowed with",
         ("explain", "@audio", "--checkpoint", "@good", "--out", "@out_png", "--no-png")),
    case(TRACE, "explain-audio-empty", "explain '' (traceback: an empty name)",
         "one line: AUDIO is empty", ("explain", "", "--checkpoint", "@good")),
    case(TRACE, "explain-audio-root", "explain / (traceback: an empty name)",
         "one line: a folder without WAV or FLAC files", ("explain", "/", "--checkpoint",
                                                          "@good")),
    case(TRACE, "explain-audio-name-too-long", "explain with a 300-character name "
         "(traceback: File name too long)", "one line naming the cause",
         ("explain", "a" * 300 + ".wav", "--checkpoint", "@good")),
    case(TRACE, "explain-ckpt-empty", "explain --checkpoint '' (blamed --out)",
         "one line: --checkpoint is empty", ("explain", "@audio", "--checkpoint", "")),
    case(TRACE, "explain-out-empty", "explain --out '' (traceback)", "one line: --out is empty",
         ("explain", "@audio", "--checkpoint", "@good", "--out", "")),
    case(TRACE, "explain-out-dot-dot", "explain --out .. (traceback)",
         "one line: names a folder", ("explain", "@audio", "--checkpoint", "@good", "--out",
                                      "..")),
    case(TRACE, "explain-out-name-too-long", "explain --out with a 300-character name "
         "(traceback)", "one line naming the cause",
         ("explain", "@audio", "--checkpoint", "@good", "--out", "b" * 300 + ".png")),
    case(WRONG, "explain-ckpt-nan-weights", "a checkpoint with NaN weights (p = nan, exit 0)",
         "one line: weights are not finite, before the scatter",
         ("explain", "@audio", "--checkpoint", "@nan")),
    case(WRONG, "explain-ckpt-duplicate-classes", "duplicate class names (probabilities "
         "collapse)", "one line: class names must be unique",
         ("explain", "@audio", "--checkpoint", "@dupes")),
    case(WRONG, "explain-ckpt-negative-mean", "a negative compression mean (p = nan)",
         "one line: finite and positive", ("explain", "@audio", "--checkpoint", "@negmean")),
    case(TRACE, "explain-ckpt-path-count", "a path count that does not fit the config "
         "(traceback after the scatter)", "one line, before the scatter",
         ("explain", "@audio", "--checkpoint", "@paths")),
    case(TRACE, "explain-ckpt-garbage", "a file that is not a checkpoint",
         "one line: cannot read checkpoint", ("explain", "@audio", "--checkpoint", "@garbage")),
    case(WRONG, "explain-ckpt-class-escape", "a class name holding an escape sequence "
         "(printed raw: clears the terminal)", "one line: class names must be printable "
         "text, the name escaped", ("explain", "@audio", "--checkpoint", "@escape")),
    case(TRACE, "cache-no-action", "cache without info/clear", "one line, exit 2", ("cache",)),
    case(TRACE, "cache-info-root-is-file", "cache info --cache-dir FILE",
         "one line: is a file, not a folder", ("cache", "info", "--cache-dir", "@notes")),
    case(LOSS, "cache-clear-root-is-file", "cache clear --cache-dir FILE",
         "one line; the file kept", ("cache", "clear", "--cache-dir", "@notes")),
    case(LOSS, "cache-clear-home", "cache clear --cache-dir $HOME-like folder",
         "one line naming .bashrc; nothing removed",
         ("cache", "clear", "--cache-dir", "@foreign_cache")),
    case(TRACE, "baseline-missing-arguments", "baseline update with one path",
         "one line, exit 2", ("baseline", "update", "@report")),
    case(TRACE, "baseline-update-report-missing", "baseline update nowhere.json B",
         "one line: cannot read report", ("baseline", "update", "nowhere.json",
                                          "@new_baseline")),
    case(TRACE, "baseline-update-report-not-json", "baseline update notes.txt B",
         "one line: cannot read report", ("baseline", "update", "@notes", "@new_baseline")),
    case(LOSS, "baseline-update-over-report", "baseline update R R (the report replaced)",
         "one line: an input; report unchanged", ("baseline", "update", "@report", "@report")),
    case(LOSS, "baseline-update-over-user-file", "baseline update R notes.txt",
         "one line: not an earlier output; refusing to overwrite",
         ("baseline", "update", "@report", "@notes")),
    case(TRACE, "baseline-update-nan-figure", "a report whose figure is NaN",
         "one line: not a usable validation report",
         ("baseline", "update", "@nan_report", "@new_baseline")),
    case(TRACE, "baseline-update-claim-without-id", "a claim without an id",
         "one line: not a usable validation report",
         ("baseline", "update", "@no_id_report", "@new_baseline")),
    case(TRACE, "baseline-compare-baseline-missing", "baseline compare R nowhere.json",
         "one line: no baseline file", ("baseline", "compare", "@report", "nowhere.json")),
    case(TRACE, "baseline-compare-baseline-garbage", "baseline compare R notes.txt",
         "one line: cannot read baseline", ("baseline", "compare", "@report", "@notes")),
    case(TRACE, "baseline-compare-report-folder", "baseline compare FOLDER B",
         "one line: cannot read report", ("baseline", "compare", "@folder", "@baseline")),
    case(TRACE, "baseline-compare-claims-not-records", "claims that are numbers",
         "one line: malformed", ("baseline", "compare", "@bad_claims", "@baseline")),
]


@pytest.mark.parametrize("parts", CLI_REFUSED)
def test_every_verb_gives_one_line_and_status_2(cli_files, capsys, monkeypatch, parts):
    def no_scatter(*args, **kwargs):
        raise AssertionError("scatter reached: the refusal came after minutes of work")

    monkeypatch.setattr(explain_audio, "scatter", no_scatter)
    before = tree_state(cli_files["folder"]), tree_state(cli_files["out_png"].parent)
    try:
        status = cli.main(_argv(cli_files, *parts))
    except SystemExit as exit_:  # argparse
        status = exit_.code
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    # nothing written, nothing removed
    assert (tree_state(cli_files["folder"]), tree_state(cli_files["out_png"].parent)) == before


def test_argparse_errors_are_one_line_in_a_real_process():
    import subprocess

    done = subprocess.run([sys.executable, "-m", "pmt_core", "cache"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: ")


CLI_EDGES = [
    case(EDGE, "cache-clear-disabled-word", "cache clear --cache-dir off",
         "exit 0: cache disabled, nothing to clear", ("cache", "clear", "--cache-dir", "off")),
    case(EDGE, "cache-info-foreign-folder", "cache info on a folder that is not a cache",
         "exit 0: says the marker is absent and names .bashrc",
         ("cache", "info", "--cache-dir", "@foreign_cache")),
    case(EDGE, "baseline-update-replaces-baseline", "baseline update over an older baseline",
         "exit 0: replaced", ("baseline", "update", "@report", "@baseline")),
]


@pytest.mark.parametrize("parts", CLI_EDGES)
def test_cli_edge_cases_succeed(cli_files, capsys, parts):
    assert cli.main(_argv(cli_files, *parts)) == 0
    out = capsys.readouterr().out
    if "info" in parts:
        assert "absent" in out and ".bashrc" in out and "refuses" in out
    if "off" in parts:
        assert "disabled" in out


def test_table_ids_are_unique_and_cover_every_kind():
    ids = [cid for _, cid, _, _ in TABLE]
    assert len(ids) == len(set(ids)) and len(ids) >= 60
    assert {kind for kind, *_ in TABLE} == {LOSS, HANG, WRONG, TRACE, FAULT, EDGE}


if __name__ == "__main__":
    print(write_table(sys.argv[1] if len(sys.argv) > 1 else "/tmp/hostile_table.md"))
