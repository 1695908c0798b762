"""The numbers of the ``figures`` verb: pooled predictions, per-class recall and UAR with bootstrap intervals, confusion, confidence and length buckets."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from speechbrain_ext.analysis.runs import RecipeRun, RunError
from speechbrain_ext.evaluation.metrics import (
    bootstrap_classification,
    confusion_matrix,
    per_class_recall,
    unweighted_average_recall,
    weighted_accuracy,
)

CONFIDENCE_BINS = 25


def pool_predictions(
    folders: Sequence[str | os.PathLike], split: str = "test", root: str | os.PathLike | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """The labelled rows of every run's ``<split>_predictions.csv``, stacked, with a ``fold`` column, and the classes.

    Arguments
    ---------
    folders : sequence of str or PathLike
        Run folders.
    split : str
        Predictions file prefix.
    root : str or PathLike, optional
        The folder the runs were found under: ``fold`` is each run's path below it (its name when it is the run).

    Returns
    -------
    tuple
        ``(frame, labels)``: ``id, true, predicted, p_<label>..., fold, run`` (``run``:
        the index of the row's folder in ``folders``) and the
        class names of the ``p_`` columns (empty for regression predictions,
        whose frame is then empty).

    Example
    -------
    >>> import tempfile, pathlib
    >>> from speechbrain_ext.analysis.runs import find_runs
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for fold, rows in (("fold_1", "a,neu,neu,0.7,0.3\\nb,,sad,0.4,0.6\\n"), ("fold_2", "c,sad,neu,0.6,0.4\\n")):
    ...     (root / fold).mkdir()
    ...     _ = (root / fold / "hyperparams.yaml").write_text("x: 1\\n")
    ...     _ = (root / fold / "test_predictions.csv").write_text("id,true,predicted,p_neu,p_sad\\n" + rows)
    >>> frame, labels = pool_predictions(find_runs(root), root=root)
    >>> labels, frame["id"].tolist(), frame["fold"].tolist()
    (['neu', 'sad'], ['a', 'c'], ['fold_1', 'fold_2'])
    """
    frames, labels = [], None
    names = _fold_names([Path(f) for f in folders], root)
    for k, folder in enumerate(folders):
        run = RecipeRun(folder)
        frame = run.predictions(split)
        run_labels = [c[2:] for c in frame.columns if c.startswith("p_")]
        if not run_labels:
            return pd.DataFrame(), []
        if labels is None:
            labels = run_labels
        elif run_labels != labels:
            raise RunError(
                f"{run.folder}: classes {run_labels} differ from the other runs' {labels}; give runs of one task"
            )
        unknown = sorted(set(frame["true"]) - set(labels) - {""})
        if unknown:
            raise RunError(
                f"{run.folder}/{split}_predictions.csv: references {unknown[:3]} are not among its classes {labels}"
            )
        frame = frame[frame["true"] != ""].copy()
        frame["fold"], frame["run"] = names[k], k
        frames.append(frame)
    if not frames:
        raise RunError("no runs given")
    return pd.concat(frames, ignore_index=True), list(labels)


def _fold_names(folders: Sequence[Path], root: str | os.PathLike | None) -> list[str]:
    """Each run's path below ``root`` (or below the runs' common folder), its name when it is the only one."""
    resolved = [f.resolve() for f in folders]
    base = Path(root).resolve() if root is not None else None
    if base is None or not all(f.is_relative_to(base) and f != base for f in resolved):
        base = Path(os.path.commonpath(resolved)) if len(resolved) > 1 else None
    names = [str(f.relative_to(base)) if base is not None and f != base else f.name for f in resolved]
    return names if len(set(names)) == len(names) else [str(f) for f in resolved]


def per_class_recall_ci(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str], n_boot: int = 1000, seed: int = 0
) -> tuple[pd.DataFrame, dict]:
    """Per-class recall, UAR and WA with 95 % percentile bootstrap intervals (segment_triplet, Fig. 4).

    Arguments
    ---------
    y_true, y_pred : sequence of int
        References and decisions (class indices).
    labels : sequence of str
        Class names in index order.
    n_boot : int
        Resamples (:func:`~speechbrain_ext.evaluation.metrics.bootstrap_classification`).
    seed : int
        Resampling seed.

    Returns
    -------
    tuple
        ``(table, summary)``: ``label, recall, low, high, n`` per class (NaN for
        a class with no reference), and ``UAR``, ``UAR_CI95``, ``WA``, ``WA_CI95``, ``n``.

    Example
    -------
    >>> table, summary = per_class_recall_ci([0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 0, 2], ["a", "b", "c"], n_boot=200)
    >>> table["recall"].round(4).tolist(), table["n"].tolist(), summary["UAR"], summary["WA"]
    ([0.5, 0.6667, 1.0], [2, 3, 1], 0.7222, 0.6667)
    >>> bool((table["low"] <= table["recall"]).all() and (table["recall"] <= table["high"]).all())
    True
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    cm = confusion_matrix(y_true, y_pred, len(labels))
    recall = per_class_recall(cm)
    ci = bootstrap_classification(y_true, y_pred, len(labels), n_boot=n_boot, seed=seed)
    table = pd.DataFrame(
        {
            "label": list(labels),
            "recall": recall,
            "low": [np.nan if low is None else low for low, _ in ci["per_class_recall"]],
            "high": [np.nan if high is None else high for _, high in ci["per_class_recall"]],
            "n": cm.sum(axis=1).astype(int),
        }
    )
    summary = {
        "n": int(len(y_true)),
        "UAR": round(float(np.nanmean(recall)), 4),
        "UAR_CI95": list(ci["UAR"]),
        "WA": round(weighted_accuracy(y_true, y_pred), 4),
        "WA_CI95": list(ci["WA"]),
    }
    return table, summary


