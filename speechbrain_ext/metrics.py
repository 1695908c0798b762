"""Classification metrics of the papers: UAR, WA, macro-F1, confusion matrix.

UAR (unweighted average recall, the papers' "UA") is the mean of per-class
recalls; WA (weighted accuracy) is plain accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Counts with true classes on rows and predictions on columns.

    Example
    -------
    >>> confusion_matrix([0, 0, 1], [0, 1, 1], 2).tolist()
    [[1, 1], [0, 1]]
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.shape} items but y_pred has {y_pred.shape}")
    if len(y_true) and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= n_classes):
        raise ValueError(f"class indices must lie in [0, {n_classes})")
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """Recall of each class; NaN for a class absent from the references."""
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def unweighted_average_recall(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int | None = None) -> float:
    """Mean recall over the classes present in ``y_true`` (sklearn's balanced accuracy).

    Example
    -------
    >>> unweighted_average_recall([0, 0, 0, 1], [0, 0, 0, 0])
    0.5
    """
    n_classes = n_classes or int(max(np.max(y_true), np.max(y_pred)) + 1)
    return float(np.nanmean(per_class_recall(confusion_matrix(y_true, y_pred, n_classes))))


def weighted_accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Fraction of correct predictions (the papers' WA).

    Example
    -------
    >>> weighted_accuracy([0, 0, 0, 1], [0, 0, 0, 0])
    0.75
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean())


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int | None = None) -> float:
    """Unweighted mean of per-class F1 over classes seen in references or predictions.

    Example
    -------
    >>> round(macro_f1([0, 0, 1, 1], [0, 1, 1, 1]), 4)
    0.7333
    """
    n_classes = n_classes or int(max(np.max(y_true), np.max(y_pred)) + 1)
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(cm).astype(float)
    denom = cm.sum(axis=0) + cm.sum(axis=1)
    present = denom > 0
    return float(np.mean(2 * tp[present] / denom[present]))


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict:
    """UAR, WA, macro-F1, per-class recall and the confusion matrix, JSON-ready.

    Example
    -------
    >>> m = classification_metrics([0, 1, 1], [0, 1, 0], ["neu", "sad"])
    >>> m["UAR"], m["WA"], m["per_class_recall"]
    (0.75, 0.6667, {'neu': 1.0, 'sad': 0.5})
    """
    n = len(labels)
    cm = confusion_matrix(y_true, y_pred, n)
    recalls = per_class_recall(cm)
    return {
        "UAR": round(float(np.nanmean(recalls)), 4),
        "WA": round(weighted_accuracy(y_true, y_pred), 4),
        "macro_F1": round(macro_f1(y_true, y_pred, n), 4),
        "n": int(len(y_true)),
        "per_class_recall": {lab: (None if np.isnan(r) else round(float(r), 4)) for lab, r in zip(labels, recalls)},
        "labels": list(labels),
        "confusion_matrix": cm.tolist(),
    }
