#!/usr/bin/env python3
"""IEMOCAP FLEA (flea_hubert): TAPT, frame-level pseudo-emotion labels, CPT-HuBERT, attention-pooling fine-tuning; one fold.

    python recipes/IEMOCAP/train_flea.py recipes/IEMOCAP/hparams/flea.yaml --data_folder=/data/IEMOCAP_full_release --fold=1
    python recipes/IEMOCAP/run_folds.py recipes/IEMOCAP/hparams/flea.yaml --data_folder=/data/IEMOCAP_full_release

The stages and their outputs are described in :mod:`speechbrain_ext.methods.flea.chain`;
finished stages are skipped and pre-training resumes after a kill. The two
fine-tuning stages are runs of this folder's ``train.py`` (the YAMLs the
FLEA YAML names), so they use IEMOCAP's preparation and Brains as any run.
"""

from pathlib import Path

from train import prepare  # IEMOCAP's fold preparation (this folder's train.py)

from speechbrain_ext.methods.flea.chain import main

if __name__ == "__main__":
    main(prepare, Path(__file__).with_name("train.py"))
