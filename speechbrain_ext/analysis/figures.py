"""figures RUN: per-class recall with bootstrap CIs, normalised confusion over folds, confidence by correctness, t-SNE of test embeddings, UAR by utterance length.

RUN is a classification recipe run, or a fold runner's results folder whose
runs' test predictions are pooled (every labelled row of every fold, so a
fold run with several seeds counts each utterance once per seed). Into
``--out`` (default ``RUN/figures``):

- ``per_class_recall.csv``/``.png``: recall of each class with its 95 %
  percentile bootstrap interval (segment_triplet, Fig. 4); the UAR and WA of
  all pooled rows, with their intervals, in ``figures.json`` (``pooled_UAR``,
  ``pooled_WA``, ``pooled_*_CI95``). ``run_folds`` (:mod:`speechbrain_ext.training.folds`)
  reports something else as UAR and WA: the mean of the per-fold values;
  with folds of unequal size or class mix the two differ;
- ``confusion_normalised.csv``/``.png``: the confusion counts summed over the
  folds, each row divided by its class's count (supcon_knn, Fig. 3);
- ``confidence_by_correctness.png``: densities of the confidence of correct
  and wrong decisions: the top posterior, or a Bayesian run's MC-mean
  confidence from ``<split>_uncertainty.csv`` (the title says which);
- ``tsne.csv``/``.png``: t-SNE of the last-layer mean-pooled embeddings of the
  run's fine-tuned encoder, each fold's encoder embedding its own test
  utterances, stacked (supcon_knn, Fig. 4; ``--no-tsne`` skips it, the only
  part that encodes audio);
- ``uar_by_length.csv``/``.png``: UAR and WA with bootstrap intervals per
  utterance-length bucket (segment_triplet's short/long analysis; durations
  from the test manifests, default edge the median duration);
- ``figures.json``: every number above.

    python -m speechbrain_ext.analysis figures results/IEMOCAP/seg/loso --length_edges 10
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from speechbrain_ext.analysis.runs import RecipeRun, RunError, find_runs
from speechbrain_ext.evaluation.metrics import (
    bootstrap_classification,
    confusion_matrix,
    per_class_recall,
    unweighted_average_recall,
    weighted_accuracy,
)
from speechbrain_ext.evaluation.reports import csv_text, pyplot
from speechbrain_ext.utils.fileio import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

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


def tsne_points(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE of the rows of ``x``: scikit-learn's Barnes-Hut ``TSNE``, PCA init, perplexity ``min(30, (n - 1) / 3)``.

    Arguments
    ---------
    x : array (n, dim)
        Points.
    seed : int
        ``random_state``.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)``; zeros for fewer than 2 points.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 0.1, (10, 8)), rng.normal(5, 0.1, (10, 8))])
    >>> y = tsne_points(x)
    >>> y.shape, bool(np.array_equal(y, tsne_points(x)))
    ((20, 2), True)
    >>> gap = np.linalg.norm(y[:10].mean(0) - y[10:].mean(0))
    >>> bool(gap > 3 * max(y[:10].std(0).max(), y[10:].std(0).max()))
    True
    """
    from sklearn.manifold import TSNE

    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 2:
        return np.zeros((n, 2))
    init = "pca" if min(x.shape) >= 2 else "random"
    return TSNE(
        n_components=2, perplexity=min(30.0, (n - 1) / 3), init=init, random_state=seed, learning_rate="auto"
    ).fit_transform(x)


def _run_confidence(run: RecipeRun, frame: pd.DataFrame, split: str) -> np.ndarray | None:
    """The MC-mean confidence of ``frame``'s rows from the run's ``<split>_uncertainty.csv`` (a Bayesian run), else None."""
    path = run.folder / f"{split}_uncertainty.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path, dtype={"id": str}, keep_default_na=False).drop_duplicates("id").set_index("id")
    if "confidence" not in table.columns or not set(frame["id"]) <= set(table.index):
        return None
    return table.loc[frame["id"], "confidence"].astype(float).to_numpy()


