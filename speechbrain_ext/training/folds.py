"""Cross-validation runner behind every recipe's ``run_folds.py``.

    python recipes/IEMOCAP/run_folds.py recipes/IEMOCAP/hparams/seg.yaml --data_folder=/data/IEMOCAP_full_release [--folds 1,3] [--seeds 1986,1987] [--valid_gender F]

Runs the recipe's ``train.py`` once per fold (per validation direction where
the protocol has two, IEMOCAP ``loso``: each held-out session's F speaker
tested with the M speaker validating, and the reverse) and per seed, one
after another. Each run's folder is the YAML's own ``output_folder`` with
that run's overrides, so a run made by hand with ``train.py`` is found and
skipped (``--results_folder`` puts the runs below another folder instead). A
run that finished is skipped; one that was interrupted is started again
with the same command, so SpeechBrain resumes it from its last checkpoint.

The table aggregates the metrics each run's report names
(``summary_metrics``: UAR and WA for classification, mean Spearman, CCC and
MSE for regression; the kNN columns when ``knn_summary.json`` exists; the
test coverage and mean size of the conformal prediction sets when the
calibration stage ran, :func:`conformal_metrics`); when
the test split had no labels (a masked challenge partition) it aggregates
the devel (``valid_report.json``) numbers and says so. ``results.csv`` and
``results.md`` hold every run, the mean and the standard deviation (ddof 1).
Classification runs also get ``figures/`` from their pooled predictions when
the caller passes ``figures`` (the recipes' ``run_folds.py`` pass
:func:`speechbrain_ext.analysis.figures.fold_figures`: this layer never
imports the analyses above it).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd
import speechbrain as sb

from speechbrain_ext.evaluation.reports import csv_text
from speechbrain_ext.utils.fileio import atomic_write_text, read_done_marker, write_done_marker
from speechbrain_ext.utils.hyperparams import plain_values

DONE_FILE = "run_complete.json"
FoldFigures = Callable[[Path, Sequence[Path], str], None]  # (results folder, run folders, split) -> figures written
PERCENT = ("UAR", "WA", "coverage")  # classification metrics print in percent (and their kNN variants)
CONFORMAL = ("coverage", "set_size")  # of the calibration stage's prediction sets


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _override(passthrough: Sequence[str], key: str) -> str | None:
    for arg in passthrough:
        if arg.startswith(f"--{key}="):
            return arg.split("=", 1)[1]
    return None


def resolved_values(hparams_file: str | Path, args: Sequence[str]) -> dict:
    """The YAML's plain values under a command line's overrides (nothing built)."""
    _, _, overrides = sb.parse_arguments([str(hparams_file), *args])
    return plain_values(hparams_file, overrides)


def run_metrics(folder: str | Path) -> tuple[str, dict]:
    """The split a run is tabulated on (``test``, or ``valid`` when test had no labels) and its metrics."""
    folder = Path(folder)
    report = json.loads((folder / "test_report.json").read_text())
    split = "test"
    if not report.get("summary_metrics"):
        split, report = "valid", json.loads((folder / "valid_report.json").read_text())
    values = {m: report[m] for m in report.get("summary_metrics", [])}
    knn = folder / "knn_summary.json"
    if knn.is_file():
        values.update({f"{m}_knn": v for m, v in json.loads(knn.read_text())["test"]["with_knn"].items()})
    if split == "test":  # conformal sets (calibration stage) scored on test; on valid they were fitted
        values.update(conformal_metrics(report))
        if knn.is_file() and (folder / "knn" / "test_report.json").is_file():
            with_knn = conformal_metrics(json.loads((folder / "knn" / "test_report.json").read_text()))
            values.update({f"{m}_knn": v for m, v in with_knn.items()})
    return split, {"n": report["n"], **values}


def conformal_metrics(report: dict) -> dict:
    """``coverage`` and ``set_size`` (mean) of a test report's conformal section; empty without one.

    Example
    -------
    >>> conformal_metrics({"conformal": {"coverage": 0.91, "mean_set_size": 2.4}})
    {'coverage': 0.91, 'set_size': 2.4}
    >>> conformal_metrics({"UAR": 0.5})
    {}
    """
    conformal = report.get("conformal") or {}
    if conformal.get("coverage") is None:
        return {}
    return {"coverage": conformal["coverage"], "set_size": conformal["mean_set_size"]}


def collect_results(runs: Sequence[dict]) -> tuple[pd.DataFrame, str]:
    """One row per run (``fold``, ``valid``, ``seed``, ``n`` and the metrics), and the split they come from."""
    rows, splits = [], set()
    for run in runs:
        split, values = run_metrics(run["folder"])
        splits.add(split)
        rows.append({"fold": run["fold"], "valid": run.get("valid") or "", "seed": run["seed"], **values})
    frame = pd.DataFrame(rows)
    partial = [c for c in frame.columns if c.removesuffix("_knn") in CONFORMAL and frame[c].isna().any()]
    frame = frame.drop(columns=partial)  # runs made before the calibration stage existed: no conformal columns
    columns = [c for c in frame.columns if c not in ("fold", "valid", "seed", "n")]
    incomplete = frame[columns].isna().any(axis=1)
    if incomplete.any():
        bad = frame[incomplete].iloc[0]
        raise ValueError(
            f"run fold {bad['fold']} seed {bad['seed']} reports other metrics than the others ({columns}); were they trained by different methods?"
        )
    if len(splits) > 1:
        raise ValueError("some runs were scored on test and others on valid (a masked test split in some folds only)")
    return frame, splits.pop() if splits else "test"


def summary_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (ddof 1; 0 for one run) of every metric column, plus per-direction means."""
    metrics = [c for c in frame.columns if c not in ("fold", "valid", "seed", "n")]
    std = frame[metrics].std(ddof=1) if len(frame) > 1 else frame[metrics].iloc[0] * 0.0
    rows = [{"fold": "mean", "n": frame["n"].sum(), **frame[metrics].mean()}, {"fold": "std", **std}]
    directions = [d for d in frame["valid"].unique() if d]
    if len(directions) > 1:
        for direction in directions:
            part = frame[frame["valid"] == direction]
            rows.append({"fold": "mean", "valid": direction, "n": part["n"].sum(), **part[metrics].mean()})
    return pd.DataFrame(rows)


