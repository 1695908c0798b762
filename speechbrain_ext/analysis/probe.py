"""probe: a linear SVM per layer of SSL embeddings (and on openSMILE/BoAW baselines), C by 5-fold CV on training speakers, scored on each fold's test speakers (w2v2_info_recovery Table I).

The folds are a corpus protocol's: ``--folds`` names a fold runner's results
folder (or one run, or prepared folders holding ``train.json`` and
``test.json``). For each fold, each model and each layer: standardise, then
a linear-kernel SVM (libsvm's ``SVC``, the paper's "SVM with a linear
kernel") with C picked by ``GridSearchCV`` (balanced accuracy, i.e. UAR)
over 5 folds of the training split grouped by speaker; the test split is
seen once, for the score. ``--model`` may repeat; a fold runner's results
folder as a model probes each fold's fine-tuned encoder on its own fold.
The grid's fits run in parallel on the cores this process may use (``--jobs``).

    python -m speechbrain_ext.analysis probe --folds results/IEMOCAP/baseline/session --train_splits train,valid \\
        --model facebook/wav2vec2-base --model facebook/wav2vec2-base-100h \\
        --baselines compare_functionals boaw_compare_lld --out analysis/probe_iemocap
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from speechbrain_ext.analysis.features import BASELINES, baseline_matrices
from speechbrain_ext.analysis.runs import RecipeRun, RunError, find_runs, read_resolved_manifest
from speechbrain_ext.analysis.svm_probe import C_GRID, probe_fold
from speechbrain_ext.evaluation.plots import pyplot
from speechbrain_ext.evaluation.reports import csv_text
from speechbrain_ext.utils.fileio import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

# Manifest fields that tie rows to one recording (IEMOCAP and MSP-IMPROV: the dyadic session; IEMOCAP: the dialog).
SHARED_RECORDING_KEYS = ("session", "dialog")


@dataclass
class Fold:
    """One fold of a protocol: its name, the training and test utterances with their entries."""

    name: str
    train: dict
    test: dict
    run: Path | None = None  # the fold's recipe run, when the folds come from runs

    @property
    def entries(self) -> dict:
        return {**self.train, **self.test}


def check_shared_recordings(train: Mapping[str, dict], test: Mapping[str, dict], where: str = "training split") -> None:
    """Refuse training rows that share a session, or a dialog, with a test row (where the manifests carry these fields).

    The speaker check of :func:`~speechbrain_ext.analysis.svm_probe.probe_fold` cannot see this: on IEMOCAP
    ``loso`` the validation speaker is the test speaker's partner in the same
    session and dialogs (the same scripts), so an SVM trained on ``valid``
    would have heard the test's conversations.

    Arguments
    ---------
    train, test : mapping
        Utterance id -> manifest entry.
    where : str
        The training manifest, for the message.

    Raises
    ------
    RunError
        Naming the shared session (or dialog), a training row and a test row.

    Example
    -------
    >>> test = {"Ses01F_impro01_M000": {"session": 1, "dialog": "Ses01F_impro01"}}
    >>> check_shared_recordings({"Ses02F_impro01_F000": {"session": 2, "dialog": "Ses02F_impro01"}}, test)
    >>> check_shared_recordings({"Ses01F_impro01_F000": {"session": 1, "dialog": "Ses01F_impro01"}}, test, "valid.json")
    Traceback (most recent call last):
    ...
    speechbrain_ext.analysis.runs.RunError: valid.json: training row Ses01F_impro01_F000 shares session 1 with test row Ses01F_impro01_M000 (1 training row(s) share a session with the test rows); the probe must not train on the test's sessions: choose other --train_splits (e.g. train)
    """
    for key in SHARED_RECORDING_KEYS:
        test_row = {}
        for utt, entry in test.items():
            if key in entry:
                test_row.setdefault(str(entry[key]), utt)
        shared = [
            (utt, str(entry[key])) for utt, entry in train.items() if key in entry and str(entry[key]) in test_row
        ]
        if shared:
            utt, value = shared[0]
            raise RunError(
                f"{where}: training row {utt} shares {key} {value} with test row {test_row[value]} ({len(shared)} training row(s) share a {key} "
                f"with the test rows); the probe must not train on the test's {key}s: choose other --train_splits (e.g. train)"
            )


def read_training_rows(paths: Sequence[str | Path], test: Mapping[str, dict], data_folder: str | None = None) -> dict:
    """The rows of the training manifests, each manifest checked first against the test rows (:func:`check_shared_recordings`)."""
    rows = {}
    for path in paths:
        manifest = read_resolved_manifest(path, data_folder)
        check_shared_recordings(manifest, test, str(path))
        rows.update(manifest)
    return rows


def load_folds(
    source: str | Path, data_folder: str | None = None, train_splits: Sequence[str] = ("train",), split: str = "test"
) -> list[Fold]:
    """The folds of a results folder (one per run), of one run, or of prepared folders (``train.json``, ``valid.json``, ``test.json``).

    ``train_splits``: the manifests the probe trains on. The paper trains on
    every session but the test one: on IEMOCAP ``session`` folds that is
    ``train`` and ``valid``, on ``loso`` folds ``train`` alone (there the
    validation speaker shares the test speaker's session, and a manifest
    sharing a session or dialog with the test rows is refused:
    :func:`check_shared_recordings`).
    """
    source = Path(source)
    if (source / f"{split}.json").is_file():
        manifests = {name: source / f"{name}.json" for name in (*train_splits, split)}
        missing = [str(p) for p in manifests.values() if not p.is_file()]
        if missing:
            raise RunError(f"{source}: missing {missing}")
        test = read_resolved_manifest(manifests[split], data_folder)
        return [
            Fold(source.name, read_training_rows([manifests[part] for part in train_splits], test, data_folder), test)
        ]
    folds = []
    for folder in find_runs(source, split):
        run = RecipeRun(folder)
        root = data_folder or run.values.get("data_folder")
        test = read_resolved_manifest(run.manifest(split), root)
        name = str(folder.relative_to(source)) if folder != source else folder.name
        folds.append(
            Fold(name, read_training_rows([run.manifest(part) for part in train_splits], test, root), test, folder)
        )
    return folds


def model_for_fold(model: str, fold: Fold, folds_root: Path | None) -> str:
    """The model a fold is probed with: the model itself, or the fold's own run when ``model`` is a results folder of fold runs."""
    path = Path(model)
    if not path.is_dir() or (path / "hyperparams.yaml").is_file() or (path / "config.json").is_file():
        return model
    runs = {str(r.relative_to(path)): r for r in find_runs(path)}
    if fold.run is not None and folds_root is not None and str(fold.run.relative_to(folds_root)) in runs:
        return str(runs[str(fold.run.relative_to(folds_root))])
    if len(runs) == 1:
        return str(next(iter(runs.values())))
    raise RunError(
        f"{model}: holds {len(runs)} runs and none is at fold {fold.name}'s path; give one run, or results folders with the same fold layout"
    )