def normalised_confusion(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Confusion counts (true rows, predicted columns) and the same divided by each row's sum (0 for a class never seen).

    Example
    -------
    >>> counts, norm = normalised_confusion([0, 0, 0, 1], [0, 0, 1, 1], 3)
    >>> counts.tolist(), norm.round(4).tolist()
    ([[2, 1, 0], [0, 1, 0], [0, 0, 0]], [[0.6667, 0.3333, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    """
    counts = confusion_matrix(y_true, y_pred, n_classes)
    rows = counts.sum(axis=1, keepdims=True)
    return counts, np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)


def confidence_histograms(confidence: Sequence[float], correct: Sequence[bool], bins: int = CONFIDENCE_BINS) -> dict:
    """Density histograms (equal-width bins over [0, 1]) of the confidence of correct and of wrong decisions.

    Example
    -------
    >>> h = confidence_histograms([0.9, 0.8, 0.3, 0.95], [True, True, False, True], bins=2)
    >>> h["bin_edges"], h["correct"]["n"], h["correct"]["density"], h["wrong"]["mean"]
    ([0.0, 0.5, 1.0], 3, [0.0, 2.0], 0.3)
    """
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    out: dict = {"bin_edges": [round(float(e), 6) for e in edges]}
    for name, sel in (("correct", correct), ("wrong", ~correct)):
        values = confidence[sel]
        density = np.histogram(values, bins=edges, density=True)[0] if len(values) else np.zeros(bins)
        out[name] = {
            "n": int(len(values)),
            "mean": round(float(values.mean()), 6) if len(values) else None,
            "counts": np.histogram(values, bins=edges)[0].astype(int).tolist(),
            "density": [round(float(d), 6) for d in density],
        }
    return out


def length_buckets(durations: Sequence[float], edges: Sequence[float] | None = None) -> tuple[np.ndarray, list[dict]]:
    """Bucket of each utterance by duration: ``(-inf, e1], (e1, e2], ..., (ek, inf)``.

    Arguments
    ---------
    durations : sequence of float
        Seconds.
    edges : sequence of float, optional
        Bucket edges in seconds (default: the median duration, giving
        ``short`` <= median < ``long``; one edge always names its buckets so).

    Returns
    -------
    tuple
        ``(index per utterance, buckets)``; each bucket ``{"bucket", "min_s", "max_s"}``
        (``min_s`` exclusive, ``max_s`` inclusive, None where unbounded).

    Example
    -------
    >>> index, buckets = length_buckets([1.0, 2.0, 3.0, 9.0])
    >>> index.tolist(), [b["bucket"] for b in buckets], buckets[0]["max_s"]
    ([0, 0, 1, 1], ['short', 'long'], 2.5)
    >>> length_buckets([1.0, 5.0, 12.0], [2, 10])[1][1]
    {'bucket': '2–10 s', 'min_s': 2.0, 'max_s': 10.0}
    """
    durations = np.asarray(durations, dtype=float)
    if edges is None or len(edges) == 0:
        if not len(durations):
            raise ValueError("no durations to take the median of")
        edges = [float(np.median(durations))]
    edges = sorted({float(e) for e in edges})
    index = np.searchsorted(np.asarray(edges), durations, side="left")  # d <= e1 -> 0
    bounds = [None, *edges, None]
    buckets = []
    for k in range(len(edges) + 1):
        low, high = bounds[k], bounds[k + 1]
        if len(edges) == 1:
            name = "short" if k == 0 else "long"
        elif low is None:
            name = f"≤ {high:g} s"
        elif high is None:
            name = f"> {low:g} s"
        else:
            name = f"{low:g}–{high:g} s"
        buckets.append({"bucket": name, "min_s": low, "max_s": high})
    return index, buckets


def uar_by_length(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    durations: Sequence[float],
    n_classes: int,
    edges: Sequence[float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """UAR and WA, with 95 % bootstrap intervals, of each utterance-length bucket (segment_triplet: below/over 10 s).

    UAR is over the classes present in the bucket's references (sklearn's balanced accuracy).

    Arguments
    ---------
    y_true, y_pred : sequence of int
        References and decisions.
    durations : sequence of float
        Seconds of each utterance.
    n_classes : int
        Number of classes.
    edges : sequence of float, optional
        Bucket edges (:func:`length_buckets`; default the median).
    n_boot, seed
        Bootstrap resamples and seed (the same seed in every bucket).

    Returns
    -------
    pandas.DataFrame
        ``bucket, min_s, max_s, n, UAR, UAR_low, UAR_high, WA, WA_low, WA_high`` (NaN for an empty bucket).

    Example
    -------
    >>> table = uar_by_length([0, 1, 0, 1, 0, 1], [0, 1, 1, 0, 1, 0], [1, 1, 1, 5, 5, 5], 2, edges=[2], n_boot=100)
    >>> table[["bucket", "n", "UAR", "WA"]].round(4).values.tolist()
    [['short', 3, 0.75, 0.6667], ['long', 3, 0.0, 0.0]]
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    index, buckets = length_buckets(durations, edges)
    rows = []
    for k, bucket in enumerate(buckets):
        sel = index == k
        row = {**bucket, "n": int(sel.sum())}
        if sel.any():
            ci = bootstrap_classification(y_true[sel], y_pred[sel], n_classes, n_boot=n_boot, seed=seed)
            row.update(
                UAR=unweighted_average_recall(y_true[sel], y_pred[sel], n_classes),
                UAR_low=ci["UAR"][0],
                UAR_high=ci["UAR"][1],
                WA=weighted_accuracy(y_true[sel], y_pred[sel]),
                WA_low=ci["WA"][0],
                WA_high=ci["WA"][1],
            )
        rows.append(row)
    columns = ["bucket", "min_s", "max_s", "n", "UAR", "UAR_low", "UAR_high", "WA", "WA_low", "WA_high"]
    return pd.DataFrame(rows).reindex(columns=columns).astype({c: float for c in columns[4:]})