def _fmt(metric: str, value) -> str:
    if pd.isna(value):
        return ""
    return f"{100 * value:.2f}" if metric.removesuffix("_knn") in PERCENT else f"{value:.4f}"


def results_markdown(frame: pd.DataFrame, title: str) -> str:
    """Markdown table of the runs, then mean ± std (and per-direction means).

    Example
    -------
    >>> runs = pd.DataFrame([{"fold": 1, "valid": "", "seed": 1, "n": 10, "UAR": 0.5}, {"fold": 2, "valid": "", "seed": 1, "n": 10, "UAR": 0.7}])
    >>> print(results_markdown(runs, "seg"))
    ### seg
    <BLANKLINE>
    | fold | valid | seed | n | UAR % |
    |---|---|---|---|---|
    | 1 |  | 1 | 10 | 50.00 |
    | 2 |  | 1 | 10 | 70.00 |
    | mean ± std | | | 20 | 60.00 ± 14.14 |
    """
    metrics = [c for c in frame.columns if c not in ("fold", "valid", "seed", "n")]
    heads = [f"{m.replace('_knn', ' +kNN')}{' %' if m.removesuffix('_knn') in PERCENT else ''}" for m in metrics]
    lines = [
        f"### {title}",
        "",
        "| fold | valid | seed | n | " + " | ".join(heads) + " |",
        "|---" * (4 + len(metrics)) + "|",
    ]
    for _, r in frame.iterrows():
        lines.append(
            f"| {r['fold']} | {r['valid']} | {r['seed']} | {r['n']} | "
            + " | ".join(_fmt(m, r[m]) for m in metrics)
            + " |"
        )
    summary = summary_rows(frame)
    mean, std = summary.iloc[0], summary.iloc[1]
    lines.append(
        f"| mean ± std | | | {int(mean['n'])} | "
        + " | ".join(f"{_fmt(m, mean[m])} ± {_fmt(m, std[m])}" for m in metrics)
        + " |"
    )
    for _, r in summary.iloc[2:].iterrows():
        lines.append(f"| mean | {r['valid']} | | {int(r['n'])} | " + " | ".join(_fmt(m, r[m]) for m in metrics) + " |")
    return "\n".join(lines)


def write_results(folder: Path, frame: pd.DataFrame, title: str) -> str:
    """Write ``results.csv`` (runs, then mean and std rows) and ``results.md``; return the Markdown."""
    table = pd.concat([frame, summary_rows(frame)], ignore_index=True)
    atomic_write_text(folder / "results.csv", csv_text(table))
    markdown = results_markdown(frame, title)
    atomic_write_text(folder / "results.md", markdown + "\n")
    return markdown


