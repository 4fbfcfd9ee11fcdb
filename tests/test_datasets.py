import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from pmt_core.data.datasets import (
    AUTHORS_COLUMNS,
    TECHNIQUE_FOLDERS,
    DatasetError,
    f0_from_filename,
    load_dataset,
)
from pmt_core.data.sources import example_audio
from pmt_core.data.split import assign_split, has_split, split_dataset, write_split_csv
from pmt_core.data.synth.manifest import synthetic_manifest
from pmt_core.data.synth.render import synthesize

SR = 44100
# The authors' file list of SOL-0.9HQ-PMT (their public repository changhongw/examod),
# shipped gzipped so the tests that read it run on every checkout.
AUTHORS_CSV = Path(__file__).resolve().parent / "data" / "SOL-0.9HQ-PMT_meta.csv.gz"


def _wav(path, seconds=0.05):
    # A level of 0.1 with a little noise seeded by the name: every file has its own
    # content (the loader refuses two files of equal content as a duplicate).
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(list(str(path.name).encode()))
    noise = 1e-4 * rng.standard_normal(int(seconds * SR))
    sf.write(path, (0.1 + noise).astype(np.float32), SR)
    return path


def _authors_rows():
    return [
        (
            "Flutes",
            "Flute",
            "trill-major-second-up",
            "trill",
            "Fl-trill-maj2-G#6-mf.wav",
            "training",
            1,
        ),
        ("Flutes", "Flute", "flatterzunge", "flatterzunge", "Fl-flatt-C4-pp.wav", "test", 4),
        (
            "Strings",
            "Violin",
            "sul-ponticello-tremolo",
            "tremolo",
            "Vn-pont-trem-A4-ff.wav",
            "validation",
            2,
        ),
        ("PluckedStrings", "Harp", "bisbigliando", "bisbigliando", "Hp-bisb-D#3-mf.wav", "test", 3),
        (
            "PluckedStrings",
            "Harp",
            "tremolo-with-fingertips",
            "tremolo",
            "Hp-trem+fngrtip-p.wav",
            "training",
            2,
        ),
    ]


def _authors_tree(root):
    rows = _authors_rows()
    for family, instrument, folder, _, name, _, _ in rows:
        _wav(root / family / instrument / folder / name)
    df = pd.DataFrame(rows, columns=[*AUTHORS_COLUMNS, "label"])
    df.to_csv(root / "SOL-PMT_meta.csv", index=False)
    return root / "SOL-PMT_meta.csv"


# ----------------------------------------------------------------- names --
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Fl-trill-maj2-G#6-mf.wav", "G#6"),
        ("Cb-trem_ord-G#1-mf.wav", "G#1"),
        ("Vn+S-trem-A5-ff-1c 1.wav", "A5"),
        ("BBTb-flatt+voice-uni-E4-mf.wav", "E4"),
        ("Hp-bisb-C4-pp.flac", "C4"),
    ],
)
def test_f0_from_filename(name, expected):
    letter, octave = expected[:-1], int(expected[-1])
    pitch_class = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
    midi = 12 * (octave + 1) + pitch_class[letter[0]] + (len(letter) == 2)
    assert f0_from_filename(name) == pytest.approx(440 * 2 ** ((midi - 69) / 12))


def test_f0_from_filename_without_note():
    assert np.isnan(f0_from_filename("Hp-trem+fngrtip-p.wav"))
    assert np.isnan(f0_from_filename("recording.wav"))
    assert f0_from_filename("x-A4-y.wav") == pytest.approx(440.0)


def test_technique_folders_match_authors_csv():
    meta = pd.read_csv(AUTHORS_CSV)
    derived = dict(zip(meta["technique original"], meta["modulation technique"], strict=True))
    assert TECHNIQUE_FOLDERS == derived and len(TECHNIQUE_FOLDERS) == 23


