"""t-SNE of the ``figures`` verb: each fold run's encoder embeds its own test utterances, the stack mapped to 2-D."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from speechbrain_ext.analysis.runs import RecipeRun, RunError


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


def tsne_table(
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
