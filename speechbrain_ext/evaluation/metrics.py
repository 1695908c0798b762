"""Metrics of the papers: UAR, WA, macro-F1, confusion matrix, Spearman, CCC,
bootstrap confidence intervals and agreement between models.

UAR (unweighted average recall, the papers' "UA") is the mean of per-class
recalls; WA (weighted accuracy) is plain accuracy. For multi-output
regression (Hume-Prosody) the ComParE scorer computes Spearman's rho per
emotion column over all clips, then averages the columns.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import rankdata

logger = logging.getLogger(__name__)


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


def mean_spearman(rho, axis: int = -1):
    """Mean of per-column Spearman rhos, an undefined (NaN) column counting as 0.

    A constant column (a saturated output, or a target that never varies)
    has no ranking, so no defined rho; it adds 0 rather than being left out,
    so a model cannot raise its score by freezing an output. Every mean of
    Spearman scores in the collection (reports, bootstraps, checkpoint
    selection, fusion tuning) goes through this function.

    Arguments
    ---------
    rho : array-like
        Per-column rhos, NaN where undefined.
    axis : int
        The column axis.

    Returns
    -------
    float or np.ndarray
        The mean over ``axis``.

    Example
    -------
    >>> float(mean_spearman([0.6, float("nan"), 0.3]))
    0.3
    """
    return np.nan_to_num(np.asarray(rho, dtype=np.float64), nan=0.0).mean(axis=axis)


def spearman_per_column(y_true, y_pred, names: Sequence[str] | None = None) -> dict:
    """Spearman's rho per output column, and their mean (the ComParE Emotion Share score).

    A column whose predictions (or targets) are all equal has no defined
    rho: ``per_column`` gives NaN for it, while ``mean`` counts it as 0
    (:func:`mean_spearman`), so a constant output lowers the score instead
    of dropping out of it; a logged warning names such columns. With fewer
    than two items nothing is defined and ``mean`` is NaN.

    Arguments
    ---------
    y_true, y_pred : array-like
        ``(n_items, n_outputs)`` (or ``(n_items,)``) targets and predictions.
    names : sequence of str, optional
        Output names, used in the warning (default: column indices).

    Returns
    -------
    dict
        ``mean`` (undefined columns count as 0) and ``per_column`` (NaN where undefined).

    Example
    -------
    >>> r = spearman_per_column([[1, 3], [2, 2], [3, 1]], [[10, 1], [20, 2], [30, 3]])
    >>> r["per_column"], r["mean"]
    ([1.0, -1.0], 0.0)
    >>> spearman_per_column([[1, 3], [2, 2], [3, 1]], [[10, 1], [20, 1], [30, 1]], names=["a", "b"])["mean"]  # b: constant
    0.5
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim == 1:
        y_true, y_pred = y_true[:, None], y_pred[:, None]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred {y_pred.shape}")
    names = [str(n) for n in names] if names is not None else [str(c) for c in range(y_true.shape[1])]
    if len(names) != y_true.shape[1]:
        raise ValueError(f"{len(names)} names {names} for {y_true.shape[1]} columns")
    for label, values in (("y_true", y_true), ("y_pred", y_pred)):
        bad = ~np.isfinite(values).all(axis=0)
        if bad.any():  # ranks of NaN are NaN: the column would pass for a constant one
            raise ValueError(
                f"{label} has NaN or infinite values in column(s) {[names[c] for c in np.flatnonzero(bad)]}"
            )
    # Ties share their mean rank, as in scipy.stats.spearmanr.
    rt, rp = rankdata(y_true, axis=0), rankdata(y_pred, axis=0)
    rt -= rt.mean(axis=0)
    rp -= rp.mean(axis=0)
    denom = np.sqrt((rt**2).sum(axis=0) * (rp**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(denom > 0, (rt * rp).sum(axis=0) / denom, np.nan)
    if len(y_true) < 2:
        return {"mean": float("nan"), "per_column": [float(r) for r in rho]}
    constant = {
        label: [names[c] for c in np.flatnonzero((values == values[0]).all(axis=0))]
        for label, values in (("output", y_pred), ("target", y_true))
    }
    if constant["output"] or constant["target"]:
        logger.warning(
            "Spearman undefined for constant %s: counted as 0 in the mean",
            " and ".join(f"{label} column(s) {cols}" for label, cols in constant.items() if cols),
        )
    return {"mean": float(mean_spearman(rho)), "per_column": [float(r) for r in rho]}


def concordance_correlation(y_true, y_pred) -> np.ndarray:
    """Lin's concordance correlation coefficient per column.

    ``CCC = 2 cov(t, p) / (var(t) + var(p) + (mean(t) - mean(p))^2)`` with population moments.

    Example
    -------
    >>> concordance_correlation([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]).tolist()
    [1.0]
    >>> concordance_correlation([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]).round(4).tolist()
    [0.5714]
    """
    t, p = _columns(y_true, y_pred)
    return _ccc(t, p, axis=0)


def _columns(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Targets and predictions as float64 ``(n_items, n_outputs)`` arrays."""
    t, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    return (t[:, None], p[:, None]) if t.ndim == 1 else (t, p)


def _ccc(t: np.ndarray, p: np.ndarray, axis: int) -> np.ndarray:
    """Lin's CCC along the items ``axis`` (population moments)."""
    mt, mp = t.mean(axis=axis, keepdims=True), p.mean(axis=axis, keepdims=True)
    cov = ((t - mt) * (p - mp)).mean(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 2 * cov / (t.var(axis=axis) + p.var(axis=axis) + np.squeeze(mt - mp, axis=axis) ** 2)


def _spearman_of_resamples(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Spearman's rho per resample and column of ``(resamples, n_items, n_outputs)`` arrays."""
    rt, rp = rankdata(t, axis=1), rankdata(p, axis=1)
    rt -= rt.mean(axis=1, keepdims=True)
    rp -= rp.mean(axis=1, keepdims=True)
    denom = np.sqrt((rt**2).sum(axis=1) * (rp**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (rt * rp).sum(axis=1) / denom, np.nan)


def _bootstrap_columns(y_true, y_pred, score, mean, n_boot: int, confidence: float, seed: int, chunk: int) -> dict:
    """Percentile intervals of ``score`` (resamples x columns) per column and of ``mean`` over the columns."""
    y_true, y_pred = _columns(y_true, y_pred)
    idx = _resample_indices(len(y_true), n_boot, seed)
    scores = np.concatenate(
        [score(y_true[idx[s : s + chunk]], y_pred[idx[s : s + chunk]]) for s in range(0, n_boot, chunk)]
    )  # (n_boot, k)
    interval = functools.partial(_percentile_interval, confidence=confidence)
    return {"per_column": [interval(scores[:, c]) for c in range(scores.shape[1])], "mean": interval(mean(scores))}


def _resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple:
    """The central ``confidence`` percentile interval of the finite values, rounded to 4 places; (None, None) if none."""
    values = values[np.isfinite(values)]
    if not len(values):
        return (None, None)
    tail = (1 - confidence) / 2 * 100
    return (round(float(np.percentile(values, tail)), 4), round(float(np.percentile(values, 100 - tail)), 4))


def bootstrap_classification(
    y_true, y_pred, n_classes: int, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict:
    """Percentile bootstrap intervals for UAR, WA and every per-class recall (segment_triplet, Fig. 4).

    All resamples are scored at once from one batched confusion count.

    Arguments
    ---------
    y_true, y_pred : sequence of int
        References and predictions.
    n_classes : int
        Number of classes.
    n_boot : int
        Resamples.
    confidence : float
        Interval mass.
    seed : int
        Resampling seed.

    Returns
    -------
    dict
        ``{"UAR": (low, high), "WA": (low, high), "per_class_recall": [(low, high), ...]}``.

    Example
    -------
    >>> ci = bootstrap_classification([0, 1] * 50, [0, 1] * 45 + [1, 0] * 5, 2, n_boot=200)
    >>> ci["UAR"][0] < 0.9 < ci["UAR"][1]
    True
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    idx = _resample_indices(len(y_true), n_boot, seed)
    cells = y_true[idx] * n_classes + y_pred[idx] + (np.arange(n_boot)[:, None] * n_classes * n_classes)
    cm = np.bincount(cells.ravel(), minlength=n_boot * n_classes * n_classes).reshape(n_boot, n_classes, n_classes)
    support = cm.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, np.diagonal(cm, axis1=1, axis2=2) / support, np.nan)
    uar = np.nanmean(recall, axis=1)
    wa = np.trace(cm, axis1=1, axis2=2) / len(y_true)
    interval = functools.partial(_percentile_interval, confidence=confidence)

    return {
        "UAR": interval(uar),
        "WA": interval(wa),
        "per_class_recall": [interval(recall[:, c]) for c in range(n_classes)],
    }


def bootstrap_spearman(
    y_true, y_pred, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0, chunk: int = 50
) -> dict:
    """Percentile bootstrap intervals of Spearman's rho per column and of their mean (ComParE Emotion Share).

    Each resample draws clips with replacement and scores every column on the
    same clips, as the official metric does; ranks are recomputed per resample
    (ties share their mean rank), ``chunk`` resamples at a time so memory stays
    ``chunk x n_items x n_outputs``. A column constant in a resample has no
    rho there: it is left out of that column's interval and counts as 0 in
    the resample's mean (:func:`mean_spearman`).

    Arguments
    ---------
    y_true, y_pred : array-like
        ``(n_items, n_outputs)`` targets and predictions.
    n_boot, confidence, seed
        As :func:`bootstrap_classification` (the same seed draws the same clips).
    chunk : int
        Resamples ranked at once.

    Returns
    -------
    dict
        ``{"per_column": [(low, high), ...], "mean": (low, high)}``.

    Example
    -------
    >>> t = np.linspace(0, 1, 60)[:, None] * [1, 1]
    >>> ci = bootstrap_spearman(t, t + np.random.default_rng(0).normal(0, 0.3, t.shape), n_boot=200)
    >>> ci["mean"][0] < ci["mean"][1] <= 1.0, len(ci["per_column"])
    (True, 2)
    """
    return _bootstrap_columns(
        y_true, y_pred, _spearman_of_resamples, lambda rho: mean_spearman(rho, axis=1), n_boot, confidence, seed, chunk
    )


def bootstrap_ccc(y_true, y_pred, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0, chunk: int = 50) -> dict:
    """Percentile bootstrap intervals of the CCC per column and of their mean (MSP-Podcast's dimensional score).

    Resamples draw items with replacement (every column on the same items,
    the same draws as :func:`bootstrap_spearman` for a seed), ``chunk`` at a
    time so memory stays ``chunk x n_items x n_outputs``.

    Arguments
    ---------
    y_true, y_pred : array-like
        ``(n_items, n_outputs)`` (or ``(n_items,)``) targets and predictions.
    n_boot, confidence, seed
        As :func:`bootstrap_classification`.
    chunk : int
        Resamples scored at once.

    Returns
    -------
    dict
        ``{"per_column": [(low, high), ...], "mean": (low, high)}``.

    Example
    -------
    >>> t = np.linspace(0, 1, 60)[:, None] * [1, 1]
    >>> p = t + np.random.default_rng(0).normal(0, 0.3, t.shape)
    >>> ci = bootstrap_ccc(t, p, n_boot=200)
    >>> bool(ci["mean"][0] < concordance_correlation(t, p).mean() < ci["mean"][1]), len(ci["per_column"])
    (True, 2)
    """
    return _bootstrap_columns(
        y_true, y_pred, lambda t, p: _ccc(t, p, axis=1), lambda c: c.mean(axis=1), n_boot, confidence, seed, chunk
    )


def bootstrap_ci(
    metric: Callable, *arrays, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of any ``metric(*arrays)`` over resampled items.

    Arguments
    ---------
    metric : callable
        Takes the resampled arrays (same item order) and returns a float.
    *arrays : array-like
        Aligned per-item arrays (e.g. targets and predictions).
    n_boot, confidence, seed
        As :func:`bootstrap_classification`.

    Returns
    -------
    tuple of float

    Example
    -------
    >>> low, high = bootstrap_ci(lambda t, p: float(np.mean(t == p)), np.array([0, 1] * 50), np.array([0] * 100), n_boot=200)
    >>> low < 0.5 < high
    True
    """
    arrays = [np.asarray(a) for a in arrays]
    idx = _resample_indices(len(arrays[0]), n_boot, seed)
    values = np.array([metric(*(a[i] for a in arrays)) for i in idx], dtype=np.float64)
    tail = (1 - confidence) / 2 * 100
    return float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))


def agreement(pred_a: Sequence[int], pred_b: Sequence[int]) -> dict:
    """Agreement between two models' predictions: fraction identical and Cohen's kappa.

    Example
    -------
    >>> agreement([0, 1, 1, 0], [0, 1, 0, 0])
    {'agreement': 0.75, 'kappa': 0.5}
    """
    a, b = np.asarray(pred_a, dtype=np.int64), np.asarray(pred_b, dtype=np.int64)
    n_classes = int(max(a.max(), b.max()) + 1)
    cm = confusion_matrix(a, b, n_classes).astype(np.float64)
    observed = np.trace(cm) / cm.sum()
    expected = (cm.sum(axis=0) * cm.sum(axis=1)).sum() / cm.sum() ** 2
    kappa = 1.0 if expected == 1 else (observed - expected) / (1 - expected)
    return {"agreement": round(float(observed), 6), "kappa": round(float(kappa), 6)}
