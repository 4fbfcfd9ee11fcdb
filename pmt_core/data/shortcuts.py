"""Shortcut checks: whether a class can be told without its modulation.

Two pure functions that a validation claim runs on a data set (and on its
modulation-ablated twins, :func:`pmt_core.data.synth.manifest.ablated_twin`):

- :func:`shortcut_guard`: cross-validated balanced accuracy of simple classifiers
  on nuisance descriptors *of what the network sees* (the clip divided by its own
  standard deviation: no loudness), each descriptor alone and all together.
  Near chance (1 / number of classes) means no nuisance shortcut; on the twins,
  which are steady notes, it should be at chance whatever the data.
- :func:`class_constant_hit_rate`: how well a map that ignores the example, one
  lambda2 per class, would "localise" each example's modulation rate. It bounds
  what a per-example localisation claim can credit to the explainer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

#: The guard's classifiers: class-balanced, as in the shortcut probe of the audit.
GUARD_CLASSIFIERS: dict[str, Callable[[], object]] = {
    "logistic_regression": lambda: make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced")
    ),
    "decision_tree_depth3": lambda: DecisionTreeClassifier(
        max_depth=3, class_weight="balanced", random_state=0
    ),
}

#: Descriptor sets of the guard -> the columns of :func:`guard_descriptors` they
#: use (``family`` stands for every ``family_*`` one-hot column); ``all`` adds
#: every set.
DESCRIPTOR_SETS: dict[str, tuple[str, ...]] = {
    "log_spectral_flatness": ("log_spectral_flatness",),
    "ltas_slope": ("ltas_slope_db_per_oct",),
    "log_centroid": ("log2_centroid",),
    "log_f0": ("log2_f0",),
    "family": ("family",),
}


def guard_descriptors(dataset: pd.DataFrame, descriptors: pd.DataFrame) -> pd.DataFrame:
    """Nuisance descriptors of each example, as the guard's classifiers read them.

    Parameters
    ----------
    dataset : pandas.DataFrame
        The examples (``family`` and ``f0_hz`` used where present).
    descriptors : pandas.DataFrame
        :func:`pmt_core.data.descriptors.describe` of each example, same row order.

    Returns
    -------
    pandas.DataFrame
        ``log_spectral_flatness``, ``ltas_slope_db_per_oct`` (both of the clip
        divided by its standard deviation), ``log2_centroid`` (log2 of the spectral
        centroid + 1 Hz), ``log2_f0`` (the recorded ``f0_hz`` where finite and
        positive, else the estimate; the median where neither exists) and one
        ``family_<name>`` column per family. No loudness: the network never sees
        it. Index 0..n-1.
    """
    n = len(dataset)
    if len(descriptors) != n:
        raise ValueError(f"{len(descriptors)} descriptor rows for {n} examples")
    desc = descriptors.reset_index(drop=True)
    estimate = desc["f0_estimate_hz"].to_numpy(dtype=float)
    f0 = np.where(estimate > 0, estimate, np.nan)
    if "f0_hz" in dataset:
        recorded = dataset["f0_hz"].to_numpy(dtype=float)
        f0 = np.where(np.isfinite(recorded) & (recorded > 0), recorded, f0)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_f0 = np.log2(f0)
    fill = np.nanmedian(log_f0) if np.isfinite(log_f0).any() else 0.0
    features = pd.DataFrame(
        {
            "log_spectral_flatness": desc["log_spectral_flatness"].to_numpy(dtype=float),
            "ltas_slope_db_per_oct": desc["ltas_slope_db_per_oct"].to_numpy(dtype=float),
            "log2_centroid": np.log2(desc["spectral_centroid_hz"].to_numpy(dtype=float) + 1.0),
            "log2_f0": np.where(np.isfinite(log_f0), log_f0, fill),
        }
    )
    if "family" in dataset:
        one_hot = pd.get_dummies(dataset["family"].astype(str), prefix="family", dtype=float)
        features = pd.concat([features, one_hot.reset_index(drop=True)], axis=1)
    return features


def _columns(features: pd.DataFrame, names: tuple[str, ...]) -> list[str]:
    out = []
    for name in names:
        if name == "family":
            out += [c for c in features.columns if c.startswith("family_")]
        elif name in features:
            out.append(name)
    return out


def shortcut_scores(
    features: pd.DataFrame | np.ndarray, labels, n_splits: int = 5, seed: int = 0
) -> dict[str, float]:
    """Cross-validated balanced accuracy of each guard classifier.

    Parameters
    ----------
    features : pandas.DataFrame or numpy.ndarray, shape (examples, features)
    labels : array-like, shape (examples,)
    n_splits : int
        Folds of the stratified cross-validation (fewer when the smallest class
        has fewer examples; at least 2).
    seed : int
        Shuffle of the folds.

    Returns
    -------
    dict of str to float
        Classifier name (:data:`GUARD_CLASSIFIERS`) -> balanced accuracy of its
        out-of-fold predictions (chance: 1 / number of classes).

    Raises
    ------
    ValueError
        With fewer than two classes, or a class with fewer than two examples.
    """
    x = np.asarray(features, dtype=float)
    y = np.asarray(labels)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"features of shape {x.shape} for {len(y)} labels")
    _, counts = np.unique(y, return_counts=True)
    if len(counts) < 2 or counts.min() < 2:
        raise ValueError(f"need >= 2 classes of >= 2 examples, got class sizes {counts.tolist()}")
    folds = StratifiedKFold(n_splits=int(min(n_splits, counts.min())), shuffle=True,
                            random_state=seed)
    scores = {}
    for name, make in GUARD_CLASSIFIERS.items():
        predicted = cross_val_predict(make(), x, y, cv=folds)
        scores[name] = float(balanced_accuracy_score(y, predicted))
    return scores


def shortcut_guard(
    dataset: pd.DataFrame,
    descriptors: pd.DataFrame,
    n_splits: int = 5,
    seed: int = 0,
    sets: Mapping[str, tuple[str, ...]] | None = None,
) -> pd.DataFrame:
    """Balanced accuracy of the guard for each descriptor set, alone and all together.

    Parameters
    ----------
    dataset : pandas.DataFrame
        The examples; ``technique`` holds the labels (a twin keeps its source's).
    descriptors : pandas.DataFrame
        :func:`pmt_core.data.descriptors.describe` of each example, same row order.
    n_splits, seed : int
        Cross-validation (:func:`shortcut_scores`).
    sets : mapping, optional
        Descriptor sets (default :data:`DESCRIPTOR_SETS`); ``all`` is added.

    Returns
    -------
    pandas.DataFrame
        One row per set (a set with no column in the data is left out), columns
        the classifiers of :data:`GUARD_CLASSIFIERS`, ``best`` (their maximum) and
        ``chance`` (1 / number of classes).
    """
    features = guard_descriptors(dataset, descriptors)
    labels = dataset["technique"].to_numpy()
    sets = dict(DESCRIPTOR_SETS if sets is None else sets)
    sets["all"] = tuple(name for names in sets.values() for name in names)
    rows = {}
    for set_name, names in sets.items():
        columns = _columns(features, names)
        if columns:
            rows[set_name] = shortcut_scores(features[columns], labels, n_splits, seed)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["best"] = table.max(axis=1)
    table["chance"] = 1.0 / len(np.unique(labels))
    return table


def class_constant_hit_rate(
    rates_hz, labels, lambda2_hz, tol_oct: float = 0.5
) -> pd.DataFrame:
    """Best hit rate per class of a map that peaks at one lambda2 for the whole class.

    For each class, every lambda2 of the grid is tried as the class's constant
    peak; a hit is an example whose rate lies within ``tol_oct`` octaves of it.
    The constant is chosen on the same examples (an optimistic bound for the
    class-blind map).

    Parameters
    ----------
    rates_hz : array-like, shape (examples,)
        Each example's modulation rate; non-finite or non-positive ones are left
        out.
    labels : array-like, shape (examples,)
    lambda2_hz : array-like
        The lambda2 values a map can peak at (duplicates allowed), e.g. the
        ``modulation_hz`` of the second-order paths of
        :func:`pmt_core.features.scattering.path_table`.
    tol_oct : float
        Half-width of the hit window (octaves).

    Returns
    -------
    pandas.DataFrame
        Index: the classes (sorted); columns ``best_lambda2_hz``, ``hit_rate`` and
        ``n`` (examples with a rate).
    """
    rates = np.asarray(rates_hz, dtype=float)
    labels = np.asarray(labels)
    grid = np.unique(np.asarray(lambda2_hz, dtype=float))
    grid = grid[np.isfinite(grid) & (grid > 0)]
    if grid.size == 0:
        raise ValueError("lambda2_hz holds no positive frequency")
    valid = np.isfinite(rates) & (rates > 0)
    rows = {}
    for label in np.unique(labels):
        r = rates[valid & (labels == label)]
        if r.size == 0:
            continue
        hits = np.abs(np.log2(grid[:, None] / r[None, :])) <= tol_oct + 1e-12
        rate = hits.mean(axis=1)
        best = int(np.argmax(rate))
        rows[label] = {"best_lambda2_hz": float(grid[best]), "hit_rate": float(rate[best]),
                       "n": int(r.size)}
    return pd.DataFrame.from_dict(rows, orient="index")
