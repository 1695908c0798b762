"""Test reports: one JSON file is the single source of every reported number;
the Markdown table, the predictions CSV and the confusion-matrix plot derive
from the same call."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data_prep.common import atomic_write_text
from speechbrain_ext.metrics import classification_metrics

REPORT_FILE = "test_report.json"


def metrics_table(metrics: dict, title: str = "test") -> str:
    """Markdown table of UAR / WA / macro-F1 and per-class recall (percent).

    Example
    -------
    >>> print(metrics_table({"UAR": 0.5, "WA": 0.75, "macro_F1": 0.4, "n": 4, "per_class_recall": {"a": 1.0, "b": 0.0}}))
    | set | n | UAR % | WA % | macro-F1 % | a | b |
    |---|---|---|---|---|---|---|
    | test | 4 | 50.00 | 75.00 | 40.00 | 100.0 | 0.0 |
    """
    classes = list(metrics["per_class_recall"])
    recalls = " | ".join("-" if metrics["per_class_recall"][c] is None else f"{100 * metrics['per_class_recall'][c]:.1f}" for c in classes)
    return "\n".join(
        [
            "| set | n | UAR % | WA % | macro-F1 % | " + " | ".join(classes) + " |",
            "|---" * (5 + len(classes)) + "|",
            f"| {title} | {metrics['n']} | {100 * metrics['UAR']:.2f} | {100 * metrics['WA']:.2f} | {100 * metrics['macro_F1']:.2f} | {recalls} |",
        ]
    )


def plot_confusion_matrix(cm: np.ndarray, labels: Sequence[str], path: str | os.PathLike, title: str = "") -> None:
    """Save a row-normalised confusion matrix with counts as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(labels), 1.0 + 0.7 * len(labels)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_confidence_by_correctness(confidence: np.ndarray, correct: np.ndarray, path: str | Path, title: str = "") -> None:
    """Density of the top MC-mean probability for correct and wrong predictions (compare2023, Figure 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    bins = np.linspace(0.0, 1.0, 26)
    for name, sel, colour in (("correct", correct, "tab:green"), ("wrong", ~correct, "tab:red")):
        if sel.any():
            ax.hist(confidence[sel], bins=bins, density=True, alpha=0.5, color=colour, label=f"{name} (n={int(sel.sum())}, mean {confidence[sel].mean():.2f})")
    ax.set_xlabel("confidence (MC-mean probability of the predicted class)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_classification_report(
    folder: str | os.PathLike,
    ids: Sequence[str],
    y_true: Sequence[int],
    probs: np.ndarray,
    labels: Sequence[str],
    title: str = "test",
    extra: dict | None = None,
) -> dict:
    """Write ``test_report.json``, ``test_report.md``, ``test_predictions.csv``,
    ``confusion_matrix.csv`` and ``confusion_matrix.png``; return the metrics.

    Arguments
    ---------
    folder : str or PathLike
        Output folder.
    ids : sequence of str
        Utterance ids.
    y_true : sequence of int
        Reference class indices.
    probs : array (n, n_classes)
        Posterior probabilities; the prediction is the argmax.
    labels : sequence of str
        Class names in index order.
    title : str
        Name of the evaluated set.
    extra : dict, optional
        More fields stored in the JSON report (e.g. protocol, fold).

    Returns
    -------
    dict
        The metrics written to ``test_report.json``.

    Example
    -------
    >>> import tempfile, json
    >>> folder = tempfile.mkdtemp()
    >>> m = write_classification_report(folder, ["u1", "u2"], [0, 1], np.array([[0.9, 0.1], [0.6, 0.4]]), ["neu", "sad"])
    >>> m["UAR"], json.load(open(f"{folder}/test_report.json"))["WA"]
    (0.5, 0.5)
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probs = np.asarray(probs, dtype=float)
    y_pred = probs.argmax(axis=1)
    metrics = classification_metrics(list(y_true), list(y_pred), labels)
    metrics["set"] = title
    metrics.update(extra or {})

    atomic_write_text(folder / REPORT_FILE, json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(folder / "test_report.md", metrics_table(metrics, title) + "\n")

    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["id", "true", "predicted", *[f"p_{lab}" for lab in labels]])
    for utt, t, p, row in zip(ids, y_true, y_pred, probs):
        writer.writerow([utt, labels[t], labels[p], *[f"{v:.6f}" for v in row]])
    atomic_write_text(folder / "test_predictions.csv", rows.getvalue())

    cm = np.asarray(metrics["confusion_matrix"])
    cm_rows = io.StringIO()
    cm_writer = csv.writer(cm_rows)
    cm_writer.writerow(["true \\ predicted", *labels])
    for lab, row in zip(labels, cm):
        cm_writer.writerow([lab, *row.tolist()])
    atomic_write_text(folder / "confusion_matrix.csv", cm_rows.getvalue())
    plot_confusion_matrix(cm, labels, folder / "confusion_matrix.png", f"{title}: UAR {100 * metrics['UAR']:.1f}%")
    return metrics
