"""The train / validation / test split: one policy, one place.

:func:`assign_split` is what every run uses: a data set that brings its own
complete split (the authors' CSV, a manifest with a ``subset`` column) keeps it;
any other is split here with the run's seed, by the authors' recipe
(:func:`split_dataset`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from pmt_core.infra.atomic import atomic_path
from pmt_core.infra.checks import CheckError

SUBSETS = ("training", "validation", "test")


def has_split(frame: pd.DataFrame) -> bool:
    """Whether every row of ``frame`` already names its subset."""
    return "subset" in frame and bool(frame["subset"].isin(SUBSETS).all())


def check_split(frame: pd.DataFrame) -> None:
    """Refuse a split a run cannot use: an empty subset, a class missing from training or test.

    Raises
    ------
    CheckError
        One line naming every problem, so a manifest's own split fails before any
        work rather than as dozens of claim errors after training.
    """
    problems = [f"subset {name!r} is empty" for name in SUBSETS
                if not (frame["subset"] == name).any()]
    for technique, rows in frame.groupby("technique", sort=True)["subset"]:
        for name in ("training", "test"):
            if not (rows == name).any():
                problems.append(f"class {technique!r} has no {name} example")
    if problems:
        raise CheckError("the data set's split cannot be used: " + "; ".join(problems))


def assign_split(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Return ``frame`` with its split: the one it brings, or the authors' recipe.

    A complete ``subset`` column (the authors' CSV, a manifest that names its
    split) is kept as it is. Otherwise :func:`split_dataset` splits with ``seed``:
    recordings per class and instrument, as the authors' code does; synthetic
    data per class only, since there every instrument is drawn alike in every
    subset, and grouping by instrument would send the small ci classes' groups of
    1-5 mostly to test (the int() rounding of the authors' recipe).

    Parameters
    ----------
    frame : pandas.DataFrame
        A data set from :mod:`pmt_core.data.datasets` or :mod:`pmt_core.data.synth`.
    seed : int
        The run's seed.

    Raises
    ------
    CheckError
        If the data set's own split leaves a subset empty or a class out of
        training or test (:func:`check_split`).
    """
    if has_split(frame):
        check_split(frame)
        return frame
    group_by = None if frame.attrs.get("source") == "synthetic" else "instrument"
    out = split_dataset(frame, seed=seed, group_by=group_by)
    out.attrs = dict(frame.attrs)
    return out


def split_dataset(
    df: pd.DataFrame,
    seed: int = 0,
    ratios: tuple[float, float, float] = (0.6, 0.2, 0.2),
    group_by: str | None = "instrument",
) -> pd.DataFrame:
    """Assign ``subset`` with the authors' recipe.

    Shuffle all rows with ``seed``; then, per class and per instrument, the first
    ``int(ratios[0] n)`` rows go to training, the next ``int(ratios[1] n)`` to
    validation and the rest to test. Tiny groups therefore go to test first
    (n = 1: test; n = 2: training + test), as in the authors' code. Afterwards, a
    class with at least 3 examples that lacks a subset gets one example moved into
    it from that class's most populated subset (the last shuffled example of the
    largest instrument group there), so every such class appears in all three.

    Parameters
    ----------
    df : pandas.DataFrame
        Needs ``technique``; the ``group_by`` column is optional (without it, one
        group per class).
    seed : int
        Shuffle seed.
    ratios : tuple of float
        Training and validation fractions; test takes the rest (third value
        documented only).
    group_by : str or None
        Column whose groups are split separately within each class: the authors
        use ``"instrument"``; None splits each class as one group.

    Returns
    -------
    pandas.DataFrame
        A copy in the original row order, with ``subset`` added or overwritten.
    """
    out = df.copy() if df.index.is_unique else df.reset_index(drop=True)
    order = np.random.default_rng(seed).permutation(len(out))
    shuffled = out.iloc[order]
    keys = ["technique", group_by] if group_by is not None and group_by in out else ["technique"]
    subset = pd.Series("", index=out.index, dtype=object)
    rank = shuffled.groupby(keys, sort=False).cumcount()
    size = shuffled.groupby(keys, sort=False)["technique"].transform("size")
    n_train = (ratios[0] * size).astype(int)
    n_val = (ratios[1] * size).astype(int)
    subset[shuffled.index] = np.where(
        rank < n_train, "training", np.where(rank < n_train + n_val, "validation", "test")
    )
    position = pd.Series(np.arange(len(out)), index=shuffled.index)  # shuffle rank
    for _, members in out.groupby("technique", sort=False).groups.items():
        if len(members) < len(SUBSETS):
            continue
        for wanted in SUBSETS:
            counts = subset[members].value_counts()
            if counts.get(wanted, 0) > 0:
                continue
            donor_subset = counts.idxmax()
            donors = out.loc[members][subset[members] == donor_subset]
            group_sizes = donors.groupby(keys[1:] or ["technique"])["technique"].transform("size")
            biggest = donors[group_sizes == group_sizes.max()].index
            subset[position[biggest].idxmax()] = wanted
    out["subset"] = subset.astype(str)
    return out


def write_split_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the data set with its split as CSV, atomically; return the path.

    Paths are written as stored (absolute), so :func:`load_dataset` reads the file
    back as a manifest wherever it lies.
    """
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)
