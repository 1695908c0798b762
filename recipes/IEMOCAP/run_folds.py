#!/usr/bin/env python3
"""Run an IEMOCAP method over the protocol's folds and tabulate mean ± std.

    python recipes/IEMOCAP/run_folds.py recipes/IEMOCAP/hparams/<method>.yaml --data_folder=/data/IEMOCAP_full_release [--folds 1,3] [--seeds 1986,1987] [--valid_gender F]

session (the YAML's ``protocol``, or ``--protocol=session``) runs 5 times
(test session k, validation session k+1); loso 10 times by default (5
sessions, each with its F speaker validating and M tested, then the reverse;
``--valid_gender F`` runs one direction), lo2so 10 times.

Finished runs are skipped, an interrupted one resumes from its checkpoint;
results.csv and results.md land in results/IEMOCAP/<method>/... (see
:mod:`speechbrain_ext.training.folds`). Other --key=value arguments go to train.py.
"""

from pathlib import Path

from data_prep.iemocap import PROTOCOLS as FOLDS_PER_PROTOCOL  # protocol -> number of folds
from speechbrain_ext.analysis.figures import fold_figures
from speechbrain_ext.training.folds import main

# loso: each held-out session is run twice, its F speaker validating and M tested, then the reverse
DIRECTIONS = {"loso": ["F", "M"]}

if __name__ == "__main__":
    main(Path(__file__).with_name("train.py"), FOLDS_PER_PROTOCOL, directions=DIRECTIONS, figures=fold_figures)
