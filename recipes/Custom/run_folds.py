#!/usr/bin/env python3
"""Run a method on your own corpus over every fold of its protocol and tabulate mean ± std.

    python recipes/Custom/run_folds.py recipes/Custom/hparams/<method>.yaml --data_folder=/data/mine --listing=mine.csv [--n_folds=5] [--folds 1,3] [--seeds 1986,1987]

kfold runs ``n_folds`` folds, loso one per speaker of the listing, given
the listing's one split. Finished runs are skipped, an interrupted one
resumes from its checkpoint; results.csv and results.md land in
results/Custom/<method>/<protocol> (see :mod:`speechbrain_ext.training.folds`).
Other --key=value arguments go to train.py.
"""

from pathlib import Path

from data_prep.listing_rows import read_listing, resolve_listing, rows_from_folders
from speechbrain_ext.analysis.figures import fold_figures
from speechbrain_ext.training.folds import main


def folds_per_protocol(values: dict) -> dict:
    """Protocol -> number of folds: the YAML's ``n_folds``, the listing's speakers, one given split."""
    counts = {"kfold": int(values["n_folds"]), "given": 1}
    if values["protocol"] == "loso":
        data = Path(str(values["data_folder"]))
        if values["from_folders"]:
            rows = rows_from_folders(data)
        else:
            rows, _ = read_listing(resolve_listing(str(values["listing"]), data), [], need_split=False)
        counts["loso"] = len({row["speaker"] for row in rows})
    return counts


if __name__ == "__main__":
    main(Path(__file__).with_name("train.py"), folds_per_protocol, figures=fold_figures)