# --------------------------------------------------------------- manifest --
def test_manifest_with_split(tmp_path):
    _wav(tmp_path / "audio" / "a.wav")
    _wav(tmp_path / "audio" / "b.flac")
    pd.DataFrame(
        {
            "path": ["audio/a.wav", "audio/b.flac"],
            "technique": ["trill", "vibrato"],
            "subset": ["training", "test"],
            "f0_hz": [440.0, None],
        }
    ).to_csv(tmp_path / "m.csv", index=False)
    df = load_dataset(tmp_path / "m.csv")
    assert df.attrs["source"] == "manifest" and df.attrs["n_ignored"] == 0
    assert df["path"].tolist() == [
        str(tmp_path / "audio" / "a.wav"),
        str(tmp_path / "audio" / "b.flac"),
    ]
    assert df["subset"].tolist() == ["training", "test"]
    assert df["instrument"].tolist() == ["unknown", "unknown"]
    assert df["f0_hz"].iloc[0] == 440.0 and np.isnan(df["f0_hz"].iloc[1])
    assert df["modulation_rate_hz"].isna().all()


def test_manifest_without_split_is_split_by_the_run_seed(tmp_path):
    for i in range(10):
        _wav(tmp_path / f"{i}.wav")
    pd.DataFrame({"path": [f"{i}.wav" for i in range(10)], "technique": ["tremolo"] * 10}).to_csv(
        tmp_path / "m.csv", index=False
    )
    df = load_dataset(tmp_path / "m.csv")
    assert not has_split(df)  # the loader does not split: the run's seed does
    split = {seed: assign_split(df, seed) for seed in (0, 1, 2)}
    for out in split.values():
        assert out["subset"].value_counts().to_dict() == {"training": 6, "validation": 2, "test": 2}
        assert out.attrs["source"] == "manifest"
    assert len({tuple(out["subset"]) for out in split.values()}) > 1  # --seed reaches it


def test_given_split_is_kept_whatever_the_seed():
    df = pd.DataFrame({"technique": ["trill"] * 3, "subset": ["test", "training", "validation"]})
    assert assign_split(df, 5)["subset"].tolist() == ["test", "training", "validation"]


@pytest.mark.parametrize(("subsets", "says"), [
    (["training", "training", "validation"], "subset 'test' is empty"),
    (["test", "test", "validation"], "no training example"),
])
def test_a_split_that_cannot_be_used_is_refused_before_any_work(subsets, says):
    from pmt_core.infra.checks import CheckError

    df = pd.DataFrame({"technique": ["trill"] * 3, "subset": subsets})
    with pytest.raises(CheckError, match=says):
        assign_split(df, 0)


def test_a_class_missing_from_test_is_named():
    from pmt_core.infra.checks import CheckError

    df = pd.DataFrame({"technique": ["trill"] * 3 + ["vibrato"] * 2,
                       "subset": ["training", "validation", "test", "training", "validation"]})
    with pytest.raises(CheckError, match="class 'vibrato' has no test example"):
        assign_split(df, 0)


