#!/usr/bin/env python3
"""Run a HealthCall30 method over the challenge partitions, repeated over --seeds, and tabulate mean ± std.

    python recipes/HealthCall30/run_folds.py recipes/HealthCall30/hparams/audio.yaml --data_folder=/data/HealthCall30 [--seeds 1986,1987]

Finished runs are skipped, an interrupted one resumes from its checkpoint;
results.csv and results.md land in results/HealthCall30/<method>/ (devel numbers: the test labels are masked) (see
:mod:`speechbrain_ext.training.folds`). Other --key=value arguments (``--target=complaint``) go to train.py.
"""

from pathlib import Path

from speechbrain_ext.analysis.figures import fold_figures
from speechbrain_ext.training.folds import main

FOLDS_PER_PROTOCOL = None

if __name__ == "__main__":
    main(Path(__file__).with_name("train.py"), FOLDS_PER_PROTOCOL, figures=fold_figures)