def _fold_arrays(fold: Fold, label_key: str, labels: list[str]):
    ids = list(fold.entries)
    y = np.array([labels.index(str(fold.entries[i][label_key])) for i in ids])
    speakers = np.array([str(fold.entries[i].get("speaker", i)) for i in ids])
    train_idx = np.arange(len(fold.train))
    test_idx = np.arange(len(fold.train), len(ids))
    return ids, y, speakers, train_idx, test_idx


def baseline_features(
    fold: Fold,
    names: Sequence[str],
    cache_folder: str | Path,
    codebook_size: int = 500,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Table I's handcrafted rows for one fold, rows in the fold's order (training files, then test files).

    ``compare_functionals``: openSMILE ComParE 2016 functionals (6373);
    ``boaw_compare_lld``: bag-of-audio-words over its 65 LLDs and 65 deltas,
    standardisation and codebooks fitted on the fold's training files only.
    Per-file features are cached under ``cache_folder``.
    """
    return baseline_matrices(
        [entry["wav"] for entry in fold.train.values()],
        [entry["wav"] for entry in fold.entries.values()],
        names,
        cache_folder,
        codebook_size,
        seed,
        progress=progress,
    )


def run_probe(
    folds_source: str | Path,
    models: Sequence[str],
    out: str | Path,
    baselines: Sequence[str] = (),
    layers: Sequence[int] | None = None,
    data_folder: str | None = None,
    train_splits: Sequence[str] = ("train",),
    label_key: str = "emo",
    grid: Sequence[float] = C_GRID,
    n_splits: int = 5,
    seed: int = 0,
    cache: str | Path | None = None,
    progress: bool = True,
    codebook_size: int = 500,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Probe every model's layers (and the feature baselines) over the folds; write ``probe_folds.csv``, ``probe.csv``, ``probe.json``, ``probe_layers.png``.

    ``n_jobs``: grid-search fits run at once (default: the cores this process
    may use). With ``progress``, a bar per fold counts its probed feature sets.

    Returns
    -------
    pandas.DataFrame
        One row per feature set, layer and fold.
    """
    from speechbrain_ext.analysis.embed import EmbeddingCache

    out = Path(out)
    cache = Path(cache) if cache else out / "embeddings_cache"
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose among {list(BASELINES)}")
    if not models and not baselines:
        raise ValueError("nothing to probe: give --model and/or --baselines")
    folds = load_folds(folds_source, data_folder, train_splits)
    folds_root = Path(folds_source)
    labels = sorted({str(e[label_key]) for fold in folds for e in fold.entries.values()})
    rows = []
    for fold in folds:
        ids, y, speakers, train_idx, test_idx = _fold_arrays(fold, label_key, labels)
        features = {}
        for model in models:
            emb = EmbeddingCache(cache, model_for_fold(model, fold, folds_root)).embed(fold.entries, progress=progress)
            chosen = range(emb.n_states) if layers is None else [range(emb.n_states)[layer] for layer in layers]
            for layer in chosen:
                features[(model, layer)] = emb.layer(layer)
        for name, x in baseline_features(fold, baselines, cache / "opensmile", codebook_size, seed, progress).items():
            features[(name, None)] = x
        bar = tqdm(features.items(), desc=f"probe fold {fold.name}", unit="feature set", disable=not progress)
        for (name, layer), x in bar:
            where = f"{name}{'' if layer is None else f' layer {layer}'}"
            bar.set_postfix_str(where)
            start = time.perf_counter()
            result = probe_fold(x, y, speakers, train_idx, test_idx, grid, n_splits, seed, n_jobs)
            rows.append({"feature": name, "layer": layer, "fold": fold.name, **result})
            logger.info(
                "probe %s fold %s: UAR %.3f (C=%g), fitted in %.1f s",
                where,
                fold.name,
                result["UAR"],
                result["C"],
                time.perf_counter() - start,
            )
    frame = pd.DataFrame(rows)
    frame["layer"] = frame["layer"].astype("Int64")
    summary = (
        frame.groupby(["feature", "layer"], dropna=False, sort=False)
        .agg(
            UAR=("UAR", "mean"),
            UAR_std=("UAR", "std"),
            WA=("WA", "mean"),
            WA_std=("WA", "std"),
            folds=("fold", "count"),
        )
        .reset_index()
    )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "probe_folds.csv", csv_text(frame))
    atomic_write_text(out / "probe.csv", csv_text(summary))
    atomic_write_json(
        out / "probe.json",
        {
            "folds": [f.name for f in folds],
            "labels": labels,
            "chance_UAR": 1 / len(labels),
            "grid_C": list(grid),
            "cv_folds": n_splits,
            "train_splits": list(train_splits),
            "results": summary.astype(object).where(summary.notna(), None).to_dict(orient="records"),
        },
    )
    plot_layers(summary, 1 / len(labels), out / "probe_layers.png")
    return frame