def test_manifest_missing_file(tmp_path):
    pd.DataFrame({"path": ["gone.wav"], "technique": ["trill"]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    with pytest.raises(DatasetError, match="gone.wav"):
        load_dataset(tmp_path / "m.csv")


def test_manifest_missing_columns(tmp_path):
    pd.DataFrame({"file": ["a.wav"], "label": ["trill"]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(DatasetError, match="missing columns"):
        load_dataset(tmp_path / "m.csv")


def test_manifest_unknown_technique(tmp_path):
    _wav(tmp_path / "a.wav")
    pd.DataFrame({"path": ["a.wav"], "technique": ["glissando"]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    with pytest.raises(DatasetError, match="glissando"):
        load_dataset(tmp_path / "m.csv")


def test_manifest_unknown_subset(tmp_path):
    _wav(tmp_path / "a.wav")
    pd.DataFrame({"path": ["a.wav"], "technique": ["trill"], "subset": ["train"]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    with pytest.raises(DatasetError, match="train"):
        load_dataset(tmp_path / "m.csv")


def test_manifest_without_rows(tmp_path):
    (tmp_path / "m.csv").write_text("path,technique\n")
    with pytest.raises(DatasetError, match="no rows"):
        load_dataset(tmp_path / "m.csv")


def test_missing_path(tmp_path):
    with pytest.raises(DatasetError, match="nothing-here"):
        load_dataset(tmp_path / "nothing-here")


# ----------------------------------------------------------- authors' CSV --
def test_authors_csv_keeps_their_split(tmp_path):
    csv = _authors_tree(tmp_path)
    df = load_dataset(csv)
    assert df.attrs["source"] == "authors_csv"
    assert df["subset"].tolist() == [r[5] for r in _authors_rows()]
    assert df["technique"].tolist() == [r[3] for r in _authors_rows()]
    assert df["family"].iloc[2] == "Strings" and df["instrument"].iloc[2] == "Violin"
    assert (
        Path(df["path"].iloc[0])
        == tmp_path / "Flutes/Flute/trill-major-second-up/Fl-trill-maj2-G#6-mf.wav"
    )
    assert df["f0_hz"].iloc[0] == pytest.approx(1661.22, abs=0.01)
    assert np.isnan(df["f0_hz"].iloc[4])


def test_folder_with_authors_csv(tmp_path):
    _authors_tree(tmp_path)
    (tmp_path / "notes.csv").write_text("unrelated,columns\n1,2\n")  # not a data set CSV
    df = load_dataset(tmp_path)
    assert df.attrs["source"] == "authors_csv" and len(df) == 5


def test_authors_csv_missing_audio(tmp_path):
    csv = _authors_tree(tmp_path)
    (tmp_path / "PluckedStrings/Harp/bisbigliando/Hp-bisb-D#3-mf.wav").unlink()
    with pytest.raises(DatasetError, match="Hp-bisb-D#3-mf.wav"):
        load_dataset(csv)


def test_real_authors_csv_reproduced(tmp_path):
    meta = pd.read_csv(AUTHORS_CSV)
    for family, instrument, folder, name in meta[
        list(AUTHORS_COLUMNS[:3]) + ["file_name"]
    ].itertuples(index=False):
        path = tmp_path / family / instrument / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        # existence is all the loader checks, and that no two files are equal
        path.write_text(str(path.relative_to(tmp_path)))
    (tmp_path / "meta.csv").write_bytes(gzip.decompress(AUTHORS_CSV.read_bytes()))
    df = load_dataset(tmp_path / "meta.csv")
    assert len(df) == 5564
    assert df["subset"].value_counts().to_dict() == {
        "training": 3315,
        "test": 1151,
        "validation": 1098,
    }
    assert (df["subset"].to_numpy() == meta["subset"].to_numpy()).all()
    assert df["technique"].value_counts().to_dict() == {
        "tremolo": 2530,
        "flatterzunge": 1523,
        "trill": 1035,
        "bisbigliando": 286,
        "vibrato": 190,
    }
    assert df["f0_hz"].isna().sum() == 1  # Hp-trem+fngrtip-p.wav names no note
    assert df["f0_hz"].between(34.6, 3951.1).sum() == 5563


# -------------------------------------------------------------- SOL tree --
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and symbolic links")
def test_sol_tree_with_special_files_neither_hangs_nor_crashes(tmp_path):
    good = tmp_path / "Strings" / "Viola" / "tremolo"
    for i in range(3):
        _wav(good / f"Va-trem-C{i + 2}-mf.wav")
    os.mkfifo(good / "fifo.wav")  # opening it would block for ever
    (good / "dangling.wav").symlink_to(tmp_path / "gone.wav")
    (good / "loop.wav").symlink_to(good / "loop.wav")
    (good / "device.wav").symlink_to("/dev/zero")  # reading it never ends
    os.symlink(b"Va-\xff-C4.wav", os.fsencode(good) + b"/Va-\xff-C4.wav")  # not UTF-8
    # a technique folder that is a link is followed; a link back up is walked once
    elsewhere = tmp_path.parent / (tmp_path.name + "-flutes")
    for i in range(2):
        _wav(elsewhere / f"Fl-flatt-D{i + 4}-mf.flac")
    (tmp_path / "Flutes" / "Flute").mkdir(parents=True)
    (tmp_path / "Flutes" / "Flute" / "flatterzunge").symlink_to(elsewhere)
    (good / "up").symlink_to(tmp_path)
    df = load_dataset(tmp_path)
    assert df["technique"].value_counts().to_dict() == {"tremolo": 3, "flatterzunge": 2}
    reasons = sorted(entry.rsplit(" (", 1)[1] for entry in df.attrs["ignored"])
    assert reasons == ["dangling or looping link)", "dangling or looping link)",
                       "name is not UTF-8)", "not a regular file)", "not a regular file)"]


def test_manifest_names_why_a_file_cannot_be_used(tmp_path):
    _wav(tmp_path / "a.wav")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "b.wav")
    pd.DataFrame({"path": ["a.wav", "b.wav", "c.wav"],
                  "technique": ["trill"] * 3}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(DatasetError, match=r"c.wav' \(missing\)") as info:
        load_dataset(tmp_path / "m.csv")
    if hasattr(os, "mkfifo"):
        assert "b.wav' (not a regular file)" in str(info.value)


def test_sol_tree_maps_folders_and_ignores_others(tmp_path):
    for i in range(5):
        _wav(tmp_path / "Strings" / "Viola" / "tremolo" / f"Va-trem-C{i + 2}-mf.wav")
        _wav(tmp_path / "Flutes" / "Flute" / "flatterzunge" / f"Fl-flatt-D{i + 4}-mf.flac")
    _wav(tmp_path / "Strings" / "Viola" / "ordinario" / "Va-ord-C4-mf.wav")
    _wav(tmp_path / "Strings" / "Viola" / "non-vibrato" / "Va-nonvib-C4-mf.wav")
    _wav(tmp_path / "Strings" / "Viola" / "tremolo-ish" / "Va-x-C4-mf.wav")  # no substring guessing
    _wav(tmp_path / "loose.wav")
    (tmp_path / "Strings" / "Viola" / "tremolo" / "README.txt").write_text("not audio")
    df = load_dataset(tmp_path)
    assert df.attrs["source"] == "sol_tree"
    assert df["technique"].value_counts().to_dict() == {"tremolo": 5, "flatterzunge": 5}
    assert df.attrs["n_ignored"] == 4
    assert sorted(df.attrs["ignored"]) == sorted(
        [
            "Strings/Viola/ordinario/Va-ord-C4-mf.wav",
            "Strings/Viola/non-vibrato/Va-nonvib-C4-mf.wav",
            "Strings/Viola/tremolo-ish/Va-x-C4-mf.wav",
            "loose.wav",
        ]
    )
    assert set(df["family"]) == {"Strings", "Flutes"}
    assert df["f0_hz"].notna().all() and df["modulation_rate_hz"].isna().all()
    assert not has_split(df)
    assert set(assign_split(df, 0)["subset"]) == {"training", "validation", "test"}


def test_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="no audio files"):
        load_dataset(tmp_path)


def test_tree_without_known_technique(tmp_path):
    _wav(tmp_path / "Strings" / "Viola" / "ordinario" / "Va-ord-C4-mf.wav")
    with pytest.raises(DatasetError, match="none in a known technique folder"):
        load_dataset(tmp_path)


# ----------------------------------------------------------------- split --
def _groups_frame(sizes):
    rows = [
        {"technique": t, "instrument": i, "k": k} for (t, i), n in sizes.items() for k in range(n)
    ]
    return pd.DataFrame(rows)


def test_split_follows_recipe_per_instrument():
    df = _groups_frame({("trill", "Flute"): 10, ("trill", "Oboe"): 7, ("tremolo", "Viola"): 13})
    out = split_dataset(df, seed=4)
    counts = out.groupby(["technique", "instrument"])["subset"].value_counts().unstack(fill_value=0)
    for (technique, instrument), n in {
        ("trill", "Flute"): 10,
        ("trill", "Oboe"): 7,
        ("tremolo", "Viola"): 13,
    }.items():
        row = counts.loc[(technique, instrument)]
        assert row["training"] == int(0.6 * n) and row["validation"] == int(0.2 * n)
        assert row["test"] == n - int(0.6 * n) - int(0.2 * n)


def test_split_deterministic_and_leak_free():
    df = _groups_frame({("trill", "Flute"): 20, ("vibrato", "Oboe"): 9})
    a, b = split_dataset(df, seed=1), split_dataset(df, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert not a["subset"].equals(split_dataset(df, seed=2)["subset"])
    assert a.index.equals(df.index) and a["k"].equals(df["k"])  # row order kept
    assert a["subset"].isin(["training", "validation", "test"]).all()  # exactly one subset each


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=8), seed=st.integers(0, 1000))
def test_split_keeps_classes_in_every_subset(sizes, seed):
    # One class spread thinly over many instruments: the recipe alone sends small
    # groups to test, the repair step puts the class in all three subsets.
    df = _groups_frame({("vibrato", f"ins{i}"): n for i, n in enumerate(sizes)})
    out = split_dataset(df, seed=seed)
    present = set(out["subset"])
    if len(df) >= 3:
        assert present == {"training", "validation", "test"}
    assert len(out) == len(df)


def test_split_tiny_groups_go_to_test():
    out = split_dataset(_groups_frame({("trill", "Flute"): 1, ("vibrato", "Oboe"): 2}), seed=0)
    assert out.loc[out["technique"] == "trill", "subset"].tolist() == ["test"]
    assert sorted(out.loc[out["technique"] == "vibrato", "subset"]) == ["test", "training"]


def test_split_without_instrument_column():
    out = split_dataset(pd.DataFrame({"technique": ["trill"] * 5}), seed=0)
    assert out["subset"].value_counts().to_dict() == {"training": 3, "validation": 1, "test": 1}


# ------------------------------------------------------ writing and audio --
def test_write_split_csv_round_trip(tmp_path):
    for i in range(6):
        _wav(tmp_path / "a" / f"{i}.wav")
    pd.DataFrame({"path": [f"a/{i}.wav" for i in range(6)], "technique": ["trill"] * 6}).to_csv(
        tmp_path / "m.csv", index=False
    )
    df = assign_split(load_dataset(tmp_path / "m.csv"), seed=0)
    out = write_split_csv(df, tmp_path / "out" / "split.csv")
    again = load_dataset(out)
    assert again["path"].tolist() == df["path"].tolist()
    assert again["subset"].tolist() == df["subset"].tolist()
    assert not list((tmp_path / "out").glob(".*tmp"))  # no temporary file left


def test_synthetic_manifest_round_trip(tmp_path):
    df = assign_split(synthetic_manifest({"trill": 4, "tremolo": 4}, seed=0), seed=0)
    again = load_dataset(write_split_csv(df, tmp_path / "split.csv"))
    assert (again["path"] == "").all() and again["subset"].tolist() == df["subset"].tolist()
    np.testing.assert_array_equal(
        example_audio(again.iloc[0], n_samples=4096), synthesize(df.iloc[0], n_samples=4096)
    )


def test_example_audio_from_file(tmp_path):
    path = _wav(tmp_path / "x.wav", seconds=0.1)
    row = pd.Series({"path": str(path), "technique": "trill"})
    x = example_audio(row, n_samples=8192)
    assert x.shape == (8192,) and x.dtype == np.float32
    assert np.allclose(x[: int(0.1 * SR)][:4000], 0.1, atol=1e-3)
    assert np.all(x[int(0.1 * SR) :] == 0)
    assert len(example_audio(row, n_samples=1000)) == 1000


def test_example_audio_synthetic():
    row = synthetic_manifest({"vibrato": 1}, seed=3).iloc[0]
    np.testing.assert_array_equal(
        example_audio(row, n_samples=4096), synthesize(row, n_samples=4096)
    )


def test_the_plugin_loads_the_data_set_once_and_the_run_reads_that_frame(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from pmt_core.data import datasets
    from pmt_core.pytest_plugin import _check_dataset
    from pmt_core.run import Run, RunSettings

    for i in range(10):
        _wav(tmp_path / f"{i}.wav")
    pd.DataFrame({"path": [f"{i}.wav" for i in range(10)], "technique": ["tremolo"] * 10}).to_csv(
        tmp_path / "m.csv", index=False)
    calls = []
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda p: calls.append(p) or real(p))
    manifest = str(tmp_path / "m.csv")
    config = SimpleNamespace(getoption=lambda name: manifest)
    frame = _check_dataset(config)  # what the plugin does before collection
    run = Run(RunSettings(dataset=manifest, profile="smoke", report_dir=str(tmp_path / "r")),
              progress=False, dataset_frame=frame)
    assert len(run.data.frame) == 10 and run.data.source == "manifest"
    assert len(calls) == 1  # not again by the run
    assert _check_dataset(SimpleNamespace(getoption=lambda name: "synthetic")) is None
