#!/usr/bin/env python3
"""RAVDESS speech emotion recognition: every method of the collection on one protocol.

    python recipes/RAVDESS/train.py recipes/RAVDESS/hparams/<method>.yaml --data_folder=/data/RAVDESS

The method (baseline, seg, triplet, triplet_seg, supcon, bayes, attention;
kNN inference with ``--knn_eval=True``) is the YAML's; the Brain that runs
them all is :class:`speechbrain_ext.brain.EmotionBrain`. What is RAVDESS's
own is here: its preparation (actors 1-20 / 21-22 / 23-24, calm merged into
neutral).
"""

from data_prep.ravdess import prepare_ravdess
from speechbrain_ext.recipe import run_recipe


def prepare(hparams: dict) -> None:
    """Write the train/valid/test manifests of the speech part of RAVDESS."""
    prepare_ravdess(
        data_folder=hparams["data_folder"],
        save_folder=hparams["prep_folder"],
        merge_calm=hparams["merge_calm"],
        allow_subset=hparams["allow_subset"],
    )


if __name__ == "__main__":
    run_recipe(prepare)
