"""pmt_core.figures.paper on small fabricated inputs (real path metadata, random maps)."""

import math

import numpy as np
import pandas as pd
import pytest

from pmt_core.features.scattering import path_table
from pmt_core.figures.paper import (
    AudioExample,
    ClassAggregate,
    LocalExample,
    audio_example,
    class_aggregates,
    figure1,
    figure2,
    pick_examples,
    technique_spectrograms,
)
from pmt_core.figures.plots import figure_to_png
from pmt_core.techniques import TECHNIQUES

RULES = ["epsilon", "epsilon_zplus", "zplus_epsilon"]
SR = 8000  # short, low-rate audio keeps the spectrograms cheap


@pytest.fixture(scope="module")
def paths():
    return path_table()  # builds the filter bank once (~7 s)


def _tone(rng, f0=440.0, rate=6.0, seconds=1.0):
    t = np.arange(int(SR * seconds)) / SR
    return np.sin(2 * np.pi * f0 * t + 3 * np.sin(2 * np.pi * rate * t)) \
        + 0.01 * rng.standard_normal(t.size)


def _local(rng, paths, technique, f0=440.0, rate=6.0, rules=RULES):
    return LocalExample(
        technique=technique, audio=_tone(rng), sample_rate=SR, f0_hz=f0,
        modulation_rate_hz=rate, description="fabricated",
        scattering=np.exp(rng.standard_normal(len(paths))),
        relevance={r: rng.laplace(size=len(paths)) for r in rules},
    )


def _labels(fig):
    return [ax.get_xlabel() for ax in fig.axes] + [ax.get_ylabel() for ax in fig.axes]


def _assert_hz_axes(fig, n_grids):
    labels = _labels(fig)
    assert sum("modulation" in x and "(Hz)" in x for x in labels) == n_grids
    assert sum("carrier" in x and "(Hz)" in x for x in labels) == n_grids
    for ax in fig.axes:
        if "(Hz)" in ax.get_ylabel() and ax.get_ylabel().startswith(("carrier", "frequency")):
            assert ax.get_yscale() == "log"
        if ax.get_xlabel().startswith("modulation"):
            assert ax.get_xscale() == "log"


# --------------------------------------------------------------- selection ----
def test_pick_examples_prefers_correct_near_a4():
    true = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 0, 1, 0])
    f0 = np.array([220.0, 880.0, 440.0, 445.0, 100.0, 440.0])
    picks = pick_examples(["a", "b", "c", "d"], true, pred, f0)
    # class a: example 2 is at A4 but misclassified; 0 and 1 are an octave away, 0 first
    assert picks["a"] == 0
    assert picks["b"] == 4  # the only correct one, though far from A4
    assert picks["c"] == 5  # no correct one: any example of the class
    assert picks["d"] is None


def test_pick_examples_without_f0():
    picks = pick_examples(["a", "b"], [1, 0, 0], None, [np.nan, np.nan, 300.0])
    assert picks == {"a": 2, "b": 0}
    assert pick_examples(["a"], [0, 0], None, None) == {"a": 0}


def test_class_aggregates(rng, paths):
    labels = np.array([0, 0, 2, 2, 2])
    scattering = rng.random((5, len(paths)))
    maps = {r: rng.standard_normal((5, len(paths))) for r in RULES[:2]}
    rates = np.array([4.0, 16.0, np.nan, np.nan, np.nan])
    agg = class_aggregates(TECHNIQUES[:3], labels, scattering, maps, rates, n=5)
    assert agg["trill"] is None
    assert agg["vibrato"].n_examples == 2
    assert agg["vibrato"].median_rate_hz == pytest.approx(8.0)  # log-scale median
    assert math.isnan(agg["tremolo"].median_rate_hz)
    assert agg["tremolo"].counts["epsilon"].sum() == 3 * 5
    np.testing.assert_allclose(agg["tremolo"].mean_scattering, scattering[2:].mean(axis=0))


def test_audio_example_reads_row_ground_truth(monkeypatch):
    monkeypatch.setattr("pmt_core.data.sources.example_audio",
                        lambda row, sample_rate, n_samples: np.zeros(n_samples))
    row = pd.Series({"path": "", "technique": "trill", "f0_hz": np.nan,
                     "modulation_rate_hz": 7.5, "instrument": "flute"})
    ex = audio_example(row, sample_rate=SR, n_samples=100)
    assert ex.technique == "trill" and ex.description == "flute"
    assert math.isnan(ex.f0_hz) and ex.modulation_rate_hz == 7.5
    assert ex.audio.shape == (100,)


