"""Cross-validation runner behind every recipe's ``run_folds.py``.

    python recipes/IEMOCAP/run_folds.py recipes/IEMOCAP/hparams/seg.yaml --data_folder=/data/IEMOCAP_full_release [--folds 1,3] [--seeds 1986,1987]

Runs the recipe's ``train.py`` once per fold (and seed), one after another,
each in ``<results_folder>/fold_<k>/seed_<s>``. A run that finished is
skipped; one that was interrupted is started again with the same command,
so SpeechBrain resumes it from its last checkpoint. Then the per-fold test
UAR/WA (and the kNN numbers when ``knn_summary.json`` exists) are gathered
into ``results.csv`` and ``results.md`` with mean and standard deviation,
and the table is printed. Every number comes from the runs'
``test_report.json`` files.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from data_prep.common import atomic_write_text

DONE_FILE = "run_complete.json"


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _plain_value(hparams_file: Path, key: str):
    from speechbrain_ext.hub import read_plain_values

    return read_plain_values(hparams_file, optional=[key]).get(key)


def _override(passthrough: Sequence[str], key: str) -> str | None:
    for arg in passthrough:
        if arg.startswith(f"--{key}="):
            return arg.split("=", 1)[1]
    return None


def collect_results(runs: Sequence[dict]) -> tuple[list[dict], dict]:
    """Per-run rows and the mean/std summary from each run's reports.

    Arguments
    ---------
    runs : sequence of dict
        ``fold``, ``seed`` and ``folder`` of each run.

    Returns
    -------
    rows : list of dict
        ``fold``, ``seed``, ``n``, ``UAR``, ``WA`` (and ``UAR_knn``, ``WA_knn``).
    summary : dict
        Metric -> ``{"mean", "std"}`` (std with ddof 1; 0 for one run).
    """
    rows = []
    for run in runs:
        folder = Path(run["folder"])
        report = json.loads((folder / "test_report.json").read_text())
        row = {"fold": run["fold"], "seed": run["seed"], "n": report["n"], "UAR": report["UAR"], "WA": report["WA"]}
        knn = folder / "knn_summary.json"
        if knn.is_file():
            with_knn = json.loads(knn.read_text())["test"]["with_knn"]
            row.update(UAR_knn=with_knn["UAR"], WA_knn=with_knn["WA"])
        rows.append(row)
    metrics = [m for m in ("UAR", "WA", "UAR_knn", "WA_knn") if all(m in r for r in rows)]
    summary = {}
    for metric in metrics:
        values = np.array([r[metric] for r in rows], dtype=float)
        summary[metric] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    return rows, summary


def results_markdown(rows: Sequence[dict], summary: Mapping[str, dict], title: str) -> str:
    """Markdown table (percent) of the runs and their mean ± std.

    Example
    -------
    >>> rows = [{"fold": 1, "seed": 1, "n": 10, "UAR": 0.5, "WA": 0.6}, {"fold": 2, "seed": 1, "n": 10, "UAR": 0.7, "WA": 0.8}]
    >>> summary = {"UAR": {"mean": 0.6, "std": 0.1414}, "WA": {"mean": 0.7, "std": 0.1414}}
    >>> print(results_markdown(rows, summary, "seg"))
    ### seg
    <BLANKLINE>
    | fold | seed | n | UAR % | WA % |
    |---|---|---|---|---|
    | 1 | 1 | 10 | 50.00 | 60.00 |
    | 2 | 1 | 10 | 70.00 | 80.00 |
    | mean ± std | | 20 | 60.00 ± 14.14 | 70.00 ± 14.14 |
    """
    metrics = list(summary)
    lines = [
        f"### {title}",
        "",
        "| fold | seed | n | " + " | ".join(f"{m.replace('_knn', ' +kNN')} %" for m in metrics) + " |",
        "|---" * (3 + len(metrics)) + "|",
    ]
    for r in rows:
        lines.append(f"| {r['fold']} | {r['seed']} | {r['n']} | " + " | ".join(f"{100 * r[m]:.2f}" for m in metrics) + " |")
    total = sum(r["n"] for r in rows)
    lines.append(f"| mean ± std | | {total} | " + " | ".join(f"{100 * summary[m]['mean']:.2f} ± {100 * summary[m]['std']:.2f}" for m in metrics) + " |")
    return "\n".join(lines)


def write_results(folder: Path, rows: Sequence[dict], summary: Mapping[str, dict], title: str) -> str:
    """Write ``results.csv`` (runs, then mean and std rows) and ``results.md``; return the Markdown."""
    columns = ["fold", "seed", "n", *summary]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for r in rows:
        writer.writerow([r["fold"], r["seed"], r["n"], *[f"{r[m]:.6f}" for m in summary]])
    writer.writerow(["mean", "", sum(r["n"] for r in rows), *[f"{summary[m]['mean']:.6f}" for m in summary]])
    writer.writerow(["std", "", "", *[f"{summary[m]['std']:.6f}" for m in summary]])
    atomic_write_text(folder / "results.csv", buffer.getvalue())
    markdown = results_markdown(rows, summary, title)
    atomic_write_text(folder / "results.md", markdown + "\n")
    return markdown


def run_folds(
    train_script: str | Path,
    hparams_file: str | Path,
    folds: Sequence[int],
    seeds: Sequence[int],
    results_folder: str | Path,
    passthrough: Sequence[str] = (),
    uses_folds: bool = True,
) -> str:
    """Run (or skip when finished) every fold x seed, then write and return the results table.

    Arguments
    ---------
    train_script : str or Path
        The recipe's ``train.py``.
    hparams_file : str or Path
        The method's YAML.
    folds, seeds : sequence of int
        What to run.
    results_folder : str or Path
        Root of the runs and of ``results.csv``/``results.md``.
    passthrough : sequence of str
        More ``--key=value`` overrides for ``train.py`` (``--data_folder`` among them).
    uses_folds : bool
        Pass ``--fold`` (False for corpora with one fixed split: runs differ by seed only).

    Returns
    -------
    str
        The Markdown table.
    """
    results_folder = Path(results_folder)
    runs = []
    total = len(folds) * len(seeds)
    for fold in folds:
        for seed in seeds:
            folder = results_folder / f"fold_{fold}" / f"seed_{seed}"
            runs.append({"fold": fold, "seed": seed, "folder": folder})
            label = f"fold {fold}, seed {seed} ({len(runs)}/{total})"
            if (folder / DONE_FILE).is_file():
                print(f"== {label}: finished earlier, skipped ({folder})", flush=True)
                continue
            resumed = (folder / "save").is_dir()
            print(f"== {label}: {'resuming' if resumed else 'training'} in {folder}", flush=True)
            cmd = [sys.executable, str(train_script), str(hparams_file), f"--output_folder={folder}", f"--seed={seed}", *passthrough]
            if uses_folds:
                cmd.append(f"--fold={fold}")
            start = time.time()
            proc = subprocess.run(cmd)
            if proc.returncode != 0:
                raise SystemExit(f"{label} failed (exit {proc.returncode}); run the same command again to resume it.\n  $ {' '.join(cmd)}")
            atomic_write_text(folder / DONE_FILE, json.dumps({"fold": fold, "seed": seed, "seconds": round(time.time() - start, 1)}) + "\n")
    rows, summary = collect_results(runs)
    title = f"{Path(hparams_file).stem}: {len(folds)} fold(s) x {len(seeds)} seed(s)"
    markdown = write_results(results_folder, rows, summary, title)
    print(markdown)
    print(f"(results.csv and results.md in {results_folder})")
    return markdown


def main(train_script: str | Path, folds_per_protocol: Mapping[str, int] | None, argv: Sequence[str] | None = None) -> str:
    """Command line of a recipe's ``run_folds.py``.

    Arguments
    ---------
    train_script : str or Path
        The recipe's ``train.py``.
    folds_per_protocol : mapping or None
        Protocol name -> number of folds (the YAML's ``protocol`` key picks
        one); None for a corpus with one fixed split, whose runs repeat with
        different seeds.
    argv : sequence of str, optional
        Arguments (default ``sys.argv[1:]``).
    """
    train_script = Path(train_script)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("hparams", type=Path, help="the method's YAML file")
    parser.add_argument("--folds", type=_int_list, help="comma-separated folds (default: all of the protocol)")
    parser.add_argument("--seeds", type=_int_list, help="comma-separated seeds (default: the YAML's seed)")
    parser.add_argument("--results_folder", type=Path, help="default results/<corpus>/<method>[/<protocol>]")
    args, passthrough = parser.parse_known_args(argv)
    if not any(a.startswith("--data_folder=") for a in passthrough):
        parser.error("--data_folder=... is required")
    bad = [a for a in passthrough if not a.startswith("--")]
    if bad:
        parser.error(f"pass train.py options as --key=value (or a flag such as --noprogressbar), got {bad}")
    for key, instead in (("output_folder", "--results_folder"), ("fold", "--folds")):
        if _override(passthrough, key) is not None:
            parser.error(f"--{key} is set per run; use {instead}")
    corpus = train_script.parent.name
    seeds = args.seeds or [int(_override(passthrough, "seed") or _plain_value(args.hparams, "seed"))]
    passthrough = [a for a in passthrough if not a.startswith("--seed=")]
    if folds_per_protocol is None:
        folds, protocol = [1], None
    else:
        protocol = _override(passthrough, "protocol") or _plain_value(args.hparams, "protocol")
        if protocol not in folds_per_protocol:
            parser.error(f"protocol {protocol!r} is not one of {sorted(folds_per_protocol)}")
        n_folds = folds_per_protocol[protocol]
        folds = args.folds or list(range(1, n_folds + 1))
        wrong = [f for f in folds if not 1 <= f <= n_folds]
        if wrong:
            parser.error(f"folds {wrong} do not exist in {corpus} {protocol} (1..{n_folds})")
    results_folder = args.results_folder or Path("results", corpus, args.hparams.stem, *([protocol] if protocol else []))
    return run_folds(train_script, args.hparams, folds, seeds, results_folder, passthrough, uses_folds=folds_per_protocol is not None)
