import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pmt_core.data.descriptors import describe
from pmt_core.data.synth import (
    DYNAMICS,
    F0_MAX_HZ,
    F0_MIN_HZ,
    INSTRUMENTS,
    Instrument,
    instruments_for,
    synthesize,
    synthetic_manifest,
)
from pmt_core.profiles import CI_CLASS_SIZES, PAPER_CLASS_SIZES
from pmt_core.techniques import MODULATION_BAND_HZ, TECHNIQUES

SR = 44100
RATE_TOLERANCE_OCT = 0.1
MECHANISM = {
    "vibrato": "pitch_rate_hz",
    "trill": "pitch_rate_hz",
    "tremolo": "envelope_rate_hz",
    "bisbigliando": "envelope_rate_hz",
    "flatterzunge": "envelope_rate_hz",
}


@pytest.fixture(scope="module")
def ci_manifest():
    return synthetic_manifest(CI_CLASS_SIZES, seed=0)


@pytest.fixture(scope="module")
def paper_manifest():
    return synthetic_manifest(PAPER_CLASS_SIZES, seed=0)


def _row(technique, instrument, f0, rate, depth, seed=3, **extra):
    row = {
        "path": "",
        "technique": technique,
        "instrument": instrument,
        "family": INSTRUMENTS[instrument].family,
        "f0_hz": f0,
        "modulation_rate_hz": rate,
        "modulation_depth": depth,
        "dynamics": "mf",
        "mute": False,
        "mute_type": "",
        "onset_s": 0.1,
        "duration_s": 4.5,
        "seed": seed,
    }
    row.update(extra)
    return pd.Series(row)


# ------------------------------------------------------------- instruments --
def test_instrument_table():
    assert len(INSTRUMENTS) == 30
    assert len({ins.family for ins in INSTRUMENTS.values()}) == 11
    for name, ins in INSTRUMENTS.items():
        assert isinstance(ins, Instrument) and ins.name == name
        lo, hi = ins.f0_range_hz
        # A trill's upper note (a tone above the written one) stays below B7.
        assert F0_MIN_HZ <= lo < hi <= F0_MAX_HZ / 2 ** (2 / 12) + 1e-6
        assert ins.techniques <= set(TECHNIQUES) and ins.techniques


def test_every_technique_on_several_families():
    for technique in TECHNIQUES:
        families = {ins.family for ins in instruments_for(technique)}
        assert len(families) >= 3, technique
    assert "bisbigliando" in INSTRUMENTS["Harp"].techniques
    assert "flatterzunge" in INSTRUMENTS["Flute"].techniques
    assert "tremolo" in INSTRUMENTS["Violin"].techniques
    assert "flatterzunge" not in INSTRUMENTS["Violin"].techniques


def test_instrument_is_frozen():
    with pytest.raises(AttributeError):
        INSTRUMENTS["Flute"].name = "Fife"


# ---------------------------------------------------------------- manifest --
def test_class_sizes_and_columns(ci_manifest, paper_manifest):
    assert ci_manifest["technique"].value_counts().to_dict() == CI_CLASS_SIZES
    assert paper_manifest["technique"].value_counts().to_dict() == PAPER_CLASS_SIZES
    assert min(CI_CLASS_SIZES.values()) >= 40 and 550 <= sum(CI_CLASS_SIZES.values()) <= 650
    for column in (
        "path",
        "technique",
        "instrument",
        "family",
        "f0_hz",
        "modulation_rate_hz",
        "modulation_depth",
        "dynamics",
        "mute",
        "seed",
    ):
        assert column in ci_manifest
    assert ci_manifest.attrs["source"] == "synthetic"
    assert (ci_manifest["path"] == "").all()
    assert ci_manifest["seed"].map(type).eq(int).all() or ci_manifest["seed"].dtype.kind == "i"
    assert ci_manifest["mute"].dtype == bool