# ----------------------------------------------------------------- figure 1 ----
def test_figure1_one_figure_per_technique(rng, paths):
    examples = {t: _local(rng, paths, t) for t in TECHNIQUES[:2]}
    figs = figure1(examples, paths, highlight="epsilon")
    assert len(figs) == 2
    for fig in figs:
        # spectrogram + (scattering + 3 rules) x (S1, S2, colour bar)
        assert len(fig.axes) == 1 + 3 * (1 + len(RULES))
        _assert_hz_axes(fig, 1 + len(RULES))
        assert any(ax.get_ylabel() == "frequency (Hz)" for ax in fig.axes)
    png = figure_to_png(figs[0])
    assert png[:4] == b"\x89PNG" and len(png) < 300_000


def test_figure1_missing_ground_truth_and_class(rng, paths):
    nan_truth = LocalExample(
        technique="vibrato", audio=None, f0_hz=np.nan, modulation_rate_hz=np.nan,
        scattering=np.exp(rng.standard_normal(len(paths))),
        relevance={"epsilon": rng.laplace(size=len(paths))},  # other rules missing
    )
    only_f0 = _local(rng, paths, "trill", f0=300.0, rate=np.nan)
    figs = figure1({"vibrato": nan_truth, "trill": only_f0, "tremolo": None}, paths,
                   rules=RULES)
    assert len(figs[0].axes) == 1 + 3 * 4
    assert len(figs[1].axes) == 1 + 3 * 4
    assert len(figs[2].axes) == 1  # placeholder
    assert "no test example" in figs[2].axes[0].texts[0].get_text()
    # no rate, no f0: no marks on the S2 planes (only the data mesh)
    s2 = [ax for ax in figs[0].axes if ax.get_xlabel().startswith("modulation")]
    assert all(not ax.lines for ax in s2)
    # f0 only: one horizontal line per S2 plane, no cross, limits untouched
    s2 = [ax for ax in figs[1].axes if ax.get_xlabel().startswith("modulation")]
    assert all(len(ax.lines) == 1 for ax in s2)
    for fig in figs:
        assert figure_to_png(fig)[:4] == b"\x89PNG"


# ----------------------------------------------------------------- figure 2 ----
def test_figure2_layout_and_band(rng, paths):
    labels = np.array([0, 0, 1, 1, 3])
    maps = {r: rng.standard_normal((5, len(paths))) for r in RULES}
    agg = class_aggregates(TECHNIQUES, labels, np.exp(rng.standard_normal((5, len(paths)))),
                           maps, [5.0, 6.0, np.nan, np.nan, 9.0])
    fig = figure2(agg, paths, highlight="zplus_epsilon")
    drawn = sum(a is not None for a in agg.values())  # 3 classes, 2 placeholders
    assert len(fig.axes) == drawn * 3 * (1 + len(RULES)) + (len(TECHNIQUES) - drawn)
    _assert_hz_axes(fig, drawn * (1 + len(RULES)))
    s2 = [ax for ax in fig.axes if ax.get_xlabel().startswith("modulation")]
    # vibrato, with a median rate: 2 band edges + the median line on each plane
    assert len(s2[0].lines) == 3
    # trill has no known rate: band edges only
    assert len(s2[1 + len(RULES)].lines) == 2
    png = figure_to_png(fig)
    assert len(png) < 300_000


def test_figure2_missing_counts(rng, paths):
    agg = {"flatterzunge": ClassAggregate(technique="flatterzunge",
                                          mean_scattering=np.ones(len(paths)),
                                          counts={}, n_examples=1)}
    fig = figure2(agg, paths, rules=["epsilon"])
    assert len(fig.axes) == 3 * 2
    assert figure_to_png(fig)[:4] == b"\x89PNG"


# ----------------------------------------------------------- spectrograms ----
def test_technique_spectrograms(rng):
    examples = {
        "vibrato": AudioExample(technique="vibrato", audio=_tone(rng), sample_rate=SR,
                                f0_hz=440.0, modulation_rate_hz=6.0),
        "trill": AudioExample(technique="trill", audio=_tone(rng), sample_rate=SR),
        "tremolo": None,
    }
    fig = technique_spectrograms(examples)
    assert len(fig.axes) == 3
    assert [ax.get_ylabel() for ax in fig.axes[:2]] == ["frequency (Hz)"] * 2
    assert all(ax.get_yscale() == "log" for ax in fig.axes[:2])
    assert len(fig.axes[0].lines) == 1 and not fig.axes[1].lines  # f0 line where known
    assert "no ground truth" in fig.axes[1].get_title()
    assert "no example" in fig.axes[2].texts[0].get_text()
    assert figure_to_png(fig)[:4] == b"\x89PNG"
