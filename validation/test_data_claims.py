"""Data claims: the classes differ by their modulation, never by a nuisance cue.

``data.no_shortcut``: a simple classifier fed only nuisance features (loudness,
pitch, brightness, instrument family) scores near chance. ``data.modulation_present``:
the recorded modulation rate of each example is recovered from its signal, by the
envelope rate or the pitch rate as the technique's mechanism implies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from pmt_core.figures.paper import audio_example, pick_examples, technique_spectrograms
from pmt_core.techniques import present_techniques
from validation import thresholds as th

#: Descriptor that carries each technique's modulation: pitch for the frequency
#: modulations (vibrato, trill), amplitude envelope for the re-articulations and
#: amplitude modulations (tremolo, bisbigliando, flatterzunge).
MECHANISM_DESCRIPTOR = {
    "vibrato": "pitch_rate_hz",
    "trill": "pitch_rate_hz",
    "tremolo": "envelope_rate_hz",
    "bisbigliando": "envelope_rate_hz",
    "flatterzunge": "envelope_rate_hz",
}

SHORTCUT_CLASSIFIERS = {
    "logistic_regression": lambda: make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced")
    ),
    "decision_tree_depth3": lambda: DecisionTreeClassifier(
        max_depth=3, class_weight="balanced", random_state=0
    ),
}


def nuisance_features(dataset: pd.DataFrame, descriptors: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Loudness (dB), log f0, log spectral centroid and family one-hot, per example.

    f0 is the recorded ``f0_hz`` where known, else the descriptor's estimate; the
    second return value says which was used.
    """
    estimate = descriptors["f0_estimate_hz"].to_numpy(dtype=float)
    estimate = np.where(estimate > 0, estimate, np.nan)
    if "f0_hz" in dataset and dataset["f0_hz"].notna().any():
        f0 = dataset["f0_hz"].to_numpy(dtype=float)
        f0 = np.where(np.isfinite(f0) & (f0 > 0), f0, estimate)
        f0_source = "recorded f0_hz (estimate where missing)"
    else:
        f0, f0_source = estimate, "f0_estimate_hz"
    log_f0 = np.log2(f0)
    log_f0 = np.where(np.isfinite(log_f0), log_f0, np.nanmedian(log_f0))
    features = pd.DataFrame(
        {
            "rms_db": 20.0 * np.log10(descriptors["rms"].to_numpy(dtype=float) + 1e-9),
            "log2_f0": log_f0,
            "log2_centroid": np.log2(
                descriptors["spectral_centroid_hz"].to_numpy(dtype=float) + 1.0
            ),
        }
    )
    if "family" in dataset and dataset["family"].nunique() > 1:
        one_hot = pd.get_dummies(dataset["family"].astype(str), prefix="family", dtype=float)
        features = pd.concat([features, one_hot.reset_index(drop=True)], axis=1)
    return features, f0_source


def shortcut_scores(features: pd.DataFrame, labels, n_splits: int = 5) -> dict[str, float]:
    """Cross-validated balanced accuracy of each shortcut classifier."""
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=0)
    scores = {}
    for name, make in SHORTCUT_CLASSIFIERS.items():
        predicted = cross_val_predict(make(), features.to_numpy(), labels, cv=folds)
        scores[name] = float(balanced_accuracy_score(labels, predicted))
    return scores


