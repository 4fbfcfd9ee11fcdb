import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmt_core.data.descriptors import DESCRIPTOR_NAMES
from pmt_core.data.shortcuts import (
    DESCRIPTOR_SETS,
    GUARD_CLASSIFIERS,
    class_constant_hit_rate,
    guard_descriptors,
    shortcut_guard,
    shortcut_scores,
)

CLASSES = np.array(["vibrato", "trill", "tremolo", "bisbigliando", "flatterzunge"])


def _labels(n_per_class=40):
    return np.repeat(CLASSES, n_per_class)


def _data(rng, n_per_class=40, leak=None):
    """A data set and its descriptors; ``leak`` names a descriptor that encodes the class."""
    labels = _labels(n_per_class)
    n = len(labels)
    desc = pd.DataFrame({name: rng.normal(size=n) for name in DESCRIPTOR_NAMES})
    desc["spectral_centroid_hz"] = rng.uniform(500.0, 4000.0, n)
    desc["f0_estimate_hz"] = rng.uniform(100.0, 1000.0, n)
    dataset = pd.DataFrame({
        "technique": labels,
        "family": rng.choice(["Flutes", "Strings", "Oboes"], n),
        "f0_hz": rng.uniform(100.0, 1000.0, n),
    })
    if leak is not None:
        code = pd.Series(labels).map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
        desc[leak] = code + 0.1 * rng.normal(size=n)
    return dataset, desc


# ------------------------------------------------------------ shortcut_scores --
def test_scores_find_an_informative_feature(rng):
    labels = _labels()
    code = pd.Series(labels).map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
    features = np.column_stack([code + 0.05 * rng.normal(size=len(labels)),
                                rng.normal(size=len(labels))])
    scores = shortcut_scores(features, labels)
    assert set(scores) == set(GUARD_CLASSIFIERS)
    assert max(scores.values()) > 0.9
    assert min(scores.values()) > 0.6


def test_scores_at_chance_on_noise(rng):
    labels = _labels(60)
    scores = shortcut_scores(rng.normal(size=(len(labels), 4)), labels)
    assert all(0.1 < s < 0.32 for s in scores.values()), scores


def test_scores_balanced_for_imbalanced_classes(rng):
    # A constant prediction of the big class scores 1 / n_classes, not its share.
    labels = np.array(["a"] * 200 + ["b"] * 20 + ["c"] * 20)
    scores = shortcut_scores(rng.normal(size=(len(labels), 1)), labels)
    assert all(s < 0.5 for s in scores.values()), scores


def test_scores_deterministic(rng):
    labels = _labels(20)
    x = rng.normal(size=(len(labels), 3))
    assert shortcut_scores(x, labels, seed=3) == shortcut_scores(x, labels, seed=3)


def test_scores_reject_degenerate_labels(rng):
    with pytest.raises(ValueError, match="2 classes"):
        shortcut_scores(rng.normal(size=(10, 2)), ["a"] * 10)
    with pytest.raises(ValueError, match="class sizes"):
        shortcut_scores(rng.normal(size=(11, 2)), ["a"] * 10 + ["b"])
    with pytest.raises(ValueError, match="shape"):
        shortcut_scores(rng.normal(size=(10, 2)), ["a", "b"] * 4)


def test_scores_fewer_folds_for_small_classes(rng):
    labels = np.array(["a"] * 3 + ["b"] * 30)
    scores = shortcut_scores(rng.normal(size=(len(labels), 2)), labels)
    assert all(np.isfinite(s) for s in scores.values())


# ----------------------------------------------------------- guard_descriptors --
def test_guard_descriptors_columns_and_no_loudness(rng):
    dataset, desc = _data(rng, 5)
    features = guard_descriptors(dataset, desc)
    assert {"log_spectral_flatness", "ltas_slope_db_per_oct", "log2_centroid", "log2_f0"} <= set(
        features
    )
    assert not any("rms" in c or "peak" in c for c in features)
    assert sorted(c for c in features if c.startswith("family_")) == [
        "family_Flutes", "family_Oboes", "family_Strings"]
    assert (features.filter(like="family_").sum(axis=1) == 1).all()


