"""The plots a report writes: row-normalised confusion, confidence of correct and wrong decisions, reliability, risk-coverage,
predicted against true values; and matplotlib's pyplot on a file-only backend for every figure of the project.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> None:
    """Save a figure atomically (a temporary PNG, then a rename) and close it."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=dpi)
    os.replace(tmp, path)
    pyplot().close(fig)


def plot_confusion_matrix(cm: np.ndarray, labels: Sequence[str], path: str | os.PathLike, title: str = "") -> None:
    """Save a row-normalised confusion matrix with counts as a PNG."""
    plt = pyplot()

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
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=8,
            )
    ax.set_title(title)
    save_figure(fig, path, dpi=120)


def plot_confidence_by_correctness(
    confidence: np.ndarray,
    correct: np.ndarray,
    path: str | Path,
    title: str = "",
    bins: int = 25,
    xlabel: str = "confidence (MC-mean probability of the predicted class)",
) -> None:
    """Density histograms of the confidence of correct and of wrong decisions (compare2023, Figure 1)."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 3.2))
    edges = np.linspace(0.0, 1.0, bins + 1)
    for name, sel, colour in (("correct", correct, "tab:green"), ("wrong", ~correct, "tab:red")):
        if sel.any():
            ax.hist(
                confidence[sel],
                bins=edges,
                density=True,
                alpha=0.5,
                color=colour,
                label=f"{name} (n={int(sel.sum())}, mean {confidence[sel].mean():.2f})",
            )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    save_figure(fig, path, dpi=120)


def plot_regression_scatter(
    targets: np.ndarray, preds: np.ndarray, names: Sequence[str], spearman: dict, path: str | Path, title: str = ""
) -> None:
    """Predicted vs true values, one panel per output, with its Spearman in the panel title."""
    plt = pyplot()

    cols = min(3, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(names):
            ax.axis("off")
            continue
        ax.scatter(targets[:, k], preds[:, k], s=8, alpha=0.6)
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
        rho = spearman[names[k]]
        ax.set_title(f"{names[k]}: rho {'undefined' if rho is None else f'{rho:.3f}'}", fontsize=9)
        ax.set_xlabel("true", fontsize=8)
        ax.set_ylabel("predicted", fontsize=8)
    fig.suptitle(title)
    save_figure(fig, path, dpi=110)


def plot_reliability(bins: dict, path: str | Path, title: str = "", before: dict | None = None) -> None:
    """Reliability diagram: accuracy against mean confidence of each non-empty bin
    (:func:`~speechbrain_ext.evaluation.calibration.reliability_bins`), bars of the bins' shares, the diagonal;
    ``before``: the bins before temperature scaling, in grey."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    edges, count = np.asarray(bins["edges"]), np.asarray(bins["count"], dtype=float)
    ax.bar(
        edges[:-1],
        count / max(count.sum(), 1.0),
        width=edges[1] - edges[0],
        align="edge",
        color="tab:blue",
        alpha=0.15,
        label="share of rows (after)",
    )
    for name, data, colour in (("before", before, "tab:grey"), ("after", bins, "tab:blue")):
        if data is None:
            continue
        points = [(c, a) for c, a in zip(data["confidence"], data["accuracy"]) if c is not None]
        label = (
            f"{name} temperature: ECE {100 * data['ece']:.1f}%"
            if before is not None
            else f"ECE {100 * data['ece']:.1f}%"
        )
        ax.plot(*zip(*points), marker="o", markersize=4, color=colour, label=label)
    ax.plot([0, 1], [0, 1], color="black", linewidth=0.8, linestyle="--")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top probability), bin mean")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    save_figure(fig, path, dpi=110)


def plot_risk_coverage(curve: dict, path: str | Path, title: str = "") -> None:
    """Accuracy of the decisions kept against the share kept when abstaining by confidence (:func:`~speechbrain_ext.evaluation.calibration.risk_coverage`)."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    ax.step(curve["coverage"], curve["accuracy"], where="post", color="tab:blue")
    ax.axhline(1.0 - curve["full_risk"], color="grey", linewidth=0.8, linestyle="--", label="no abstention")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("coverage (share of decisions kept)")
    ax.set_ylabel("accuracy of the kept decisions")
    ax.set_title(f"{title} (AURC {curve['aurc']:.3f})".strip(), fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    save_figure(fig, path, dpi=110)
