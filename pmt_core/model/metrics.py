"""Accuracy of class predictions: per-class recall, macro accuracy, confusion.

The authors' "macro accuracy" (the mean of per-class recalls) is both the
validation criterion of early stopping (:mod:`pmt_core.model.training`) and the
headline of the accuracy claims (:mod:`pmt_core.claims.accuracy`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, recall_score


def as_labels(y) -> np.ndarray:
    """Return class labels as a one-dimensional int64 array, or raise saying why not."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    return y.astype(np.int64)


def per_class_accuracy(y_true, y_pred, class_names: Sequence[str]) -> dict[str, float]:
    """Return the accuracy (recall) of each class, in [0, 1].

    Parameters
    ----------
    y_true, y_pred : array-like of int
        True and predicted class indices into ``class_names``.
    class_names : sequence of str

    Returns
    -------
    dict
        ``{name: recall}`` in ``class_names`` order; NaN for a class with no true
        example (its accuracy is undefined, not zero).
    """
    y_true, y_pred = as_labels(y_true), as_labels(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    recalls = recall_score(
        y_true,
        y_pred,
        labels=np.arange(len(class_names)),
        average=None,
        zero_division=np.nan,
    )
    return {name: float(r) for name, r in zip(class_names, recalls, strict=True)}


def macro_accuracy(y_true, y_pred, class_names: Sequence[str]) -> float:
    """Return the mean of per-class recalls over the classes present in ``y_true``.

    This is the authors' "macro accuracy" (torchmetrics ``average='macro'``) and
    the validation criterion of early stopping. NaN when ``y_true`` is empty.
    """
    recalls = np.array(list(per_class_accuracy(y_true, y_pred, class_names).values()))
    if np.all(np.isnan(recalls)):
        return math.nan
    return float(np.nanmean(recalls))


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Return the confusion matrix (rows: true class, columns: predicted), int counts."""
    return confusion_matrix(as_labels(y_true), as_labels(y_pred), labels=np.arange(n_classes))
