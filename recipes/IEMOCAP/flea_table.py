#!/usr/bin/env python3
"""flea_hubert's Table 1 from finished FLEA runs: UA/WA (%) per layer x clusters x pooling, averaged over folds.

    python recipes/IEMOCAP/flea_table.py results/IEMOCAP/flea/loso [--out table1.md]

Reads every ``L<layer>_k<clusters>_<pooling>/test_report.json`` below the
folder (the FLEA YAML's run folders: one per fold, direction and seed) and
prints the table in the paper's layout, with the number of runs averaged
in brackets.
"""

import argparse
import json
import re
from pathlib import Path

import pandas as pd

RUN = re.compile(r"L(?P<layer>\d+)_k(?P<clusters>\d+)_(?P<pooling>mean|attention)$")


def collect(root: Path) -> pd.DataFrame:
    """One row per finished run: layer, clusters, pooling, UAR, WA."""
    rows = []
    for report in sorted(root.rglob("test_report.json")):
        match = next(
            (m for m in map(RUN.match, reversed(report.relative_to(root).parts[:-1])) if m), None
        )  # the run folder or a folder above it
        if match and "finetune" not in report.parent.name:
            values = json.loads(report.read_text())
            rows.append(
                {
                    **{k: (v if k == "pooling" else int(v)) for k, v in match.groupdict().items()},
                    "UAR": values["UAR"],
                    "WA": values["WA"],
                }
            )
    return pd.DataFrame(rows, columns=["layer", "clusters", "pooling", "UAR", "WA"])


def table(frame: pd.DataFrame) -> str:
    """The Markdown table: a row per layer and cluster count, a column per pooling."""
    means = frame.groupby(["layer", "clusters", "pooling"]).agg(
        UAR=("UAR", "mean"), WA=("WA", "mean"), n=("UAR", "size")
    )
    lines = ["| layer | clusters | average pooling UA/WA | attention pooling UA/WA |", "|---|---|---|---|"]
    for layer, clusters in sorted({(lay, k) for lay, k, _ in means.index}, key=lambda x: (x[0] != 9, x)):
        cells = []
        for pooling in ("mean", "attention"):
            key = (layer, clusters, pooling)
            cells.append(
                f"{100 * means.loc[key, 'UAR']:.1f}/{100 * means.loc[key, 'WA']:.1f} ({int(means.loc[key, 'n'])})"
                if key in means.index
                else "-"
            )
        lines.append(f"| {layer} | {clusters} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="folder holding the FLEA runs (e.g. results/IEMOCAP/flea/loso)")
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args()
    frame = collect(args.root)
    if frame.empty:
        raise SystemExit(
            f"{args.root}: no finished FLEA run (L<layer>_k<clusters>_<pooling>/test_report.json) below it"
        )
    markdown = table(frame)
    print(markdown)
    if args.out:
        args.out.write_text(markdown + "\n")


if __name__ == "__main__":
    main()