def plan_runs(
    hparams_file: str | Path,
    folds: Sequence[int | None],
    directions: Sequence[str | None],
    seeds: Sequence[int],
    passthrough: Sequence[str],
    results_folder: Path | None,
) -> list[dict]:
    """Every run's overrides and folder: the YAML's ``output_folder`` for those overrides, or one below ``results_folder``."""
    runs = []
    for fold in folds:
        for direction in directions:
            for seed in seeds:
                args = (
                    [f"--seed={seed}"]
                    + ([f"--fold={fold}"] if fold is not None else [])
                    + ([f"--valid_gender={direction}"] if direction else [])
                )
                if results_folder is not None:
                    parts = (
                        ([f"fold_{fold}"] if fold is not None else [])
                        + ([f"valid_{direction}"] if direction else [])
                        + [f"seed_{seed}"]
                    )
                    folder = results_folder.joinpath(*parts)
                    args.append(f"--output_folder={folder}")
                else:
                    folder = Path(str(resolved_values(hparams_file, [*passthrough, *args])["output_folder"]))
                runs.append(
                    {
                        "fold": fold if fold is not None else 1,
                        "valid": direction,
                        "seed": seed,
                        "folder": folder,
                        "args": args,
                    }
                )
    return runs


def run_folds(
    train_script: str | Path,
    hparams_file: str | Path,
    folds: Sequence[int | None],
    seeds: Sequence[int],
    results_folder: str | Path,
    passthrough: Sequence[str] = (),
    directions: Sequence[str | None] = (None,),
    runs_below_results: bool = False,
    figures: FoldFigures | None = None,
) -> str:
    """Run (or skip when finished) every fold x direction x seed, then write and return the results table.

    Arguments
    ---------
    train_script : str or Path
        The recipe's ``train.py``.
    hparams_file : str or Path
        The method's YAML.
    folds : sequence of int or None
        What to run (``[None]`` for a corpus with one fixed split).
    seeds : sequence of int
        Seeds of each fold.
    results_folder : str or Path
        Where ``results.csv``/``results.md`` go.
    passthrough : sequence of str
        More ``--key=value`` overrides for ``train.py`` (``--data_folder`` among them).
    directions : sequence of str or None
        ``valid_gender`` values to run (IEMOCAP ``loso``: ``F`` and ``M``).
    runs_below_results : bool
        Put the runs below ``results_folder`` instead of the YAML's ``output_folder``.
    figures : callable, optional
        ``figures(results_folder, run_folders, split)`` writes the pooled figures of classification runs;
        its failure is logged and never fails the runs.

    Returns
    -------
    str
        The Markdown table.
    """
    results_folder = Path(results_folder)
    runs = plan_runs(
        hparams_file, folds, directions, seeds, passthrough, results_folder if runs_below_results else None
    )
    for k, run in enumerate(runs, 1):
        label = f"fold {run['fold']}{', valid ' + run['valid'] if run['valid'] else ''}, seed {run['seed']} ({k}/{len(runs)})"
        folder = run["folder"]
        if read_done_marker(folder / DONE_FILE) is not None:
            print(f"== {label}: finished earlier, skipped ({folder})", flush=True)
            continue
        if recipe_run_finished(folder):  # a run made with train.py alone
            print(f"== {label}: finished earlier (by train.py), skipped ({folder})", flush=True)
            write_done_marker(
                folder / DONE_FILE, {"fold": run["fold"], "seed": run["seed"], "valid": run["valid"], "found": True}
            )
            continue
        print(f"== {label}: {'resuming' if (folder / 'save').is_dir() else 'training'} in {folder}", flush=True)
        cmd = [sys.executable, str(train_script), str(hparams_file), *passthrough, *run["args"]]
        start = time.time()
        proc = subprocess.run(cmd)
        if proc.returncode != 0:
            raise SystemExit(
                f"{label} failed (exit {proc.returncode}); run the same command again to resume it.\n  $ {' '.join(cmd)}"
            )
        write_done_marker(
            folder / DONE_FILE,
            {"fold": run["fold"], "seed": run["seed"], "valid": run["valid"], "seconds": round(time.time() - start, 1)},
        )
    frame, split = collect_results(runs)
    title = f"{Path(hparams_file).stem}: {len(runs)} run(s), {'devel (the test split has no labels)' if split == 'valid' else 'test'}"
    markdown = write_results(results_folder, frame, title)
    print(markdown)
    print(f"(results.csv and results.md in {results_folder})")
    if figures is not None and "UAR" in frame.columns:
        _write_fold_figures(figures, results_folder, [run["folder"] for run in runs], split)
    return markdown


def _write_fold_figures(figures: FoldFigures, results_folder: Path, folders: Sequence[Path], split: str) -> None:
    """Call ``figures`` on the pooled runs; a failure is logged, never fails the runs."""
    try:
        figures(results_folder, folders, split)
        print(f"(figures in {results_folder / 'figures'})")
    except Exception as err:  # the results table is written; figures are extra
        logging.getLogger(__name__).warning(
            "figures of %s not written: %s: %s", results_folder, type(err).__name__, err
        )


CHAIN_DONE = "chain_complete.json"  # written by a finished multi-stage chain (speechbrain_ext.methods.flea.chain)


