"""compare RUN_A RUN_B: decision mismatch, Cohen's kappa and per-utterance cosine distance of two models (w2v2_info_recovery Tables II-III, Fig. 3).

RUN_A and RUN_B are recipe runs, or fold runners' results folders whose runs
pair up by their path under the folder (``fold_3/...`` with ``fold_3/...``).
Both must have predicted the same test utterances. The cosine distance is
between the two runs' fine-tuned encoders' last-layer embeddings (mean over
frames) of each test utterance; the share of utterances under
``--threshold`` and the decision match among them is Table III.

    python -m speechbrain_ext.analysis compare results/IEMOCAP/baseline/session \\
        results/IEMOCAP/asr100_ser/session --out analysis/ser_vs_asr100 --threshold 0.6
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from speechbrain_ext.analysis.runs import RecipeRun, RunError, find_runs
from speechbrain_ext.evaluation.metrics import agreement
from speechbrain_ext.evaluation.plots import pyplot
from speechbrain_ext.evaluation.reports import csv_text
from speechbrain_ext.utils.fileio import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)


def pair_runs(root_a: str | Path, root_b: str | Path, split: str = "test") -> list[tuple[str, Path, Path]]:
    """``(name, run_a, run_b)`` for each pair: a run with a run, or fold runs matched by their path under each root.

    Example
    -------
    >>> import tempfile, pathlib
    >>> roots = [pathlib.Path(tempfile.mkdtemp()) for _ in range(2)]
    >>> for root in roots:
    ...     for fold in (1, 2):
    ...         run = root / f"fold_{fold}"
    ...         run.mkdir()
    ...         _ = (run / "hyperparams.yaml").write_text("x: 1")
    ...         _ = (run / "test_predictions.csv").write_text("id")
    >>> [name for name, _, _ in pair_runs(*roots)]
    ['fold_1', 'fold_2']
    """
    runs_a, runs_b = find_runs(root_a, split), find_runs(root_b, split)
    if len(runs_a) == 1 and len(runs_b) == 1:
        return [(runs_a[0].name, runs_a[0], runs_b[0])]
    rel_a = {str(r.relative_to(root_a)): r for r in runs_a}
    rel_b = {str(r.relative_to(root_b)): r for r in runs_b}
    if set(rel_a) != set(rel_b):
        only_a, only_b = sorted(set(rel_a) - set(rel_b)), sorted(set(rel_b) - set(rel_a))
        raise RunError(
            f"{root_a} and {root_b} hold different runs: only in the first {only_a[:3]}, only in the second {only_b[:3]}"
        )
    return [(name, rel_a[name], rel_b[name]) for name in sorted(rel_a)]


def decision_agreement(pred_a, pred_b) -> dict:
    """Mismatch (% of utterances decided differently, Table II), agreement and Cohen's kappa.

    Example
    -------
    >>> decision_agreement(["ang", "sad", "sad", "neu"], ["ang", "sad", "neu", "neu"])
    {'n': 4, 'mismatch_percent': 25.0, 'agreement': 0.75, 'kappa': 0.636364}
    """
    pred_a, pred_b = np.asarray(pred_a), np.asarray(pred_b)
    labels = sorted(set(pred_a) | set(pred_b))
    scores = agreement(np.searchsorted(labels, pred_a), np.searchsorted(labels, pred_b))
    return {"n": int(len(pred_a)), "mismatch_percent": round(100 * (1 - scores["agreement"]), 4), **scores}


def cosine_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise cosine distance ``1 - x.y / (|x| |y|)`` (in [0, 2]), as ``scipy.spatial.distance.cosine`` per row.

    Example
    -------
    >>> cosine_distances(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[0.0, 1.0], [-1.0, -1.0]])).round(6).tolist()
    [1.0, 2.0]
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape:
        raise ValueError(
            f"embeddings of different shapes {x.shape} and {y.shape}: the two models must have the same hidden size"
        )
    return 1.0 - (x * y).sum(axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))


def threshold_table(distance: np.ndarray, match: np.ndarray, threshold: float) -> dict:
    """Table III: % of utterances within ``threshold`` and the decision match % among them; also beyond 1 (dissimilar).

    Example
    -------
    >>> threshold_table(np.array([0.1, 0.2, 0.7, 1.2]), np.array([True, False, True, False]), 0.6)
    {'threshold': 0.6, 'data_percent': 50.0, 'match_percent': 50.0, 'over_one_percent': 25.0, 'over_one_match_percent': 0.0}
    """
    inside, over = distance <= threshold, distance > 1.0

    def pct(mask, of=None):
        of = np.ones_like(mask) if of is None else of
        return round(100 * float(mask[of].mean()), 4) if of.any() else None

    return {
        "threshold": threshold,
        "data_percent": pct(inside),
        "match_percent": pct(match, inside),
        "over_one_percent": pct(over),
        "over_one_match_percent": pct(match, over),
    }


def plot_cosine_histogram(
    distance: np.ndarray, threshold: float, path: str | Path, title: str = "", bins: int = 10
) -> None:
    """Fig. 3: the distribution of cosine distances as a line-joined histogram (a marker per bin centre) and the threshold."""
    plt = pyplot()

    counts, edges = np.histogram(
        distance, bins=bins, range=(0.0, max(1.0, float(distance.max()) if len(distance) else 1.0))
    )
    centres = (edges[:-1] + edges[1:]) / 2
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(centres, 100 * counts / max(1, len(distance)), marker="o")
    ax.axvline(threshold, color="magenta", linestyle="--", label=f"threshold {threshold}")
    ax.set_xlabel("cosine distance (last layer)")
    ax.set_ylabel("% of utterances")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compare_runs(
    run_a: str | Path,
    run_b: str | Path,
    out: str | Path,
    threshold: float = 0.6,
    split: str = "test",
    embeddings: bool = True,
    cache: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Compare two runs (or two sets of fold runs) utterance by utterance; write ``compare.csv``, ``compare.json`` and the plot.

    Arguments
    ---------
    run_a, run_b : str or Path
        Run folders, or results folders of fold runs.
    out : str or Path
        Output folder.
    threshold : float
        Cosine distance threshold of Table III (the paper: 0.6 IEMOCAP, 0.65 MSP-IMPROV).
    split : str
        The predictions compared.
    embeddings : bool
        Also encode the test utterances with both runs' encoders (cosine distances).
    cache : str or Path, optional
        Embedding cache (default ``<out>/embeddings_cache``).
    progress : bool
        Progress bars while encoding.

    Returns
    -------
    dict
        What ``compare.json`` holds.
    """
    from speechbrain_ext.analysis.embed import EmbeddingCache

    out = Path(out)
    cache = Path(cache) if cache else out / "embeddings_cache"
    pairs = pair_runs(run_a, run_b, split)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, folder_a, folder_b in pairs:
        ra, rb = RecipeRun(folder_a), RecipeRun(folder_b)
        pa, pb = ra.predictions(split), rb.predictions(split)
        if set(pa["id"]) != set(pb["id"]):
            raise RunError(
                f"{folder_a} and {folder_b} predicted different {split} utterances ({len(pa)} and {len(pb)}); compare runs of the same fold"
            )
        merged = pa[["id", "true", "predicted"]].merge(pb[["id", "predicted"]], on="id", suffixes=("_a", "_b"))
        merged.insert(0, "run", name)
        if embeddings:
            entries = ra.entries(split)
            entries = {utt: entries[utt] for utt in merged["id"]}
            emb_a = EmbeddingCache(cache, str(folder_a)).embed(entries, progress=progress).layer(-1)
            emb_b = EmbeddingCache(cache, str(folder_b)).embed(entries, progress=progress).layer(-1)
            merged["cosine_distance"] = cosine_distances(emb_a, emb_b)
        rows.append(merged)
    frame = pd.concat(rows, ignore_index=True)
    frame["match"] = frame["predicted_a"] == frame["predicted_b"]
    summary = {
        "run_a": str(run_a),
        "run_b": str(run_b),
        "split": split,
        **decision_agreement(frame["predicted_a"], frame["predicted_b"]),
    }
    summary["per_run"] = {
        name: decision_agreement(g["predicted_a"], g["predicted_b"]) for name, g in frame.groupby("run", sort=True)
    }
    labelled = frame["true"] != ""
    for side in "ab":
        summary[f"accuracy_{side}"] = (
            round(float((frame.loc[labelled, "true"] == frame.loc[labelled, f"predicted_{side}"]).mean()), 6)
            if labelled.any()
            else None
        )
    if embeddings:
        distance = frame["cosine_distance"].to_numpy()
        summary["cosine"] = {"mean": round(float(distance.mean()), 6), "median": round(float(np.median(distance)), 6)}
        summary["cosine"].update(threshold_table(distance, frame["match"].to_numpy(), threshold))
        plot_cosine_histogram(
            distance,
            threshold,
            out / "compare_cosine.png",
            f"{Path(run_a).name} vs {Path(run_b).name}: {len(distance)} utterances",
        )
    else:
        _plot_mismatch(summary, out / "compare_mismatch.png")
    atomic_write_text(out / "compare.csv", csv_text(frame))
    atomic_write_json(out / "compare.json", summary)
    logger.info(
        "%s vs %s: %d utterances, mismatch %.2f %%, kappa %.3f%s",
        run_a,
        run_b,
        summary["n"],
        summary["mismatch_percent"],
        summary["kappa"],
        f", {summary['cosine']['data_percent']} % within cosine {threshold} (match {summary['cosine']['match_percent']} %)"
        if embeddings
        else "",
    )
    return summary


def _plot_mismatch(summary: dict, path: Path) -> None:
    plt = pyplot()

    names = list(summary["per_run"])
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(names) + 2), 3))
    ax.bar(names, [summary["per_run"][n]["mismatch_percent"] for n in names])
    ax.set_ylabel("decision mismatch %")
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's options."""
    parser.add_argument("run_a", help="a recipe run's folder, or a fold runner's results folder")
    parser.add_argument("run_b", help="the same for the other model (same corpus, same folds)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.6,
        help="cosine distance threshold of Table III (paper: 0.6 IEMOCAP, 0.65 MSP-IMPROV)",
    )
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--no-embeddings",
        dest="embeddings",
        action="store_false",
        help="predictions only (no encoding, no cosine distances)",
    )
    parser.add_argument("--cache", default=None, help="embedding cache folder (default <out>/embeddings_cache)")
    parser.add_argument("--noprogressbar", action="store_true")


def run(args: argparse.Namespace) -> None:
    """Run the verb."""
    compare_runs(
        args.run_a,
        args.run_b,
        args.out,
        args.threshold,
        args.split,
        args.embeddings,
        args.cache,
        not args.noprogressbar,
    )
