"""The plots of the ``figures`` verb: per-class recall, normalised confusion, confidence, UAR by length and t-SNE, saved as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from speechbrain_ext.evaluation.plots import pyplot, save_figure


def plot_per_class_recall(table: pd.DataFrame, path: Path, title: str) -> None:
    """Bar chart of the recall of each class with its 95 % bootstrap interval."""
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
    save_figure(fig, path)


def plot_confusion(norm: np.ndarray, counts: np.ndarray, labels: Sequence[str], path: Path, title: str) -> None:
    """Heatmap of the row-normalised confusion (%), each true class labelled with its count."""
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
    save_figure(fig, path)


def plot_by_length(table: pd.DataFrame, path: Path, title: str) -> None:
    """UAR and WA bars with their bootstrap intervals per utterance-length bucket."""
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
    save_figure(fig, path)


def plot_tsne(table: pd.DataFrame, labels: Sequence[str], path: Path, title: str) -> None:
    """Scatter of the t-SNE points, one colour per class."""
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
    save_figure(fig, path)
