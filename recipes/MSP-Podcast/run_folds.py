#!/usr/bin/env python3
"""Run an MSP-Podcast task over the release's partitions, repeated over --seeds, and tabulate mean ± std.

    python recipes/MSP-Podcast/run_folds.py recipes/MSP-Podcast/hparams/dimensional.yaml --data_folder=/data/MSP-Podcast [--seeds 1986,1987]

Finished runs are skipped, an interrupted one resumes from its checkpoint;
results.csv and results.md land in results/MSP-Podcast/<task>/ (see
:mod:`speechbrain_ext.training.folds`). Other --key=value arguments go to train.py.
"""

from pathlib import Path

from speechbrain_ext.analysis.figures import fold_figures
from speechbrain_ext.training.folds import main

FOLDS_PER_PROTOCOL = None

if __name__ == "__main__":
    main(Path(__file__).with_name("train.py"), FOLDS_PER_PROTOCOL, figures=fold_figures)