def _tsne_table(
    folders: Sequence[Path], frame: pd.DataFrame, split: str, cache: Path, seed: int, progress: bool
) -> pd.DataFrame:
    """Each fold run's encoder embeds its own test rows (last layer, mean over frames); the stack is mapped by t-SNE."""
    from speechbrain_ext.analysis.embed import EmbeddingCache

    blocks, parts = [], []
    for k, folder in enumerate(folders):
        rows = frame[frame["run"] == k]
        if rows.empty:
            continue
        run = RecipeRun(folder)
        entries = run.entries(split)
        missing = [utt for utt in rows["id"] if utt not in entries]
        if missing:
            raise RunError(
                f"{run.manifest(split)}: {len(missing)} predicted id(s) not in the manifest, e.g. {missing[:3]}"
            )
        unique = list(dict.fromkeys(rows["id"]))
        emb = (
            EmbeddingCache(cache, str(run.folder))
            .embed({utt: entries[utt] for utt in unique}, progress=progress)
            .layer(-1)
        )
        position = {utt: k for k, utt in enumerate(unique)}
        blocks.append(emb[[position[utt] for utt in rows["id"]]])
        parts.append(rows[["id", "true", "fold"]])
    points = tsne_points(np.concatenate(blocks), seed=seed)
    table = pd.concat(parts, ignore_index=True).rename(columns={"true": "label"})
    table.insert(1, "x", points[:, 0])
    table.insert(2, "y", points[:, 1])
    return table[["id", "x", "y", "label", "fold"]]


def _durations(folders: Sequence[Path], frame: pd.DataFrame, split: str) -> np.ndarray:
    """Seconds of every pooled row, from its run's ``split`` manifest (NaN where the manifest has none)."""
    out = np.full(len(frame), np.nan)
    for k, folder in enumerate(folders):
        rows = frame[frame["run"] == k]
        if rows.empty:
            continue
        entries = RecipeRun(folder).entries(split)
        out[rows.index.to_numpy()] = [float(entries.get(utt, {}).get("duration", np.nan)) for utt in rows["id"]]
    return out


def fold_figures(results_folder: Path, folders: Sequence[Path], split: str) -> None:
    """The fold runner's figures: ``<results folder>/figures/`` of the pooled predictions of its runs.

    Per-class recall with bootstrap intervals, the normalised confusion summed
    over the runs, confidence of correct and wrong decisions, UAR by utterance
    length. The t-SNE is left out: it would encode every test file again with
    each fold's encoder (``python -m speechbrain_ext.analysis figures <results folder>`` adds it).
    Passed to :func:`speechbrain_ext.training.folds.main` by the recipes' ``run_folds.py``.
    """
    write_figures(results_folder, tsne=False, split=split, runs=folders, progress=False)


