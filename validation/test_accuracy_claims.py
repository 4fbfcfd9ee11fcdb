"""Accuracy claims (paper Table 1; method.md sections 2 and 4).

Fixtures (validation/conftest.py): ``trained_models`` ("s1": 74 first-order paths,
"s1s2": 1,200 paths; each with ``result``, ``class_names``, ``test_true``,
``test_pred``, ``test_logits``, ``seconds``), ``profile`` and ``claim``.
Thresholds and the paper's values live in ``validation/thresholds.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.figure import Figure

from pmt_core.model.training import confusion, macro_accuracy, per_class_accuracy
from validation import thresholds as th

KIND_LABEL = {"s1": "S1", "s1s2": "S1+S2"}


def _for_profile(table: dict, profile):
    """Return the entry of a per-profile threshold table, or fail clearly."""
    try:
        return table[profile.name]
    except KeyError:
        pytest.fail(f"no accuracy threshold for profile {profile.name!r}; known: {sorted(table)}")


def _confusion_figure(matrix: np.ndarray, class_names, title: str) -> Figure:
    """Confusion matrix as counts, shaded by row-normalised rate (true class recall)."""
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(1.2 * len(class_names) + 2, 1.0 * len(class_names) + 1.5))
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=30, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted technique")
    ax.set_ylabel("true technique")
    ax.set_title(title)
    for i in ticks:
        for j in ticks:
            colour = "white" if rates[i, j] > 0.5 else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=colour)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    fig.tight_layout()
    return fig


def _confusion_rows(matrix: np.ndarray, class_names, accuracy: dict) -> list[dict]:
    rows = []
    for i, name in enumerate(class_names):
        row = {"true \\ predicted": name}
        row.update({predicted: int(matrix[i, j]) for j, predicted in enumerate(class_names)})
        row["n test"] = int(matrix[i].sum())
        row["accuracy"] = accuracy[name]
        rows.append(row)
    return rows


@pytest.mark.parametrize(
    "kind", ["s1s2", "s1"], ids=["accuracy.s1s2.per_class", "accuracy.s1.per_class"]
)
def test_per_class_accuracy(kind, trained_models, profile, claim):
    trained = trained_models[kind]
    names = tuple(trained.class_names)
    thresholds = _for_profile(th.ACCURACY_PER_CLASS_MIN, profile)[kind]
    paper = th.PAPER_TABLE1_ACCURACY[kind]
    c = claim(
        f"accuracy.{kind}.per_class",
        title=f"{KIND_LABEL[kind]} model: per-class test accuracy reaches its threshold",
        threshold={name: thresholds[name] for name in names},
        paper={name: paper[name] for name in names if name in paper},
        unit="fraction",
    )
    accuracy = per_class_accuracy(trained.test_true, trained.test_pred, names)
    matrix = confusion(trained.test_true, trained.test_pred, len(names))
    macro = macro_accuracy(trained.test_true, trained.test_pred, names)
    c.measured = accuracy
    no_test = [name for name in names if math.isnan(accuracy[name])]
    below = [name for name in names if accuracy[name] < thresholds[name]]
    result = trained.result
    c.detail = (
        f"Recall of each class on the test split ({len(trained.test_true)} files, every one "
        f"scored); macro accuracy {macro:.4f} (paper {th.PAPER_TABLE1_MACRO[kind]:.4f}). "
        f"Best validation macro accuracy {result.best_val_macro_accuracy:.4f} at epoch "
        f"{result.best_epoch} of {result.epochs_run}; training took {trained.seconds:.0f} s. "
        f"Profile {profile.name!r}; thresholds "
        "thresholds.ACCURACY_PER_CLASS_MIN (their provenance is written there)."
        + (f" Below threshold: {below}." if below else "")
        + (f" No test file for: {no_test}." if no_test else "")
    )
    c.figure(
        _confusion_figure(matrix, names, f"{KIND_LABEL[kind]}: test confusion matrix"),
        f"{KIND_LABEL[kind]} model, test split: counts; shading is the fraction of each "
        "true class (rows), so the diagonal is the per-class accuracy.",
    )
    c.table(
        _confusion_rows(matrix, names, accuracy),
        f"{KIND_LABEL[kind]} model: test confusion matrix (rows true, columns predicted)",
    )
    assert not no_test, f"classes without test files cannot be checked: {no_test}"
    assert not below, {name: (accuracy[name], thresholds[name]) for name in below}


def test_s2_gain(trained_models, profile, claim):
    margin = _for_profile(th.ACCURACY_S2_GAIN_MIN, profile)
    paper_gain = th.PAPER_TABLE1_MACRO["s1s2"] - th.PAPER_TABLE1_MACRO["s1"]
    c = claim(
        "accuracy.s2_gain",
        title="Adding second-order scattering raises macro accuracy (S1+S2 minus S1)",
        threshold=margin,
        paper=round(paper_gain, 4),
        unit="fraction",
    )
    macro = {
        kind: macro_accuracy(model.test_true, model.test_pred, model.class_names)
        for kind, model in trained_models.items()
        if kind in ("s1", "s1s2")
    }
    gain = macro["s1s2"] - macro["s1"]
    c.measured = gain
    c.detail = (
        f"Test macro accuracy (mean of per-class recalls): S1+S2 {macro['s1s2']:.4f}, "
        f"S1 {macro['s1']:.4f}; paper {th.PAPER_TABLE1_MACRO['s1s2']:.4f} vs "
        f"{th.PAPER_TABLE1_MACRO['s1']:.4f}. Margin thresholds.ACCURACY_S2_GAIN_MIN"
        f"[{profile.name!r}] (provenance in validation/thresholds.py)."
    )
    c.table(
        [
            {
                "input": KIND_LABEL[kind],
                "macro accuracy": macro[kind],
                "paper": th.PAPER_TABLE1_MACRO[kind],
            }
            for kind in ("s1", "s1s2")
        ],
        "Test macro accuracy by input",
    )
    assert gain >= margin, f"gain {gain:.4f} below the margin {margin}"


def test_all_test_files_scored(trained_models, claim):
    # The authors' test loader dropped the last partial batch: 31 of 1,151 unscored.
    c = claim(
        "accuracy.all_test_scored",
        title="Every test file is scored (the authors' code left 31 of 1,151 out)",
        threshold=0,
        paper=31,
        unit="test files not scored",
    )
    rows, unscored = [], {}
    for kind, model in trained_models.items():
        n_test = len(model.test_true)
        n_logits, n_pred = len(model.test_logits), len(model.test_pred)
        unscored[kind] = n_test - n_pred
        consistent = (
            n_logits == n_pred
            and np.asarray(model.test_logits).ndim == 2
            and np.array_equal(np.asarray(model.test_logits).argmax(axis=1), model.test_pred)
        )
        rows.append(
            {
                "input": KIND_LABEL.get(kind, kind),
                "test files": n_test,
                "predictions": n_pred,
                "logit rows": n_logits,
                "predictions = argmax(logits)": consistent,
            }
        )
    c.measured = max(unscored.values())
    c.detail = (
        "Number of test files minus number of predictions, per model (worst shown); "
        "predictions must also be the argmax of one logit row per file."
    )
    c.table(rows, "Test files and scores per model")
    assert all(n == 0 for n in unscored.values()), unscored
    assert all(row["predictions = argmax(logits)"] for row in rows), rows
