#!/usr/bin/env python3
"""FESC (Finnish Emotional Speech Corpus) emotion recognition: every method, one fold per run.

    python recipes/FESC/train.py recipes/FESC/hparams/<method>.yaml --data_folder=/data/FESC --fold=4
    python recipes/FESC/run_folds.py recipes/FESC/hparams/<method>.yaml --data_folder=/data/FESC

The method (baseline, seg, triplet, triplet_seg, supcon, bayes, attention;
kNN inference with ``--knn_eval=True``) is the YAML's; the YAML's
``brain_class`` picks one of the Brains below, each a small class whose
``compute_forward``/``compute_objectives`` hold one method family. To change
a method, subclass one here and add it to ``BRAINS``. What is FESC's own
is here: its preparation from ``listing.csv`` (leave-one-speaker-out).

The Brains are defined in ``speechbrain_ext.training.brains`` (their shared base, ``RecipeBrain``, in
``speechbrain_ext.training.recipe_brain``).
"""

from data_prep.fesc import prepare_fesc
from speechbrain_ext.training.brains import SegmentBrain, SegmentTripletBrain, SupConBrain, TripletBrain, UtteranceBrain
from speechbrain_ext.training.recipe import run_recipe

# baseline, attention, bayes | triplet (W) | supcon | seg | triplet_seg (S or W)
BRAINS = (UtteranceBrain, TripletBrain, SupConBrain, SegmentBrain, SegmentTripletBrain)


def prepare(hparams: dict) -> None:
    """Write the train/valid/test manifests of one fold."""
    prepare_fesc(
        data_folder=hparams["data_folder"],
        save_folder=hparams["prep_folder"],
        protocol=hparams["protocol"],
        fold=hparams["fold"],
        listing=hparams["listing"],
        valid_offset=hparams["valid_offset"],
        allow_subset=hparams["allow_subset"],
    )


if __name__ == "__main__":
    run_recipe(prepare, BRAINS)
