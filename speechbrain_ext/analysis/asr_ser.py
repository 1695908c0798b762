"""asr-ser HPARAMS: two-step fine-tuning, SER from ASR-fine-tuned checkpoints over the recipe's folds, and the Table I rows (w2v2_info_recovery G-4).

For each ASR checkpoint (any CTC model of the wav2vec2 family; defaults are
the paper's three), runs the recipe's ``run_folds.py`` with
``--ssl_hub=<checkpoint>`` into ``<results>/<name>``: the same recipe, YAML
and folds as direct SER fine-tuning, so the two are comparable run by run
(``compare``). Finished runs are skipped. Then tabulates mean ± std UAR/WA
per system, with the direct SER runs (``--ser``) first:
``asr_ser.csv``, ``asr_ser.md``, ``asr_ser.json``, ``asr_ser.png``.
Options after ``--`` go to every run (``--key=value``, as train.py takes them).

    python -m speechbrain_ext.analysis asr-ser recipes/IEMOCAP/hparams/baseline.yaml \\
        --data_folder /data/IEMOCAP --results results/IEMOCAP/asr_ser \\
        --ser results/IEMOCAP/baseline/session -- --seed=1337

The G-3 rows (probing the ASR checkpoints' own embeddings) come from
``probe --model <checkpoint>``.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from speechbrain_ext.analysis.runs import find_runs
from speechbrain_ext.evaluation.plots import pyplot
from speechbrain_ext.evaluation.reports import csv_text
from speechbrain_ext.training.folds import run_metrics
from speechbrain_ext.utils.fileio import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

TAKES_EXTRA_OPTIONS = True  # after --: options for every run (--key=value)

# w2v2_info_recovery's intermediary ASR models: wav2vec2-base fine-tuned with CTC on 10 min, 100 h and 960 h of LibriSpeech
PAPER_ASR = {
    "ASR10": "Xinnian/w2v2-libri-10min",
    "ASR100": "facebook/wav2vec2-base-100h",
    "ASR960": "facebook/wav2vec2-base-960h",
}


def parse_systems(values: Sequence[str]) -> dict[str, str]:
    """``NAME=checkpoint`` (or a bare checkpoint, named after its last path part) -> ``{name: checkpoint}``.

    Example
    -------
    >>> parse_systems(["ASR100=facebook/wav2vec2-base-100h", "/models/my_ctc"])
    {'ASR100': 'facebook/wav2vec2-base-100h', 'my_ctc': '/models/my_ctc'}
    """
    systems = {}
    for value in values:
        name, sep, checkpoint = value.partition("=")
        if not sep:
            name, checkpoint = Path(value.rstrip("/")).name, value
        if name in systems:
            raise ValueError(f"two ASR systems named {name!r}; name them NAME=checkpoint")
        systems[name] = checkpoint
    return systems


def fold_command(
    hparams: Path, data_folder: str, results: Path, checkpoint: str, passthrough: Sequence[str]
) -> list[str]:
    """The ``run_folds.py`` command of one ASR -> SER system."""
    script = hparams.resolve().parent.parent / "run_folds.py"
    return [
        sys.executable,
        str(script),
        str(hparams),
        f"--data_folder={data_folder}",
        f"--results_folder={results}",
        f"--ssl_hub={checkpoint}",
        *passthrough,
    ]


def system_table(systems: dict[str, Path], split: str = "test") -> pd.DataFrame:
    """Mean and std (ddof 1) over each system's runs of UAR and WA from their ``<split>_report.json``.

    Example
    -------
    >>> import tempfile, pathlib, json
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for fold, uar in ((1, 0.5), (2, 0.7)):
    ...     run = root / f"fold_{fold}"; run.mkdir()
    ...     _ = (run / "hyperparams.yaml").write_text("x: 1")
    ...     _ = (run / "test_predictions.csv").write_text("id")
    ...     _ = (run / "test_report.json").write_text(json.dumps({"UAR": uar, "WA": uar + 0.1, "n": 4, "summary_metrics": ["UAR", "WA"]}))
    >>> table = system_table({"SER": root})
    >>> row = table.iloc[0]
    >>> row["system"], int(row["runs"]), round(float(row["UAR"]), 3), round(float(row["UAR_std"]), 4)
    ('SER', 2, 0.6, 0.1414)
    """
    rows = []
    for name, folder in systems.items():
        frame = pd.DataFrame(
            [run_metrics(run)[1] for run in find_runs(folder, split)]
        )  # the fold runner's reading of a run
        rows.append(
            {
                "system": name,
                "runs": len(frame),
                "UAR": frame["UAR"].mean(),
                "UAR_std": frame["UAR"].std(),
                "WA": frame["WA"].mean(),
                "WA_std": frame["WA"].std(),
            }
        )
    return pd.DataFrame(rows)


def write_table(table: pd.DataFrame, out: Path) -> None:
    """``asr_ser.csv``, ``asr_ser.md`` (percent, mean ± std), ``asr_ser.json`` and a bar plot."""
    plt = pyplot()

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "asr_ser.csv", csv_text(table))
    lines = ["| system | runs | UAR % | WA % |", "|---|---|---|---|"]
    for row in table.itertuples():
        lines.append(
            f"| {row.system} | {row.runs} | {100 * row.UAR:.2f} ± {100 * (row.UAR_std if row.runs > 1 else 0):.2f} | {100 * row.WA:.2f} ± {100 * (row.WA_std if row.runs > 1 else 0):.2f} |"
        )
    atomic_write_text(out / "asr_ser.md", "\n".join(lines) + "\n")
    atomic_write_json(out / "asr_ser.json", table.astype(object).where(table.notna(), None).to_dict(orient="records"))
    fig, ax = plt.subplots(figsize=(1.2 * len(table) + 2, 3.2))
    ax.bar(table["system"], 100 * table["UAR"], yerr=100 * table["UAR_std"].fillna(0), capsize=3)
    ax.set_ylabel("test UAR %")
    fig.tight_layout()
    fig.savefig(out / "asr_ser.png", dpi=120)
    plt.close(fig)


def run_asr_ser(
    hparams: str | Path,
    data_folder: str,
    results: str | Path,
    asr: dict[str, str],
    ser: str | Path | None = None,
    passthrough: Sequence[str] = (),
    table_only: bool = False,
) -> pd.DataFrame:
    """Fine-tune SER from each ASR checkpoint over the recipe's folds (skipping finished runs), then tabulate."""
    hparams, results = Path(hparams), Path(results)
    if not hparams.is_file():
        raise FileNotFoundError(f"{hparams}: no such hparams file")
    if not (hparams.resolve().parent.parent / "run_folds.py").is_file():
        raise FileNotFoundError(
            f"{hparams}: no run_folds.py beside its hparams/ folder; give a recipe's YAML (recipes/<corpus>/hparams/<method>.yaml)"
        )
    if not table_only and not Path(data_folder).is_dir():
        raise FileNotFoundError(f"--data_folder {data_folder!r} is not a folder")
    bad = [a for a in passthrough if not a.startswith("--")]
    if bad:
        raise ValueError(f"options for the runs go as --key=value after --, got {bad}")
    systems: dict[str, Path] = {}
    if ser is not None:
        systems["SER"] = Path(ser)
    for name, checkpoint in asr.items():
        folder = results / name
        if not table_only:
            cmd = fold_command(hparams, data_folder, folder, checkpoint, passthrough)
            logger.info("%s -> SER: %s", name, " ".join(cmd))
            subprocess.run(cmd, check=True)
        systems[f"{name}->SER"] = folder
    table = system_table(systems)
    write_table(table, results)
    logger.info("\n%s", (results / "asr_ser.md").read_text(encoding="utf-8"))
    return table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's options."""
    parser.add_argument("hparams", help="the recipe's SER YAML (recipes/<corpus>/hparams/<method>.yaml)")
    parser.add_argument("--data_folder", required=True)
    parser.add_argument(
        "--results", required=True, help="one sub-folder of fold runs per ASR system; the table lands here"
    )
    parser.add_argument(
        "--asr",
        action="append",
        default=None,
        help=f"NAME=checkpoint of a CTC model (repeatable; default the paper's {', '.join(f'{k}={v}' for k, v in PAPER_ASR.items())})",
    )
    parser.add_argument(
        "--ser", default=None, help="results folder (or run) of direct SER fine-tuning, the first row of the table"
    )
    parser.add_argument(
        "--table-only", dest="table_only", action="store_true", help="tabulate finished runs, train nothing"
    )


def run(args: argparse.Namespace) -> None:
    """Run the verb."""
    asr = parse_systems(args.asr) if args.asr else dict(PAPER_ASR)
    run_asr_ser(
        args.hparams, args.data_folder, args.results, asr, args.ser, getattr(args, "extra", []), args.table_only
    )
