#!/usr/bin/env python3
"""RAVDESS speech emotion recognition: every method of the collection on one protocol.

    python recipes/RAVDESS/train.py recipes/RAVDESS/hparams/<method>.yaml --data_folder=/data/RAVDESS

The method (baseline, seg, triplet, triplet_seg, supcon, bayes, attention;
kNN inference with ``--knn_eval=True``) is the YAML's; the YAML's
``brain_class`` picks one of the Brains below, each a small class whose
``compute_forward``/``compute_objectives`` hold one method family. To change
a method, subclass one here and add it to ``BRAINS``. What is RAVDESS's
own is here: its preparation (actors 1-20 / 21-22 / 23-24, calm merged into
neutral).

The Brains are defined in ``speechbrain_ext.training.brains`` (their shared base, ``RecipeBrain``, in
``speechbrain_ext.training.recipe_brain``).
"""

from data_prep.ravdess import prepare_ravdess
from speechbrain_ext.training.brains import SegmentBrain, SegmentTripletBrain, SupConBrain, TripletBrain, UtteranceBrain
from speechbrain_ext.training.recipe import run_recipe

# baseline, attention, bayes | triplet (W) | supcon | seg | triplet_seg (S or W)
BRAINS = (UtteranceBrain, TripletBrain, SupConBrain, SegmentBrain, SegmentTripletBrain)


def prepare(hparams: dict) -> None:
    """Write the train/valid/test manifests of the speech part of RAVDESS."""
    prepare_ravdess(
        data_folder=hparams["data_folder"],
        save_folder=hparams["prep_folder"],
        merge_calm=hparams["merge_calm"],
        allow_subset=hparams["allow_subset"],
    )


if __name__ == "__main__":
    run_recipe(prepare, BRAINS)
