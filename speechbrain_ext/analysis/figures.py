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

from speechbrain_ext.analysis.figure_plots import (
    plot_by_length,
    plot_confusion,
    plot_per_class_recall,
    plot_tsne,
)
from speechbrain_ext.analysis.pooled_metrics import (
    CONFIDENCE_BINS,
    confidence_histograms,
    normalised_confusion,
    per_class_recall_ci,
    pool_predictions,
    uar_by_length,
)
from speechbrain_ext.analysis.runs import RecipeRun, RunError, find_runs
from speechbrain_ext.analysis.tsne import tsne_table
from speechbrain_ext.evaluation.plots import plot_confidence_by_correctness
from speechbrain_ext.evaluation.reports import csv_text
from speechbrain_ext.utils.fileio import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)


def _run_confidence(run: RecipeRun, frame: pd.DataFrame, split: str) -> np.ndarray | None:
    """The MC-mean confidence of ``frame``'s rows from the run's ``<split>_uncertainty.csv`` (a Bayesian run), else None."""
    path = run.folder / f"{split}_uncertainty.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path, dtype={"id": str}, keep_default_na=False).drop_duplicates("id").set_index("id")
    if "confidence" not in table.columns or not set(frame["id"]) <= set(table.index):
        return None
    return table.loc[frame["id"], "confidence"].astype(float).to_numpy()


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
    plot_per_class_recall(
        table,
        out / "per_class_recall.png",
        f"{name}: pooled UAR {100 * result['pooled_UAR']:.1f} % [{_pct(result['pooled_UAR_CI95'])}], n={result['n']}",
    )

    counts, norm = normalised_confusion(y_true, y_pred, len(labels))
    result["confusion_counts"], result["confusion_normalised"] = counts.tolist(), norm.round(6).tolist()
    cm_frame = pd.DataFrame(norm, columns=labels)
    cm_frame.insert(0, "true \\ predicted", labels)
    atomic_write_text(out / "confusion_normalised.csv", csv_text(cm_frame))
    plot_confusion(
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
    plot_confidence_by_correctness(
        confidence,
        correct,
        out / "confidence_by_correctness.png",
        f"{name}: {'MC-mean confidence (Bayesian head, ' + split + '_uncertainty.csv)' if mc else 'max posterior probability'}",
        bins=CONFIDENCE_BINS,
        xlabel="confidence of the decision",
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
        plot_by_length(lengths, out / "uar_by_length.png", f"{name}: pooled UAR / WA by utterance length")
    except (RunError, FileNotFoundError) as err:
        logger.warning("UAR by utterance length skipped: %s", err)
        result["uar_by_length"] = {"skipped": str(err)}

    if tsne:
        table = tsne_table(folders, frame, split, Path(cache) if cache else out / "embeddings_cache", seed, progress)
        atomic_write_text(out / "tsne.csv", csv_text(table))
        plot_tsne(
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