def test_manifest_deterministic_per_seed(ci_manifest):
    pd.testing.assert_frame_equal(ci_manifest, synthetic_manifest(CI_CLASS_SIZES, seed=0))
    other = synthetic_manifest(CI_CLASS_SIZES, seed=1)
    assert not np.allclose(other["f0_hz"].to_numpy(), ci_manifest["f0_hz"].to_numpy())


def test_manifest_fewer_techniques():
    df = synthetic_manifest({"trill": 12, "tremolo": 9}, seed=2)
    assert set(df["technique"]) == {"trill", "tremolo"} and len(df) == 21


def test_parameters_in_range(paper_manifest):
    for _, row in paper_manifest.iterrows():
        lo, hi = INSTRUMENTS[row.instrument].f0_range_hz
        assert lo <= row.f0_hz <= hi
        band = MODULATION_BAND_HZ[row.technique]
        assert band[0] <= row.modulation_rate_hz <= band[1]
        assert row.technique in INSTRUMENTS[row.instrument].techniques
        assert row.family == INSTRUMENTS[row.instrument].family
        assert not row.mute or INSTRUMENTS[row.instrument].mutes


def test_nuisance_parameters_balanced_across_classes(paper_manifest):
    df = paper_manifest
    lo = df["instrument"].map(lambda n: INSTRUMENTS[n].f0_range_hz[0])
    hi = df["instrument"].map(lambda n: INSTRUMENTS[n].f0_range_hz[1])
    # f0 log-uniform within the instrument's range, for every class.
    position = np.log(df["f0_hz"] / lo) / np.log(hi / lo)
    for technique, pos in position.groupby(df["technique"]):
        assert stats.kstest(pos, "uniform").pvalue > 1e-3, technique
    for column in ("onset_s", "duration_s"):
        groups = [g.to_numpy() for _, g in df.groupby("technique")[column]]
        assert stats.kruskal(*groups).pvalue > 1e-3, column
    table = pd.crosstab(df["technique"], df["dynamics"])
    assert set(table.columns) == set(DYNAMICS)
    assert stats.chi2_contingency(table).pvalue > 1e-3
    mutable = df["instrument"].map(lambda n: bool(INSTRUMENTS[n].mutes))
    mute_rate = df[mutable].groupby("technique")["mute"].mean()
    assert mute_rate.between(0.2, 0.4).all()


def test_every_class_in_every_subset(ci_manifest):
    from pmt_core.data.split import assign_split

    assert "subset" not in ci_manifest  # the synthesiser does not split: the run does
    table = pd.crosstab(ci_manifest["technique"], assign_split(ci_manifest, 0)["subset"])
    assert (table > 0).all().all()
    assert set(table.columns) == {"training", "validation", "test"}


# --------------------------------------------------------------- synthesis --
def test_synthesize_basic_and_deterministic(ci_manifest):
    row = ci_manifest.iloc[0]
    x = synthesize(row)
    assert x.dtype == np.float32 and x.shape == (2**18,)
    assert np.all(np.isfinite(x)) and np.max(np.abs(x)) <= 1.0
    np.testing.assert_array_equal(x, synthesize(row))
    np.testing.assert_array_equal(x, synthesize(row.to_dict()))
    changed = row.copy()
    changed["seed"] = int(row["seed"]) + 1
    assert not np.array_equal(x, synthesize(changed))


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_every_class_renders_finite(ci_manifest, technique):
    for _, row in ci_manifest[ci_manifest["technique"] == technique].head(3).iterrows():
        x = synthesize(row, n_samples=2**16)
        assert x.shape == (2**16,) and np.all(np.isfinite(x)) and np.any(x != 0)