def rate_recovery(dataset: pd.DataFrame, descriptors: pd.DataFrame, tolerance_oct: float):
    """Per technique: fraction of examples whose recorded rate the signal shows.

    Returns ``(fractions, errors)``: technique -> fraction within ``tolerance_oct``
    octaves, and technique -> array of |log2(measured / recorded)| (inf when the
    descriptor found no rate). Examples without a recorded rate are left out.
    """
    fractions, errors = {}, {}
    rates = dataset["modulation_rate_hz"].to_numpy(dtype=float)
    for technique in present_techniques(dataset["technique"]):
        rows = (dataset["technique"].to_numpy() == technique) & np.isfinite(rates) & (rates > 0)
        if not rows.any():
            continue
        measured = descriptors[MECHANISM_DESCRIPTOR[technique]].to_numpy(dtype=float)[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            error = np.abs(np.log2(measured / rates[rows]))
        error = np.where(np.isfinite(error), error, np.inf)
        errors[technique] = error
        fractions[technique] = float(np.mean(error <= tolerance_oct))
    return fractions, errors


@pytest.fixture(scope="module")
def spectrogram_examples(dataset, scattering_config):
    """One example per technique (nearest A4 in f0), its audio regenerated."""
    classes = present_techniques(dataset["technique"])
    true = np.array([classes.index(t) for t in dataset["technique"]])
    f0 = dataset["f0_hz"].to_numpy(dtype=float) if "f0_hz" in dataset else None
    out = {}
    for technique, i in pick_examples(classes, true, None, f0).items():
        if i is None:
            out[technique] = None
            continue
        row = dataset.iloc[i]
        out[technique] = audio_example(
            row, scattering_config.sample_rate, scattering_config.n_samples,
            description=f"{row.get('instrument', '')} ({row.get('subset', '')})",
        )
    return out


def _attach_spectrograms(c, examples) -> None:
    c.figure(technique_spectrograms(examples),
             "Log-spectrogram of one example per technique (nearest A4 = 440 Hz in f0); "
             "dotted line: f0; the title gives f0 and the recorded modulation rate.")


def test_no_shortcut(dataset, descriptors, claim, spectrogram_examples):
    classes = present_techniques(dataset["technique"])
    chance = 1.0 / max(len(classes), 1)
    c = claim(
        "data.no_shortcut",
        title="Nuisance cues alone (loudness, pitch, brightness, family) predict the class "
        "near chance",
        threshold=chance + th.DATA_SHORTCUT_MARGIN,
        paper=None,
        unit="balanced accuracy (max over classifiers)",
    )
    _attach_spectrograms(c, spectrogram_examples)
    needed = {"rms", "spectral_centroid_hz", "f0_estimate_hz"}
    if not needed <= set(descriptors.columns):
        pytest.skip(f"descriptors lack {sorted(needed - set(descriptors.columns))}")
    if len(classes) < 2:
        pytest.skip(f"one class only ({list(classes)}): nothing to confuse")
    smallest = int(dataset["technique"].value_counts().min())
    if smallest < 2:
        pytest.skip(f"a class has {smallest} example: no cross-validation possible")
    features, f0_source = nuisance_features(dataset, descriptors)
    labels = dataset["technique"].to_numpy()
    n_splits = min(5, smallest)
    scores = shortcut_scores(features, labels, n_splits=n_splits)
    c.measured = max(scores.values())
    c.detail = (
        f"{n_splits}-fold stratified cross-validation on {len(dataset)} examples, "
        f"{len(classes)} classes (chance {chance:.3f}); features: {', '.join(features.columns)} "
        f"(f0 from {f0_source}). Balanced accuracy: "
        + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
        + f". Threshold = chance + {th.DATA_SHORTCUT_MARGIN} (thresholds.py)."
    )
    assert c.measured <= c.threshold, c.detail


def test_modulation_present(dataset, descriptors, claim, spectrogram_examples):
    c = claim(
        "data.modulation_present",
        title="Each example's recorded modulation rate is recovered from its signal",
        threshold=th.DATA_MODULATION_PRESENT_MIN_FRACTION,
        paper=None,
        unit=f"fraction within {th.DATA_RATE_TOLERANCE_OCT} octave, per class",
    )
    _attach_spectrograms(c, spectrogram_examples)
    if "modulation_rate_hz" not in dataset or not dataset["modulation_rate_hz"].notna().any():
        pytest.skip("the data set records no modulation rates (modulation_rate_hz is empty)")
    needed = set(MECHANISM_DESCRIPTOR.values())
    if not needed <= set(descriptors.columns):
        pytest.skip(f"descriptors lack {sorted(needed - set(descriptors.columns))}")
    fractions, errors = rate_recovery(dataset, descriptors, th.DATA_RATE_TOLERANCE_OCT)
    c.measured = fractions
    c.table(
        [
            {
                "technique": t,
                "descriptor": MECHANISM_DESCRIPTOR[t],
                "n": len(errors[t]),
                "fraction_recovered": round(fractions[t], 3),
                "median_error_oct": round(float(np.median(errors[t])), 4),
                "octave_errors": int(np.sum(np.abs(errors[t] - 1.0) < th.DATA_RATE_TOLERANCE_OCT)),
            }
            for t in fractions
        ],
        caption="Rate recovery per class (octave errors: measured rate twice or half the recorded)",
    )
    failing = {t: round(f, 3) for t, f in fractions.items() if f < c.threshold}
    c.detail = (
        f"Recovered = |log2(measured / recorded)| <= {th.DATA_RATE_TOLERANCE_OCT} octave, with "
        "pitch_rate_hz for vibrato and trill, envelope_rate_hz for tremolo, bisbigliando and "
        "flatterzunge (pmt_core.data.descriptors). "
        + (f"Below threshold: {failing}." if failing else "Every class at or above threshold.")
    )
    assert not failing, c.detail
