#!/usr/bin/env python3
"""Run an MSP-IMPROV method over the 6 leave-one-session-out folds and tabulate mean ± std.

    python recipes/MSP-IMPROV/run_folds.py recipes/MSP-IMPROV/hparams/<method>.yaml --data_folder=/data/MSP-IMPROV [--folds 1,3] [--seeds 1986,1987]

Fold k tests session k (both speakers) and validates on session k+1
(session 1 after session 6); the other four sessions train.

Finished runs are skipped, an interrupted one resumes from its checkpoint;
results.csv and results.md land in results/MSP-IMPROV/<method>/... (see
:mod:`speechbrain_ext.training.folds`). Other --key=value arguments go to train.py.
"""

from pathlib import Path

from speechbrain_ext.analysis.figures import fold_figures
from speechbrain_ext.training.folds import main

FOLDS_PER_PROTOCOL = {"loso": 6}

if __name__ == "__main__":
    main(Path(__file__).with_name("train.py"), FOLDS_PER_PROTOCOL, figures=fold_figures)
