#!/usr/bin/env python3
"""Run a FESC method over the 9 leave-one-speaker-out folds and tabulate mean ± std.

    python recipes/FESC/run_folds.py recipes/FESC/hparams/<method>.yaml --data_folder=/data/FESC [--folds 1,3] [--seeds 1986,1987]

Finished runs are skipped, an interrupted one resumes from its checkpoint;
results.csv and results.md land in results/FESC/<method>/... (see
:mod:`speechbrain_ext.training.folds`). Other --key=value arguments go to train.py.
"""

from pathlib import Path

from speechbrain_ext.analysis.figures import fold_figures
from speechbrain_ext.training.folds import main

FOLDS_PER_PROTOCOL = {"loso": 9}

if __name__ == "__main__":
    main(Path(__file__).with_name("train.py"), FOLDS_PER_PROTOCOL, figures=fold_figures)
