"""cross-corpus --runs RUN... --corpora PREP...: every model scored on every prepared corpus in one shared label space.

Each RUN (a recipe run's output folder, exported on the fly, or an exported
model folder; ``NAME=PATH`` names it, else its corpus folder's name) labels
the ``--split`` utterances of every PREP (a prepared corpus: the folder
holding ``train.json``/``valid.json``/``test.json``; ``NAME=PATH`` names it).
Run classes and corpus labels meet in the shared label space ``--labels``
(default the four IEMOCAP classes ``neu,hap,sad,ang``) through
``--label-map``: a class mapped to a shared one adds its probability to it
(merged classes are summed), one mapped to ``drop`` is left out (its
probability mass ignored, its utterances not scored). A label neither shared
nor mapped is an error that names it. The decision is the shared class of
highest summed probability.

Writes ``cross_corpus.csv`` (one row per train x test pair: n, UAR, its
bootstrap CI, WA), ``cross_corpus.md`` (the UAR matrix, train runs as rows),
``cross_corpus.png`` (its heatmap) and ``predictions/<run>__<corpus>.csv``.

    python -m speechbrain_ext.analysis cross-corpus \\
        --runs IEMOCAP=results/IEMOCAP/baseline/session/fold_1/seed_1986 mine=results/Custom/baseline/fold_1/seed_1986 \\
        --corpora IEMOCAP=results/IEMOCAP/baseline/session/fold_1/seed_1986/prep mine=results/Custom/baseline/fold_1/seed_1986/prep \\
        --label-map "neutral=neu,Freude=hap,Trauer=sad,Wut=ang,Ekel=drop" --out analysis/cross_corpus
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from speechbrain_ext.analysis.runs import RunError, read_resolved_manifest
from speechbrain_ext.evaluation.calibration import softmax
from speechbrain_ext.evaluation.metrics import bootstrap_classification, unweighted_average_recall, weighted_accuracy
from speechbrain_ext.evaluation.plots import pyplot, save_figure
from speechbrain_ext.evaluation.reports import csv_text
from speechbrain_ext.utils.fileio import atomic_write_json, atomic_write_text
from speechbrain_ext.utils.hyperparams import plain_values

logger = logging.getLogger(__name__)

SHARED_LABELS = ("neu", "hap", "sad", "ang")  # IEMOCAP's four classes
DROP = "drop"
SPLIT_CHOICES = ("test", "valid", "train", "all")


def parse_pairs(text: str | None) -> dict[str, str]:
    """``"a=b, c=drop"`` -> ``{"a": "b", "c": "drop"}``; a malformed entry is a ``ValueError`` that names it.

    Example
    -------
    >>> parse_pairs("Freude=hap, Ekel=drop")
    {'Freude': 'hap', 'Ekel': 'drop'}
    >>> parse_pairs("Freude")
    Traceback (most recent call last):
    ...
    ValueError: --label-map entry 'Freude' is not label=shared_label (or label=drop)
    """
    pairs = {}
    for entry in (e.strip() for e in (text or "").split(",")):
        if not entry:
            continue
        old, sep, new = (part.strip() for part in entry.partition("="))
        if not (sep and old and new):
            raise ValueError(f"--label-map entry {entry!r} is not label=shared_label (or label={DROP})")
        pairs[old] = new
    return pairs


def shared_index(labels: Sequence[str], shared: Sequence[str], label_map: Mapping[str, str], where: str) -> np.ndarray:
    """Index into ``shared`` of each label (-1: dropped); labels neither shared nor mapped are a ``ValueError``.

    Example
    -------
    >>> shared_index(["Wut", "Ärger", "Ekel", "neu"], ["neu", "ang"], {"Wut": "ang", "Ärger": "ang", "Ekel": "drop"}, "run")
    array([ 1,  1, -1,  0])
    """
    mapped = [label_map.get(label, label) for label in labels]
    unknown = sorted({old for old, new in zip(labels, mapped) if new != DROP and new not in shared})
    if unknown:
        raise ValueError(
            f"{where}: label(s) {unknown} are not in the shared label space {list(shared)}; "
            f"map them with --label-map (label=one of those, or label={DROP})"
        )
    return np.array([-1 if new == DROP else list(shared).index(new) for new in mapped], dtype=int)


def shared_probabilities(probs: np.ndarray, index: np.ndarray, n_shared: int) -> np.ndarray:
    """``(n, n_shared)``: each shared class's summed probability over the run classes mapped to it (dropped ones left out).

    Example
    -------
    >>> shared_probabilities(np.array([[0.1, 0.2, 0.3, 0.4]]), np.array([1, 1, -1, 0]), 2).round(2).tolist()
    [[0.4, 0.3]]
    """
    out = np.zeros((len(probs), n_shared))
    for column, target in enumerate(index):
        if target >= 0:
            out[:, target] += probs[:, column]
    return out


def split_name(spec: str, default) -> tuple[str, Path]:
    """``NAME=PATH`` -> (NAME, PATH); ``PATH`` -> (``default(PATH)``, PATH)."""
    name, sep, path = spec.partition("=")
    if sep and name and not Path(spec).exists():
        return name, Path(path)
    return default(Path(spec)), Path(spec)


def corpus_utterances(prep: Path, split: str) -> pd.DataFrame:
    """``id``, ``wav``, ``label`` of a prepared corpus's split(s), ``{data_root}`` filled from its ``prepare_options.json``."""
    options = _read_json(prep / "prepare_options.json").get("options", {})
    key = _read_json(prep / "summary.json").get("label_key", "emo")
    rows = []
    for name in ("train", "valid", "test") if split == "all" else (split,):
        manifest = prep / f"{name}.json"
        if not manifest.is_file():
            raise RunError(f"{manifest}: not found (give a prepared corpus folder holding {name}.json)")
        for utt, entry in read_resolved_manifest(manifest, options.get("data_folder")).items():
            if entry.get(key) is not None:
                rows.append({"id": utt, "wav": entry["wav"], "label": str(entry[key])})
    if not rows:
        raise RunError(f"{prep}: no labelled utterance in split {split!r}")
    return pd.DataFrame(rows)