def test_note_level_follows_dynamics():
    levels = {}
    for dyn in ("pp", "ff"):
        x = synthesize(_row("tremolo", "Viola", 300.0, 10.0, 0.7, dynamics=dyn))
        note = x[int(0.1 * SR) : int(4.6 * SR)]
        levels[dyn] = 20 * np.log10(np.sqrt(np.mean(note.astype(float) ** 2)))
    assert abs(levels["pp"] - DYNAMICS["pp"][0]) < 2.5
    assert abs(levels["ff"] - DYNAMICS["ff"][0]) < 2.5


def test_note_placed_at_onset():
    x = synthesize(_row("vibrato", "Oboe", 440.0, 6.0, 40.0, onset_s=1.0, duration_s=2.0))
    assert np.max(np.abs(x[: int(0.99 * SR)])) < 1e-6
    assert np.max(np.abs(x[int(3.1 * SR) :])) < 1e-6
    assert np.max(np.abs(x[int(1.5 * SR) : int(2.5 * SR)])) > 1e-3


def test_no_energy_above_nyquist_guard():
    # Highest trill on the highest instrument: partials stop below 0.45 fs.
    x = synthesize(_row("trill", "Piccolo", 3520.0, 8.0, 200.0))
    power = np.abs(np.fft.rfft(x.astype(float))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    assert power[freqs > 0.46 * SR].sum() / power.sum() < 1e-4


@pytest.mark.parametrize(
    ("technique", "instrument", "f0", "rate", "depth"),
    [
        ("vibrato", "Violin", 523.0, 5.5, 40.0),
        ("vibrato", "Alto-Sax", 220.0, 7.2, 25.0),
        ("trill", "Flute", 880.0, 7.0, 200.0),
        ("trill", "Violoncello", 196.0, 9.0, 100.0),
        ("tremolo", "Contrabass", 82.0, 11.0, 0.7),
        ("tremolo", "Harp", 330.0, 14.0, 0.8),
        ("bisbigliando", "Harp", 392.0, 8.0, 8.0),
        ("bisbigliando", "Alto-Sax", 311.0, 10.0, 10.0),
        ("flatterzunge", "Clarinet-Bb", 294.0, 27.0, 0.7),
        ("flatterzunge", "Tenor-Trombone", 147.0, 34.0, 0.6),
    ],
)
def test_recorded_rate_is_in_the_signal(technique, instrument, f0, rate, depth):
    d = describe(synthesize(_row(technique, instrument, f0, rate, depth)))
    measured = d[MECHANISM[technique]]
    assert abs(np.log2(measured / rate)) < RATE_TOLERANCE_OCT, (measured, rate)


def test_vibrato_depth_shows_in_pitch_track():
    shallow = describe(synthesize(_row("vibrato", "Oboe", 440.0, 6.0, 15.0)))
    deep = describe(synthesize(_row("vibrato", "Oboe", 440.0, 6.0, 90.0)))
    assert 3.0 < deep["pitch_depth_cents"] / shallow["pitch_depth_cents"] < 9.0
    # Sinusoid-like: standard deviation about peak / sqrt(2), less while ramping in.
    assert 0.4 * 90 < deep["pitch_depth_cents"] < 0.8 * 90


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 2), rate=st.floats(8.0, 16.0))
def test_tremolo_rate_any_seed(seed, rate):
    d = describe(synthesize(_row("tremolo", "Viola", 250.0, rate, 0.8, seed=seed)))
    assert abs(np.log2(d["envelope_rate_hz"] / rate)) < RATE_TOLERANCE_OCT


def test_unknown_technique_rejected():
    with pytest.raises(ValueError, match="glissando"):
        synthesize(_row("vibrato", "Oboe", 440.0, 6.0, 40.0).replace("vibrato", "glissando"))


def test_synthesis_is_fast(ci_manifest):
    rows = [r for _, r in ci_manifest.head(10).iterrows()]
    start = time.perf_counter()
    for row in rows:
        synthesize(row)
    per_clip = (time.perf_counter() - start) / len(rows)
    assert per_clip < 0.15  # target 50 ms; generous for a shared CI machine