def write_figures(
    run_folder: str | os.PathLike,
    out: str | os.PathLike | None = None,
    tsne: bool = True,
    split: str = "test",
    n_boot: int = 1000,
    seed: int = 0,
    length_edges: Sequence[float] | None = None,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
    runs: Sequence[str | os.PathLike] | None = None,
) -> dict:
    """Write the figures and their numbers of a run, or of the pooled fold runs of a results folder.

    Arguments
    ---------
    run_folder : str or PathLike
        A classification recipe run, or a fold runner's results folder.
    out : str or PathLike, optional
        Output folder (default ``<run_folder>/figures``).
    tsne : bool
        Also encode the test utterances with each run's encoder for the t-SNE.
    split : str
        The predictions used (``test``; ``valid`` when the test split has no labels).
    n_boot : int
        Bootstrap resamples.
    seed : int
        Bootstrap and t-SNE seed.
    length_edges : sequence of float, optional
        Utterance-length bucket edges in seconds (default: the median duration).
    cache : str or PathLike, optional
        Embedding cache (default ``<out>/embeddings_cache``).
    progress : bool
        Progress bars while encoding.
    runs : sequence of str or PathLike, optional
        The run folders, when they are not found under ``run_folder`` (the fold runner passes its own).

    Returns
    -------
    dict
        What ``figures.json`` holds (``{"skipped": ...}`` for a regression run: nothing is written);
        ``pooled_UAR`` and ``pooled_WA`` score all runs' rows at once, whereas
        ``run_folds`` reports the mean of the per-fold UARs and WAs.

    Example
    -------
    >>> import tempfile, json, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> manifest = {f"u{k}": {"wav": f"u{k}.wav", "duration": 1.0 + k} for k in range(6)}
    >>> _ = (run / "test.json").write_text(json.dumps(manifest))
    >>> _ = (run / "hyperparams.yaml").write_text(f"data_folder: {run}\\ntest_annotation: {run}/test.json\\n")
    >>> rows = ["u0,neu,neu,0.9,0.1", "u1,neu,sad,0.4,0.6", "u2,sad,sad,0.2,0.8", "u3,sad,sad,0.3,0.7", "u4,neu,neu,0.8,0.2", "u5,sad,neu,0.6,0.4"]
    >>> _ = (run / "test_predictions.csv").write_text("id,true,predicted,p_neu,p_sad\\n" + "\\n".join(rows) + "\\n")
    >>> result = write_figures(run, tsne=False, n_boot=50)
    >>> result["pooled_UAR"], result["confidence"]["source"], [b["n"] for b in result["uar_by_length"]]
    (0.6667, 'max posterior', [3, 3])
    >>> sorted(p.name for p in (run / "figures").iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['confidence_by_correctness.png', 'confusion_normalised.csv', 'confusion_normalised.png', 'figures.json',
     'per_class_recall.csv', 'per_class_recall.png', 'uar_by_length.csv', 'uar_by_length.png']
    """
    root = Path(run_folder)
    folders = [Path(f) for f in runs] if runs is not None else find_runs(root, split)
    frame, labels = pool_predictions(folders, split, root)
    if not labels:
        logger.info(
            "%s: figures are for classification runs; its %s predictions have no p_<label> columns (a regression run): nothing written",
            root,
            split,
        )
        return {
            "runs": [str(f) for f in folders],
            "skipped": "regression predictions (no p_<label> columns); figures are for classification runs",
        }
    if frame.empty:
        raise RunError(f"{root}: no labelled {split} predictions to score (a masked split? try --split valid)")
    out = Path(out) if out is not None else root / "figures"
    out.mkdir(parents=True, exist_ok=True)
    index = {label: k for k, label in enumerate(labels)}
    y_true, y_pred = frame["true"].map(index).to_numpy(), frame["predicted"].map(index).to_numpy()
    name = root.name if len(folders) == 1 else f"{root.name} ({len(folders)} runs)"
    result: dict = {
        "run": str(root),
        "runs": [str(f) for f in folders],
        "split": split,
        "labels": labels,
        "n_boot": n_boot,
        "seed": seed,
    }

    table, summary = per_class_recall_ci(y_true, y_pred, labels, n_boot, seed)
    # "pooled_": one score over every run's rows, unlike run_folds's UAR (the mean over folds)
    result.update({"n": summary.pop("n"), **{f"pooled_{k}": v for k, v in summary.items()}})
    result["per_class_recall"] = {
        r.label: {"recall": r.recall, "low": r.low, "high": r.high, "n": r.n} for r in table.itertuples()
    }
    atomic_write_text(out / "per_class_recall.csv", csv_text(table))
    _plot_per_class_recall(
        table,
        out / "per_class_recall.png",
        f"{name}: pooled UAR {100 * result['pooled_UAR']:.1f} % [{_pct(result['pooled_UAR_CI95'])}], n={result['n']}",
    )

    counts, norm = normalised_confusion(y_true, y_pred, len(labels))
    result["confusion_counts"], result["confusion_normalised"] = counts.tolist(), norm.round(6).tolist()
    cm_frame = pd.DataFrame(norm, columns=labels)
    cm_frame.insert(0, "true \\ predicted", labels)
    atomic_write_text(out / "confusion_normalised.csv", csv_text(cm_frame))
    _plot_confusion(
        norm,
        counts,
        labels,
        out / "confusion_normalised.png",
        f"{name}: confusion, rows normalised (%), summed over {len(folders)} run(s)",
    )

    by_run = [_run_confidence(RecipeRun(f), frame[frame["run"] == k], split) for k, f in enumerate(folders)]
    mc = all(c is not None for c in by_run)
    confidence = (
        np.concatenate(by_run) if mc else frame[[f"p_{label}" for label in labels]].to_numpy(dtype=float).max(axis=1)
    )
    correct = y_true == y_pred
    source = "MC confidence" if mc else "max posterior"
    result["confidence"] = {"source": source, **confidence_histograms(confidence, correct)}
    _plot_confidence(
        confidence,
        correct,
        out / "confidence_by_correctness.png",
        f"{name}: {'MC-mean confidence (Bayesian head, ' + split + '_uncertainty.csv)' if mc else 'max posterior probability'}",
    )

    try:
        durations = _durations(folders, frame, split)
        known = np.isfinite(durations)
        if not known.any():
            raise RunError(f"no durations in the {split} manifests")
        if not known.all():
            logger.warning(
                "%d of %d rows have no duration in their manifest; left out of the length buckets",
                int((~known).sum()),
                len(known),
            )
        lengths = uar_by_length(y_true[known], y_pred[known], durations[known], len(labels), length_edges, n_boot, seed)
        result["uar_by_length"] = _records(lengths)
        atomic_write_text(out / "uar_by_length.csv", csv_text(lengths))
        _plot_by_length(lengths, out / "uar_by_length.png", f"{name}: pooled UAR / WA by utterance length")
    except (RunError, FileNotFoundError) as err:
        logger.warning("UAR by utterance length skipped: %s", err)
        result["uar_by_length"] = {"skipped": str(err)}

    if tsne:
        table = _tsne_table(folders, frame, split, Path(cache) if cache else out / "embeddings_cache", seed, progress)
        atomic_write_text(out / "tsne.csv", csv_text(table))
        _plot_tsne(
            table, labels, out / "tsne.png", f"{name}: t-SNE of last-layer embeddings ({len(table)} {split} utterances)"
        )
        result["tsne"] = {"n": len(table), "perplexity": round(min(30.0, (len(table) - 1) / 3), 4), "layer": -1}
    result["files"] = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith("."))
    if "figures.json" not in result["files"]:
        result["files"] = sorted([*result["files"], "figures.json"])
    result = _clean(result)
    atomic_write_json(out / "figures.json", result)
    logger.info(
        "%s: pooled UAR %.4f %s, pooled WA %.4f %s over %d %s rows of %d run(s); figures in %s",
        root,
        result["pooled_UAR"],
        result["pooled_UAR_CI95"],
        result["pooled_WA"],
        result["pooled_WA_CI95"],
        result["n"],
        split,
        len(folders),
        out,
    )
    return result