def model_folder(run: Path, export_to: Path) -> Path:
    """An exported model folder as it is, or a recipe run exported (afresh) to ``export_to``."""
    if (run / "label_encoder.txt").is_file() and (run / "model.ckpt").is_file():
        return run
    if not (run / "hyperparams.yaml").is_file():
        raise RunError(f"{run}: neither a recipe run (hyperparams.yaml) nor an exported model folder")
    from speechbrain_ext.serving.export.export import export_model

    shutil.rmtree(export_to, ignore_errors=True)  # the run's selected checkpoint may have changed since
    return export_model(run / "hyperparams.yaml", export_to)


def run_name(path: Path) -> str:
    """A run is named after its corpus folder (an exported model, which has none, after its folder)."""
    hparams = path / "hyperparams.yaml"
    data = plain_values(hparams).get("data_folder") if hparams.is_file() else None
    return Path(str(data)).name if data else path.name


def corpus_name(path: Path) -> str:
    """A prepared corpus is named after the corpus folder it was prepared from."""
    data = _read_json(path / "prepare_options.json").get("options", {}).get("data_folder")
    return Path(str(data)).name if data else path.name


def _read_json(path: Path) -> dict:
    """A preparation's JSON record (``prepare_options.json``, ``summary.json``); empty when the folder has none."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def cross_corpus(
    runs: Mapping[str, Path],
    corpora: Mapping[str, Path],
    out: str | Path,
    label_map: Mapping[str, str] | None = None,
    labels: Sequence[str] = SHARED_LABELS,
    split: str = "test",
    n_boot: int = 1000,
    batch_size: int = 8,
    device: str | None = None,
) -> pd.DataFrame:
    """Score every run on every corpus in the shared label space; write the matrix (CSV, Markdown, PNG) and return its rows.

    Arguments
    ---------
    runs : mapping
        Name -> recipe run folder or exported model folder.
    corpora : mapping
        Name -> prepared corpus folder.
    out : str or Path
        Output folder.
    label_map : mapping, optional
        Run class or corpus label -> shared label or ``drop``.
    labels : sequence of str
        The shared label space.
    split : str
        ``test``, ``valid``, ``train`` or ``all`` of each corpus.
    n_boot : int
        Bootstrap resamples of the UAR interval (95 %).
    batch_size : int
        Files per forward pass.
    device : str, optional
        ``cpu``, ``cuda`` ... (default: SpeechBrain's choice).

    Returns
    -------
    pandas.DataFrame
        One row per (train, test): ``train``, ``test``, ``n``, ``dropped``, ``UAR``, ``UAR_low``, ``UAR_high``, ``WA``.
    """
    from speechbrain_ext.serving.classify import load_model

    out, label_map, labels = Path(out), dict(label_map or {}), list(labels)
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    (out / "models").mkdir(exist_ok=True)
    utterances = {}
    for name, prep in corpora.items():  # every corpus and its labels checked before any model runs
        table = corpus_utterances(Path(prep), split)
        table["target"] = shared_index(table["label"].tolist(), labels, label_map, f"corpus {name} ({prep})")
        utterances[name] = table
    rows = []
    for run, path in runs.items():
        folder = model_folder(Path(path), out / "models" / run)
        model = load_model(str(folder), str(out / "models" / f"{run}-cache"), device)
        index = shared_index(model.labels, labels, label_map, f"run {run} ({path})")
        if (index < 0).all():
            raise ValueError(f"run {run} ({path}): every class {model.labels} is dropped by the label map")
        for corpus, table in utterances.items():
            kept = table[table["target"] >= 0].reset_index(drop=True)
            answers = model.classify_files(kept["wav"].tolist(), batch_size=batch_size, num_workers=0)
            failed = [kept["wav"][k] for k, a in enumerate(answers) if isinstance(a, Exception)]
            if failed:
                raise RunError(f"corpus {corpus}: {len(failed)} file(s) could not be read, e.g. {failed[0]}")
            log_probs = np.concatenate([a[0].detach().float().cpu().numpy() for a in answers])
            summed = shared_probabilities(softmax(log_probs), index, len(labels))
            y_true, y_pred = kept["target"].to_numpy(), summed.argmax(axis=1)
            ci = bootstrap_classification(y_true, y_pred, len(labels), n_boot=n_boot)
            rows.append(
                {
                    "train": run,
                    "test": corpus,
                    "n": len(kept),
                    "dropped": len(table) - len(kept),
                    "UAR": unweighted_average_recall(y_true, y_pred, len(labels)),
                    "UAR_low": ci["UAR"][0],
                    "UAR_high": ci["UAR"][1],
                    "WA": weighted_accuracy(y_true, y_pred),
                }
            )
            detail = pd.DataFrame({"id": kept["id"], "true": kept["label"], "true_shared": [labels[t] for t in y_true]})
            detail["predicted_shared"] = [labels[p] for p in y_pred]
            for k, label in enumerate(labels):
                detail[f"p_{label}"] = summed[:, k]
            atomic_write_text(out / "predictions" / f"{run}__{corpus}.csv", csv_text(detail))
    frame = pd.DataFrame(rows)
    write_matrix(frame, out, labels, label_map, split)
    return frame


def write_matrix(
    frame: pd.DataFrame, out: Path, labels: Sequence[str], label_map: Mapping[str, str], split: str
) -> None:
    """``cross_corpus.csv``, ``.md``, ``.json`` and ``.png`` of the score rows."""
    atomic_write_text(out / "cross_corpus.csv", csv_text(frame))
    uar = frame.pivot(index="train", columns="test", values="UAR").loc[frame["train"].unique(), frame["test"].unique()]
    cell = {
        (r.train, r.test): f"{100 * r.UAR:.1f} [{100 * r.UAR_low:.1f}, {100 * r.UAR_high:.1f}]"
        for r in frame.itertuples()
    }
    lines = [
        f"# Cross-corpus UAR % ({split} split; shared labels {', '.join(labels)}; 95 % bootstrap CI)",
        "",
        "| train \\ test | " + " | ".join(uar.columns) + " |",
        "|---|" + "---|" * len(uar.columns),
    ]
    lines += [f"| {t} | " + " | ".join(cell[(t, c)] for c in uar.columns) + " |" for t in uar.index]
    atomic_write_text(out / "cross_corpus.md", "\n".join(lines) + "\n")
    atomic_write_json(
        out / "cross_corpus.json",
        {"labels": list(labels), "label_map": dict(label_map), "split": split, "rows": frame.to_dict("records")},
    )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2.4 + 1.3 * len(uar.columns), 1.4 + 0.8 * len(uar.index)))
    image = ax.imshow(100 * uar.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    fig.colorbar(image, ax=ax, label="UAR %")
    ax.set_xticks(range(len(uar.columns)), uar.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(uar.index)), uar.index)
    ax.set_xlabel("test corpus")
    ax.set_ylabel("trained on")
    for i, train in enumerate(uar.index):
        for j, test in enumerate(uar.columns):
            value = uar.loc[train, test]
            text = cell[(train, test)].replace(" [", "\n[")
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black" if value > 0.6 else "white")
    ax.set_title(f"UAR % [95 % CI] on {', '.join(labels)}")
    save_figure(fig, out / "cross_corpus.png", dpi=100)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's options."""
    parser.add_argument("--runs", nargs="+", required=True, help="[NAME=]recipe run or exported model folder")
    parser.add_argument("--corpora", nargs="+", required=True, help="[NAME=]prepared corpus folder (holds test.json)")
    parser.add_argument(
        "--label-map", default="", help="label=shared or label=drop, comma-separated: Freude=hap,Ekel=drop"
    )
    parser.add_argument(
        "--labels", default=",".join(SHARED_LABELS), help="the shared label space (default: neu,hap,sad,ang)"
    )
    parser.add_argument("--split", choices=SPLIT_CHOICES, default="test", help="which split of each corpus is scored")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the UAR interval")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default=None, help="cpu, cuda ... (default: SpeechBrain's choice)")
    parser.add_argument("--out", required=True, help="output folder")


def run(args: argparse.Namespace) -> None:
    """Run the verb."""
    runs = dict(split_name(spec, run_name) for spec in args.runs)
    corpora = dict(split_name(spec, corpus_name) for spec in args.corpora)
    for kind, given, named in (("run", args.runs, runs), ("corpus", args.corpora, corpora)):
        if len(named) < len(given):
            raise ValueError(f"two {kind} arguments get the same name: name them NAME=PATH")
    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    frame = cross_corpus(
        runs,
        corpora,
        args.out,
        parse_pairs(args.label_map),
        labels,
        args.split,
        args.n_boot,
        args.batch_size,
        args.device,
    )
    print((Path(args.out) / "cross_corpus.md").read_text(encoding="utf-8"))
    logger.info("%d train x test pairs; cross_corpus.csv, .md, .png in %s", len(frame), args.out)