def test_guard_f0_recorded_else_estimated(rng):
    dataset, desc = _data(rng, 2)
    dataset.loc[0, "f0_hz"] = np.nan
    desc.loc[1, "f0_estimate_hz"] = 0.0
    features = guard_descriptors(dataset, desc)
    assert features.loc[0, "log2_f0"] == pytest.approx(np.log2(desc.loc[0, "f0_estimate_hz"]))
    assert features.loc[1, "log2_f0"] == pytest.approx(np.log2(dataset.loc[1, "f0_hz"]))
    no_f0 = guard_descriptors(dataset.drop(columns="f0_hz"), desc)
    assert np.isfinite(no_f0["log2_f0"]).all()  # the failed estimate takes the median


def test_guard_descriptors_length_mismatch(rng):
    dataset, desc = _data(rng, 2)
    with pytest.raises(ValueError, match="descriptor rows"):
        guard_descriptors(dataset, desc.iloc[:-1])


# ------------------------------------------------------------- shortcut_guard --
def test_guard_rows_and_chance(rng):
    dataset, desc = _data(rng)
    table = shortcut_guard(dataset, desc)
    assert list(table.index) == [*DESCRIPTOR_SETS, "all"]
    assert set(table.columns) == {*GUARD_CLASSIFIERS, "best", "chance"}
    assert (table["chance"] == 0.2).all()
    assert (table["best"] < 0.35).all(), table  # nothing informative


@pytest.mark.parametrize(("leak", "row"), [("log_spectral_flatness", "log_spectral_flatness"),
                                           ("ltas_slope_db_per_oct", "ltas_slope")])
def test_guard_finds_a_leak_where_it_is(rng, leak, row):
    dataset, desc = _data(rng, leak=leak)
    table = shortcut_guard(dataset, desc)
    assert table.loc[row, "best"] > 0.9 and table.loc["all", "best"] > 0.9
    others = [r for r in DESCRIPTOR_SETS if r != row]
    assert (table.loc[others, "best"] < 0.35).all(), table


def test_guard_family_leak(rng):
    dataset, desc = _data(rng)
    dataset["family"] = dataset["technique"].map(dict(zip(CLASSES, "ABCDE", strict=True)))
    table = shortcut_guard(dataset, desc)
    assert table.loc["family", "best"] == pytest.approx(1.0)


# ------------------------------------------------------ class_constant_hit_rate --
def test_hit_rate_of_a_constant_rate_is_one():
    grid = 2.0 ** np.arange(0, 6, 0.5)
    table = class_constant_hit_rate([5.0] * 10 + [30.0] * 10, ["a"] * 10 + ["b"] * 10, grid)
    assert table["hit_rate"].tolist() == [1.0, 1.0]
    assert table["n"].tolist() == [10, 10]


def test_hit_rate_of_two_octaves_is_one_half(rng):
    # Log-uniform over 2 octaves, a dense grid: a 1-octave window holds half.
    rates = 4.0 * 2.0 ** rng.uniform(0.0, 2.0, 20000)
    grid = 2.0 ** np.arange(0.0, 6.0, 1 / 64)
    table = class_constant_hit_rate(rates, ["x"] * len(rates), grid)
    assert table.loc["x", "hit_rate"] == pytest.approx(0.5, abs=0.02)
    assert 5.0 < table.loc["x", "best_lambda2_hz"] < 12.0


def test_hit_rate_window_is_inclusive_and_skips_missing_rates():
    table = class_constant_hit_rate([2.0 ** -0.5, 2.0**0.5, np.nan, 0.0], ["a"] * 4, [1.0])
    assert table.loc["a", "hit_rate"] == 1.0 and table.loc["a", "n"] == 2


def test_hit_rate_rejects_empty_grid():
    with pytest.raises(ValueError, match="lambda2"):
        class_constant_hit_rate([1.0], ["a"], [0.0, np.nan])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), tol=st.floats(0.1, 1.0))
def test_hit_rate_is_the_best_constant(seed, tol):
    rng = np.random.default_rng(seed)
    rates = np.exp(rng.uniform(np.log(2.0), np.log(60.0), 50))
    grid = np.exp(rng.uniform(np.log(1.0), np.log(100.0), 12))
    table = class_constant_hit_rate(rates, ["a"] * 50, grid, tol)
    each = [np.mean(np.abs(np.log2(g / rates)) <= tol) for g in grid]
    assert table.loc["a", "hit_rate"] == pytest.approx(max(each))
    wider = class_constant_hit_rate(rates, ["a"] * 50, grid, tol + 0.2)
    assert wider.loc["a", "hit_rate"] >= table.loc["a", "hit_rate"]
