#!/usr/bin/env python3
"""Run a Hume-Prosody method over the challenge partitions, repeated over --seeds, and tabulate mean ± std.

    python recipes/Hume-Prosody/run_folds.py recipes/Hume-Prosody/hparams/audio.yaml --data_folder=/data/Hume-Prosody [--seeds 1986,1987]

Finished runs are skipped, an interrupted one resumes from its checkpoint;
results.csv and results.md land in results/Hume-Prosody/<method>/ (devel numbers: the test labels are masked) (see
:mod:`speechbrain_ext.training.folds`). Other --key=value arguments go to train.py.
"""

from pathlib import Path

from speechbrain_ext.analysis.figures import fold_figures
from speechbrain_ext.training.folds import main

FOLDS_PER_PROTOCOL = None

if __name__ == "__main__":
    main(Path(__file__).with_name("train.py"), FOLDS_PER_PROTOCOL, figures=fold_figures)