def _pct(pair) -> str:
    return "-" if pair is None or pair[0] is None else f"{100 * pair[0]:.1f}, {100 * pair[1]:.1f}"


def _records(frame: pd.DataFrame) -> list[dict]:
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in frame.to_dict(orient="records")
    ]


def _clean(value):
    """JSON-ready: NaN to None, numpy scalars to Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _save(fig, path: Path) -> None:
    """Save a figure atomically (a temporary PNG, then a rename) and close it."""
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)
    pyplot().close(fig)


def _plot_per_class_recall(table: pd.DataFrame, path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.5 + 0.6 * len(table), 3.5))
    recall = 100 * table["recall"].to_numpy(dtype=float)
    low, high = 100 * table["low"].to_numpy(dtype=float), 100 * table["high"].to_numpy(dtype=float)
    errors = np.nan_to_num(np.vstack([recall - low, high - recall]), nan=0.0)
    ax.bar(range(len(table)), np.nan_to_num(recall), color="tab:blue", alpha=0.8)
    ax.errorbar(range(len(table)), np.nan_to_num(recall), yerr=errors, fmt="none", ecolor="tab:red", capsize=3)
    ax.set_xticks(
        range(len(table)),
        [f"{lab}\nn={n}" for lab, n in zip(table["label"], table["n"])],
        rotation=45,
        ha="right",
        fontsize=8,
    )
    ax.set_ylabel("recall % (95 % bootstrap CI)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def _plot_confusion(norm: np.ndarray, counts: np.ndarray, labels: Sequence[str], path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.5 + 0.75 * len(labels), 1.2 + 0.7 * len(labels)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), [f"{lab} ({n})" for lab, n in zip(labels, counts.sum(axis=1))])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (count)")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{100 * norm[i, j]:.0f}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=8,
            )
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def _plot_confidence(confidence: np.ndarray, correct: np.ndarray, path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    bins = np.linspace(0.0, 1.0, CONFIDENCE_BINS + 1)
    for name, sel, colour in (("correct", correct, "tab:green"), ("wrong", ~correct, "tab:red")):
        if sel.any():
            ax.hist(
                confidence[sel],
                bins=bins,
                density=True,
                alpha=0.5,
                color=colour,
                label=f"{name} (n={int(sel.sum())}, mean {confidence[sel].mean():.2f})",
            )
    ax.set_xlabel("confidence of the decision")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    _save(fig, path)


def _plot_by_length(table: pd.DataFrame, path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2.5 + 1.2 * len(table), 3.4))
    x = np.arange(len(table))
    for offset, metric, colour in ((-0.2, "UAR", "tab:blue"), (0.2, "WA", "tab:orange")):
        value = 100 * table[metric].to_numpy(dtype=float)
        err = np.nan_to_num(
            np.vstack(
                [
                    value - 100 * table[f"{metric}_low"].to_numpy(dtype=float),
                    100 * table[f"{metric}_high"].to_numpy(dtype=float) - value,
                ]
            )
        )
        ax.bar(x + offset, np.nan_to_num(value), width=0.4, color=colour, alpha=0.8, label=metric)
        ax.errorbar(x + offset, np.nan_to_num(value), yerr=err, fmt="none", ecolor="black", capsize=3)

    def bounds(row) -> str:
        low, high = row["min_s"], row["max_s"]
        return f"≤ {high:g} s" if pd.isna(low) else f"> {low:g} s" if pd.isna(high) else f"{low:g}–{high:g} s"

    ax.set_xticks(
        x,
        [
            f"{row['bucket']}\n{bounds(row)}, n={int(row['n'])}"
            if row["bucket"] in ("short", "long")
            else f"{row['bucket']}\nn={int(row['n'])}"
            for _, row in table.iterrows()
        ],
        fontsize=8,
    )
    ax.set_ylabel("% (95 % bootstrap CI)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    _save(fig, path)


def _plot_tsne(table: pd.DataFrame, labels: Sequence[str], path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    colours = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    for k, label in enumerate(labels):
        sel = table["label"] == label
        if sel.any():
            ax.scatter(
                table.loc[sel, "x"],
                table.loc[sel, "y"],
                s=8,
                alpha=0.7,
                color=colours(k % colours.N),
                label=f"{label} ({int(sel.sum())})",
            )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, markerscale=2, loc="best")
    _save(fig, path)


def _edges(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated seconds, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's options.

    Example
    -------
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["runs", "--no-tsne", "--length_edges", "2,10"])
    >>> args.run_folder, args.tsne, args.length_edges, args.n_boot, args.split
    ('runs', False, [2.0, 10.0], 1000, 'test')
    """
    # dest run_folder: the verb dispatcher keeps the verb's function in args.run
    parser.add_argument(
        "run_folder",
        metavar="RUN",
        help="a classification recipe run's folder, or a fold runner's results folder (its runs' predictions are pooled)",
    )
    parser.add_argument("--out", default=None, help="output folder (default <run>/figures)")
    parser.add_argument("--split", default="test", help="predictions used (valid where the test split has no labels)")
    parser.add_argument("--n_boot", type=int, default=1000, help="bootstrap resamples of the 95 %% intervals")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap and t-SNE seed")
    parser.add_argument(
        "--no-tsne", dest="tsne", action="store_false", help="skip the t-SNE (the only part that encodes audio)"
    )
    parser.add_argument(
        "--length_edges",
        type=_edges,
        default=None,
        help="comma-separated utterance-length bucket edges in seconds (default: the median duration: short/long)",
    )
    parser.add_argument("--cache", default=None, help="embedding cache folder (default <out>/embeddings_cache)")
    parser.add_argument("--noprogressbar", action="store_true")


def run(args: argparse.Namespace) -> None:
    """Run the verb."""
    write_figures(
        args.run_folder,
        out=args.out,
        tsne=args.tsne,
        split=args.split,
        n_boot=args.n_boot,
        seed=args.seed,
        length_edges=args.length_edges,
        cache=args.cache,
        progress=not args.noprogressbar,
    )
