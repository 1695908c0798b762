"""Reports of an evaluated split: one JSON file is the single source of every reported number;
the Markdown table, the predictions CSV and the plots derive from the same call.

Classification (:func:`write_classification_report`) and multi-output
regression (:func:`write_regression_report`) write ``<split>_report.json``,
``<split>_report.md`` and ``<split>_predictions.csv``; rows without a label
(a masked test partition) are predicted and listed, never scored. Each report
names the metrics a fold table aggregates (``summary_metrics``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from speechbrain_ext.evaluation.metrics import (
    bootstrap_ccc,
    bootstrap_classification,
    bootstrap_spearman,
    classification_metrics,
    concordance_correlation,
    spearman_per_column,
)
from speechbrain_ext.evaluation.plots import plot_confusion_matrix, plot_regression_scatter
from speechbrain_ext.utils.fileio import atomic_write_text


def metrics_table(metrics: dict, title: str = "test") -> str:
    """Markdown table of UAR / WA / macro-F1 and per-class recall (percent), with the bootstrap interval and sub-task rows when present.

    Example
    -------
    >>> print(metrics_table({"UAR": 0.5, "WA": 0.75, "macro_F1": 0.4, "n": 4, "per_class_recall": {"a": 1.0, "b": 0.0}}))
    | set | n | UAR % | WA % | macro-F1 % | a | b |
    |---|---|---|---|---|---|---|
    | test | 4 | 50.00 | 75.00 | 40.00 | 100.0 | 0.0 |
    >>> print(metrics_table({"UAR": 0.5, "WA": 0.75, "macro_F1": 0.4, "n": 4, "per_class_recall": {"a": 1.0, "b": 0.0}, "CI95": {"UAR": [0.3, 0.7]}}))
    | set | n | UAR % | UAR 95 % CI | WA % | macro-F1 % | a | b |
    |---|---|---|---|---|---|---|---|
    | test | 4 | 50.00 | [30.0, 70.0] | 75.00 | 40.00 | 100.0 | 0.0 |
    """

    def row(name: str, m: dict) -> str:
        recalls = " | ".join("-" if v is None else f"{100 * v:.1f}" for v in m["per_class_recall"].values())
        ci = f" {_interval(m['CI95']['UAR'])} |" if with_ci else ""
        return f"| {name} | {m['n']} | {100 * m['UAR']:.2f} |{ci} {100 * m['WA']:.2f} | {100 * m['macro_F1']:.2f} | {recalls} |"

    with_ci = "CI95" in metrics
    classes = list(metrics["per_class_recall"])
    lines = [
        "| set | n | UAR % |"
        + (" UAR 95 % CI |" if with_ci else "")
        + " WA % | macro-F1 % | "
        + " | ".join(classes)
        + " |",
        "|---" * (5 + with_ci + len(classes)) + "|",
        row(title, metrics),
    ]
    for name, sub in metrics.get("factors", {}).items():  # joint labels decoded into their sub-tasks
        lines += [
            "",
            f"| {title}: {name} | n | UAR % |"
            + (" UAR 95 % CI |" if with_ci else "")
            + " WA % | macro-F1 % | "
            + " | ".join(sub["per_class_recall"])
            + " |",
        ]
        lines += ["|---" * (5 + with_ci + len(sub["per_class_recall"])) + "|", row(name, sub)]
    return "\n".join(lines)


def _interval(pair) -> str:
    return "-" if pair is None or pair[0] is None else f"[{100 * pair[0]:.1f}, {100 * pair[1]:.1f}]"


def csv_text(frame: pd.DataFrame) -> str:
    """The CSV text of every table the recipes and analyses write: no index, 6 decimals, ``\\n`` line ends on every system.

    Example
    -------
    >>> csv_text(pd.DataFrame({"id": ["u1"], "p": [1 / 3]}))
    'id,p\\nu1,0.333333\\n'
    """
    return frame.to_csv(index=False, float_format="%.6f", lineterminator="\n")


def _unscored(split: str, title: str | None, n_predicted: int, extra: dict | None, **fields) -> dict:
    return {
        "set": title or split,
        "n": 0,
        "n_predicted": n_predicted,
        "scored": False,
        "summary_metrics": [],
        **fields,
        **(extra or {}),
    }


def _scored(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str], bootstrap: int) -> dict:
    """Classification metrics of labelled rows, with bootstrap intervals when asked."""
    metrics = classification_metrics(y_true.tolist(), y_pred.tolist(), labels)
    if bootstrap:
        ci = bootstrap_classification(y_true, y_pred, len(labels), n_boot=bootstrap)
        metrics["CI95"] = {
            "UAR": list(ci["UAR"]),
            "WA": list(ci["WA"]),
            "per_class_recall": {lab: list(c) for lab, c in zip(labels, ci["per_class_recall"])},
        }
        metrics["bootstrap_resamples"] = int(bootstrap)
    return metrics


def factor_decisions(
    probs: np.ndarray, y_true: np.ndarray, labels: Sequence[str], factors: Sequence[str], separator: str = "_"
) -> dict:
    """Joint labels ``<a>_<b>`` decoded into their parts: each part's values, reference indices and summed probabilities.

    Returns
    -------
    dict
        Factor name -> ``(values, truth (n,), probabilities (n, len(values)))``;
        truth is -1 where the joint reference is.

    Example
    -------
    >>> probs = np.array([[0.1, 0.2, 0.3, 0.4]])
    >>> out = factor_decisions(probs, np.array([2]), ["no_affil", "yes_affil", "no_presta", "yes_presta"], ["complaint", "request"])
    >>> out["request"][0], out["request"][1].tolist(), out["request"][2].round(2).tolist()
    (['affil', 'presta'], [1], [[0.3, 0.7]])
    """
    parts = [str(label).split(separator, len(factors) - 1) for label in labels]
    if any(len(p) != len(factors) for p in parts):
        raise ValueError(
            f"labels {list(labels)} do not all split into {len(factors)} parts {list(factors)} at {separator!r}"
        )
    out = {}
    for k, name in enumerate(factors):
        values = sorted({p[k] for p in parts})
        member = np.array([[p[k] == v for v in values] for p in parts], dtype=float)  # (joint, values)
        truth = np.array([values.index(parts[t][k]) if t >= 0 else -1 for t in y_true], dtype=int)
        out[name] = (values, truth, np.asarray(probs, dtype=float) @ member)
    return out


def write_submission(path: str | os.PathLike, filenames: Sequence[str], columns: dict) -> None:
    """A challenge submission file: ``filename`` then the given columns, one row per file."""
    atomic_write_text(
        path, csv_text(pd.DataFrame({"filename": list(filenames), **{k: list(v) for k, v in columns.items()}}))
    )


def write_classification_report(
    folder: str | os.PathLike,
    ids: Sequence[str],
    y_true: Sequence[int],
    probs: np.ndarray,
    labels: Sequence[str],
    split: str = "test",
    title: str | None = None,
    extra: dict | None = None,
    predicted: Sequence[int] | None = None,
    bootstrap: int = 0,
    factors: Sequence[str] | None = None,
    filenames: Sequence[str] | None = None,
) -> dict:
    """Write ``<split>_report.json``, ``<split>_report.md``, ``<split>_predictions.csv`` and,
    when rows are labelled, ``<split>_confusion_matrix.csv``/``.png``; return the metrics.

    Arguments
    ---------
    folder : str or PathLike
        Output folder.
    ids : sequence of str
        Utterance ids.
    y_true : sequence of int
        Reference class indices; -1 for an unlabelled row (predicted, not scored).
    probs : array (n, n_classes)
        Posterior probabilities; the prediction is the argmax.
    labels : sequence of str
        Class names in index order.
    split : str
        File prefix (``test``, ``valid``).
    title : str, optional
        Name of the evaluated set in the report (default: ``split``).
    extra : dict, optional
        More fields stored in the JSON report (e.g. protocol, fold).
    predicted : sequence of int, optional
        The decisions, when they are not the argmax of ``probs`` (a majority vote).
    bootstrap : int
        Resamples of the percentile bootstrap 95 % intervals of UAR, WA and
        per-class recall (``CI95``; 0: none). The ComParE baselines report 1000.
    factors : sequence of str, optional
        Names of the parts of joint labels ``<a>_<b>`` (HealthCall30's
        ``complaint_request``): each part is also scored on its own, its
        probabilities summed over the joint classes that share it
        (``factors`` in the report, ``<name>_UAR`` among the summary metrics).
    filenames : sequence of str, optional
        Audio file name of each row: also write ``<split>_submission.csv``
        (``filename,prediction``, the ComParE format), and one
        ``<split>_submission_<factor>.csv`` per factor.

    Returns
    -------
    dict
        The metrics written to ``<split>_report.json`` (``n``: scored rows,
        ``n_predicted``: all rows).

    Example
    -------
    >>> import tempfile, json
    >>> folder = tempfile.mkdtemp()
    >>> m = write_classification_report(folder, ["u1", "u2", "u3"], [0, 1, -1], np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]), ["neu", "sad"])
    >>> m["UAR"], m["n"], m["n_predicted"], json.load(open(f"{folder}/test_report.json"))["WA"]
    (0.5, 2, 3, 0.5)
    >>> print(open(f"{folder}/test_predictions.csv").read(), end="")
    id,true,predicted,p_neu,p_sad
    u1,neu,neu,0.900000,0.100000
    u2,sad,neu,0.600000,0.400000
    u3,,sad,0.200000,0.800000
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probs = np.asarray(probs, dtype=float)
    y_true = np.asarray(list(y_true), dtype=int)
    y_pred = probs.argmax(axis=1) if predicted is None else np.asarray(predicted, dtype=int)
    labelled = y_true >= 0
    decoded = factor_decisions(probs, y_true, labels, factors) if factors else {}
    if labelled.any():
        metrics = _scored(y_true[labelled], y_pred[labelled], labels, bootstrap)
        summary = ["UAR", "WA"]
        if decoded:
            metrics["factors"] = {}
            for name, (values, truth, fprobs) in decoded.items():
                keep = truth >= 0
                metrics["factors"][name] = _scored(truth[keep], fprobs[keep].argmax(axis=1), values, bootstrap)
                metrics[f"{name}_UAR"] = metrics["factors"][name]["UAR"]
                summary.append(f"{name}_UAR")
        metrics.update({"set": title or split, "n_predicted": len(y_true), "summary_metrics": summary, **(extra or {})})
        table = metrics_table(metrics, title or split)
    else:
        metrics = _unscored(split, title, len(y_true), extra, labels=list(labels))
        table = f"{title or split}: {len(y_true)} rows, no labels: predictions only"
    if filenames is not None:
        write_submission(folder / f"{split}_submission.csv", filenames, {"prediction": [labels[p] for p in y_pred]})
        for name, (values, _, fprobs) in decoded.items():
            write_submission(
                folder / f"{split}_submission_{name}.csv",
                filenames,
                {"prediction": [values[p] for p in fprobs.argmax(axis=1)]},
            )
    atomic_write_text(folder / f"{split}_report.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(folder / f"{split}_report.md", table + "\n")
    frame = pd.DataFrame(
        {
            "id": list(ids),
            "true": [labels[t] if t >= 0 else "" for t in y_true],
            "predicted": [labels[p] for p in y_pred],
        }
    )
    frame = pd.concat([frame, pd.DataFrame(probs, columns=[f"p_{lab}" for lab in labels])], axis=1)
    atomic_write_text(folder / f"{split}_predictions.csv", csv_text(frame))
    if labelled.any():
        cm = np.asarray(metrics["confusion_matrix"])
        cm_frame = pd.DataFrame(cm, columns=list(labels))
        cm_frame.insert(0, "true \\ predicted", list(labels))
        atomic_write_text(folder / f"{split}_confusion_matrix.csv", csv_text(cm_frame))
        plot_confusion_matrix(
            cm, labels, folder / f"{split}_confusion_matrix.png", f"{title or split}: UAR {100 * metrics['UAR']:.1f}%"
        )
    return metrics


def write_regression_report(
    folder: str | os.PathLike,
    ids: Sequence[str],
    targets: np.ndarray,
    preds: np.ndarray,
    names: Sequence[str],
    split: str = "test",
    title: str | None = None,
    extra: dict | None = None,
    bootstrap: int = 0,
    std: np.ndarray | None = None,
    filenames: Sequence[str] | None = None,
) -> dict:
    """Write the report of a multi-output regression: per-output Spearman, CCC and MSE.

    Spearman's rho is computed per output across clips and averaged over the
    outputs (``mean_spearman``: the ComParE 2023 Emotion Share metric); an
    output with constant predictions or targets has no rho (null in
    ``spearman``) and counts as 0 in the mean. Files:
    ``<split>_report.json``, ``<split>_report.md``, ``<split>_predictions.csv``
    (``id,true_<name>...,pred_<name>...``) and, with labelled rows,
    ``<split>_scatter.png`` (predicted vs true per output).

    Arguments
    ---------
    folder : str or PathLike
        Output folder.
    ids : sequence of str
        Clip ids.
    targets : array (n, k)
        True values; an all-NaN row is unlabelled (predicted, not scored).
    preds : array (n, k)
        Predicted values.
    names : sequence of str
        Output names.
    split, title, extra
        As :func:`write_classification_report`.
    bootstrap : int
        Resamples of the percentile bootstrap 95 % intervals of each output's
        Spearman and CCC and of their means (``spearman_CI95``, ``mean_spearman_CI95``,
        ``CCC_CI95``, ``mean_CCC_CI95``; 0: none).
    std : array (n, k), optional
        Predictive standard deviations (a Bayesian head's MC spread), written
        as ``std_<name>`` columns.
    filenames : sequence of str, optional
        Audio file name of each row: also write ``<split>_submission.csv``
        (``filename,<name>...``, the ComParE format).

    Returns
    -------
    dict
        The metrics written to ``<split>_report.json``.

    Example
    -------
    >>> import tempfile
    >>> t = np.array([[0.1, 0.9], [0.5, 0.5], [0.9, 0.2], [np.nan, np.nan]])
    >>> p = np.array([[0.2, 0.7], [0.4, 0.6], [0.8, 0.1], [0.3, 0.3]])
    >>> m = write_regression_report(tempfile.mkdtemp(), ["a", "b", "c", "d"], t, p, ["Anger", "Calmness"])
    >>> m["spearman"], m["mean_spearman"], m["n"], m["n_predicted"]
    ({'Anger': 1.0, 'Calmness': 1.0}, 1.0, 3, 4)
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    targets, preds, names = np.asarray(targets, dtype=float), np.asarray(preds, dtype=float), [str(n) for n in names]
    labelled = ~np.isnan(targets).all(axis=1)
    frame = pd.concat(
        [
            pd.DataFrame({"id": list(ids)}),
            pd.DataFrame(targets, columns=[f"true_{n}" for n in names]),
            pd.DataFrame(preds, columns=[f"pred_{n}" for n in names]),
            *(
                [pd.DataFrame(np.asarray(std, dtype=float), columns=[f"std_{n}" for n in names])]
                if std is not None
                else []
            ),
        ],
        axis=1,
    )
    atomic_write_text(folder / f"{split}_predictions.csv", csv_text(frame))
    if filenames is not None:
        write_submission(folder / f"{split}_submission.csv", filenames, {n: preds[:, k] for k, n in enumerate(names)})
    if not labelled.any():
        metrics = _unscored(split, title, len(ids), extra, names=names)
        table = f"{title or split}: {len(ids)} rows, no labels: predictions only"
    else:
        t, p = targets[labelled], preds[labelled]
        spearman = spearman_per_column(t, p, names)
        rho = spearman["per_column"]
        ccc = concordance_correlation(t, p).tolist()
        mse = ((t - p) ** 2).mean(axis=0).tolist()
        r6 = lambda v: round(float(v), 6)  # noqa: E731
        metrics = {
            "set": title or split,
            "n": int(labelled.sum()),
            "n_predicted": len(ids),
            "names": names,
            "spearman": {
                n: None if np.isnan(v) else r6(v) for n, v in zip(names, rho)
            },  # null: constant column (0 in the mean)
            "CCC": {n: r6(v) for n, v in zip(names, ccc)},
            "MSE_per_output": {n: r6(v) for n, v in zip(names, mse)},
            "mean_spearman": r6(spearman["mean"]),
            "mean_CCC": r6(np.nanmean(ccc)),
            "MSE": r6(np.mean(mse)),
            "summary_metrics": ["mean_spearman", "mean_CCC", "MSE"],
        }
        if bootstrap:
            ci = bootstrap_spearman(t, p, n_boot=bootstrap)
            metrics["spearman_CI95"] = {n: list(c) for n, c in zip(names, ci["per_column"])}
            metrics["mean_spearman_CI95"] = list(ci["mean"])
            ci = bootstrap_ccc(t, p, n_boot=bootstrap)  # the same resampled clips as Spearman's
            metrics["CCC_CI95"] = {n: list(c) for n, c in zip(names, ci["per_column"])}
            metrics["mean_CCC_CI95"] = list(ci["mean"])
            metrics["bootstrap_resamples"] = int(bootstrap)
        metrics.update(extra or {})
        table = regression_table(metrics, title or split)
        plot_regression_scatter(t, p, names, metrics["spearman"], folder / f"{split}_scatter.png", title or split)
    atomic_write_text(folder / f"{split}_report.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(folder / f"{split}_report.md", table + "\n")
    return metrics


def regression_table(metrics: dict, title: str = "test") -> str:
    """Markdown table of a regression report: one row per output, then the means (with bootstrap intervals when present).

    Example
    -------
    >>> m = {"n": 3, "names": ["A"], "spearman": {"A": 0.5}, "CCC": {"A": 0.4}, "MSE_per_output": {"A": 0.01}, "mean_spearman": 0.5, "mean_CCC": 0.4, "MSE": 0.01}
    >>> print(regression_table(m))
    | test (n=3) | Spearman | CCC | MSE |
    |---|---|---|---|
    | A | 0.5000 | 0.4000 | 0.01000 |
    | mean | 0.5000 | 0.4000 | 0.01000 |
    >>> print(regression_table({**m, "spearman_CI95": {"A": [0.2, 0.7]}, "mean_spearman_CI95": [0.2, 0.7]}).splitlines()[2])
    | A | 0.5000 | [0.200, 0.700] | 0.4000 | 0.01000 |
    >>> print(regression_table({**m, "CCC_CI95": {"A": [0.1, 0.6]}, "mean_CCC_CI95": [0.1, 0.6]}).splitlines()[-1])
    | mean | 0.5000 | 0.4000 [0.100, 0.600] | 0.01000 |
    """
    ci = metrics.get("spearman_CI95")
    fmt = lambda pair: "-" if pair is None or pair[0] is None else f"[{pair[0]:.3f}, {pair[1]:.3f}]"  # noqa: E731
    middle = (lambda n: f" {fmt(ci[n])} |") if ci else (lambda n: "")
    ccc_ci = metrics.get("CCC_CI95")
    ccc = lambda value, pair: f"{value:.4f}" + (f" {fmt(pair)}" if ccc_ci else "")  # noqa: E731
    lines = [
        f"| {title} (n={metrics['n']}) | Spearman |" + (" 95 % CI |" if ci else "") + " CCC | MSE |",
        "|---" * (4 + bool(ci)) + "|",
    ]
    for n in metrics["names"]:
        rho = metrics["spearman"][n]
        lines.append(
            f"| {n} | {'undefined' if rho is None else f'{rho:.4f}'} |{middle(n)} {ccc(metrics['CCC'][n], ccc_ci and ccc_ci[n])} | {metrics['MSE_per_output'][n]:.5f} |"
        )
    mean_ci = f" {fmt(metrics.get('mean_spearman_CI95'))} |" if ci else ""
    lines.append(
        f"| mean | {metrics['mean_spearman']:.4f} |{mean_ci} {ccc(metrics['mean_CCC'], metrics.get('mean_CCC_CI95'))} | {metrics['MSE']:.5f} |"
    )
    return "\n".join(lines)


def report_table(metrics: dict, title: str = "test") -> str:
    """The Markdown table of any report (classification, regression, or unlabelled)."""
    if not metrics.get("n"):
        return f"{title}: {metrics.get('n_predicted', 0)} rows, no labels: predictions only"
    return regression_table(metrics, title) if "mean_spearman" in metrics else metrics_table(metrics, title)