def recipe_run_finished(folder: str | Path) -> bool:
    """Whether a recipe run has its test report and trained every epoch it was asked for (or is a finished chain)."""
    folder = Path(folder)
    if (folder / CHAIN_DONE).is_file():
        return True
    log, hparams = folder / "train_log.txt", folder / "hyperparams.yaml"
    if not (log.is_file() and hparams.is_file() and (folder / "test_report.json").is_file()):
        return False
    limit = plain_values(hparams).get("number_of_epochs")
    epochs = [line for line in log.read_text().splitlines() if line.startswith("epoch:")]
    return limit is not None and len(epochs) >= int(limit)


def main(
    train_script: str | Path,
    folds_per_protocol: Mapping[str, int] | Callable[[dict], Mapping[str, int]] | None,
    argv: Sequence[str] | None = None,
    directions: Mapping[str, Sequence[str]] | None = None,
    figures: FoldFigures | None = None,
) -> str:
    """Command line of a recipe's ``run_folds.py``.

    Arguments
    ---------
    train_script : str or Path
        The recipe's ``train.py``.
    folds_per_protocol : mapping or None
        Protocol name -> number of folds (the YAML's ``protocol`` key picks
        one); None for a corpus with one fixed split, whose runs repeat with
        different seeds; a callable for counts that depend on the data
        (your own corpus: its speakers), given the YAML's resolved values.
    argv : sequence of str, optional
        Arguments (default ``sys.argv[1:]``).
    directions : mapping, optional
        Protocol -> ``valid_gender`` values run by default (IEMOCAP: ``{"loso": ["F", "M"]}``).
    figures : callable, optional
        Writes the pooled figures of classification runs (see :func:`run_folds`).
    """
    train_script = Path(train_script)
    corpus = train_script.parent.name
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("hparams", type=Path, help="the method's YAML file")
    if folds_per_protocol is not None:
        parser.add_argument("--folds", type=_int_list, help="comma-separated folds (default: all of the protocol)")
    if directions:
        parser.add_argument(
            "--valid_gender",
            choices=["F", "M"],
            help="run one direction only (default: both: F validates and M is tested, then the reverse)",
        )
    parser.add_argument("--seeds", type=_int_list, help="comma-separated seeds (default: the YAML's seed)")
    parser.add_argument(
        "--results_folder",
        type=Path,
        help="default results/<corpus>/<method>[/<protocol>]; given, the runs go below it too",
    )
    args, passthrough = parser.parse_known_args(argv)
    if folds_per_protocol is None and any(a == "--folds" or a.startswith("--folds=") for a in passthrough):
        parser.error(f"{corpus} has one fixed split; use --seeds to repeat it")
    if not any(a.startswith("--data_folder=") for a in passthrough):
        parser.error("--data_folder=... is required")
    bad = [a for a in passthrough if not a.startswith("--")]
    if bad:
        parser.error(f"pass train.py options as --key=value (or a flag such as --noprogressbar), got {bad}")
    for key, instead in (("output_folder", "--results_folder"), ("fold", "--folds")):
        if _override(passthrough, key) is not None:
            parser.error(f"--{key} is set per run; use {instead}")
    seeds = args.seeds or [int(_override(passthrough, "seed") or resolved_values(args.hparams, passthrough)["seed"])]
    passthrough = [a for a in passthrough if not a.startswith("--seed=")]
    protocol, folds, run_directions = None, [None], [None]
    if folds_per_protocol is not None:
        protocol = _override(passthrough, "protocol") or resolved_values(args.hparams, passthrough).get("protocol")
        if callable(folds_per_protocol):
            folds_per_protocol = folds_per_protocol(resolved_values(args.hparams, passthrough))
        if protocol not in folds_per_protocol:
            parser.error(f"protocol {protocol!r} is not one of {sorted(folds_per_protocol)}")
        n_folds = folds_per_protocol[protocol]
        folds = args.folds or list(range(1, n_folds + 1))
        wrong = [f for f in folds if not 1 <= f <= n_folds]
        if wrong:
            parser.error(f"folds {wrong} do not exist in {corpus} {protocol} (1..{n_folds})")
        if directions and protocol in directions:
            run_directions = [args.valid_gender] if args.valid_gender else list(directions[protocol])
    results_folder = args.results_folder or Path(
        "results", corpus, args.hparams.stem, *([protocol] if protocol else [])
    )
    script = resolved_values(args.hparams, passthrough).get(
        "recipe_script"
    )  # a chain of stages (FLEA) names its own script
    train_script = train_script.with_name(str(script)) if script else train_script
    return run_folds(
        train_script,
        args.hparams,
        folds,
        seeds,
        results_folder,
        passthrough,
        run_directions,
        runs_below_results=args.results_folder is not None,
        figures=figures,
    )