def plot_layers(summary: pd.DataFrame, chance: float, path: str | Path) -> None:
    """UAR per layer, one curve per model (± std over folds); baselines as horizontal lines; chance dotted."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, group in summary.groupby("feature", sort=False):
        if group["layer"].isna().all():
            ax.axhline(
                100 * group["UAR"].iloc[0], linestyle="--", linewidth=1, label=name, color=f"C{len(ax.lines) % 10}"
            )
            continue
        layer = group["layer"].astype(int).to_numpy()
        uar, std = 100 * group["UAR"].to_numpy(), 100 * group["UAR_std"].fillna(0).to_numpy()
        ax.errorbar(layer, uar, yerr=std, marker="o", capsize=2, label=Path(name).name or name)
    ax.axhline(100 * chance, linestyle=":", color="grey", label="chance")
    ax.set_xlabel("layer (0: CNN projection)")
    ax.set_ylabel("test UAR %")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's options."""
    parser.add_argument(
        "--folds",
        required=True,
        help="fold runner's results folder, one run, or a prepared folder (train.json, valid.json, test.json)",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        help="hub id, HF folder, run folder or results folder of fold runs (repeatable)",
    )
    parser.add_argument(
        "--baselines",
        nargs="*",
        default=[],
        choices=BASELINES,
        help="openSMILE ComParE 2016 functionals, bag-of-audio-words over its LLDs",
    )
    parser.add_argument(
        "--layers",
        type=int,
        nargs="*",
        default=None,
        help="hidden states to probe (default all; 0 is the CNN projection, -1 the last)",
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--data_folder", default=None, help="corpus folder, for prepared manifests with {data_root}")
    parser.add_argument(
        "--train_splits",
        default="train",
        help="manifests the SVM trains on (comma-separated); one sharing a session or dialog with the test split is refused",
    )
    parser.add_argument("--label_key", default="emo")
    parser.add_argument("--C", type=float, nargs="*", default=list(C_GRID), help="grid of C values")
    parser.add_argument("--cv_folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default=None, help="embedding cache (default <out>/embeddings_cache)")
    parser.add_argument(
        "--codebook_size", type=int, default=500, help="bag-of-audio-words codebook per half (LLDs, deltas)"
    )
    parser.add_argument(
        "--jobs", type=int, default=None, help="grid-search fits run at once (default: the cores this process may use)"
    )
    parser.add_argument("--noprogressbar", action="store_true")


def run(args: argparse.Namespace) -> None:
    """Run the verb."""
    run_probe(
        args.folds,
        args.model,
        args.out,
        args.baselines,
        args.layers,
        args.data_folder,
        [s for s in args.train_splits.split(",") if s],
        args.label_key,
        args.C,
        args.cv_folds,
        args.seed,
        args.cache,
        not args.noprogressbar,
        args.codebook_size,
        n_jobs=args.jobs,
    )
