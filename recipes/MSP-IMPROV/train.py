#!/usr/bin/env python3
"""MSP-IMPROV speech emotion recognition: every method of the collection, one fold per run.

    python recipes/MSP-IMPROV/train.py recipes/MSP-IMPROV/hparams/<method>.yaml --data_folder=/data/MSP-IMPROV --fold=3
    python recipes/MSP-IMPROV/run_folds.py recipes/MSP-IMPROV/hparams/<method>.yaml --data_folder=/data/MSP-IMPROV

The method (baseline, seg, triplet, triplet_seg, supcon, bayes, attention;
kNN inference with ``--knn_eval=True``) is the YAML's; the YAML's
``brain_class`` picks one of the Brains below, each a small class whose
``compute_forward``/``compute_objectives`` hold one method family. To change
a method, subclass one here and add it to ``BRAINS``. What is MSP-IMPROV's
own is here: its preparation (four classes, leave-one-session-out folds:
fold k tests session k and validates on session k+1).

The Brains are defined in ``speechbrain_ext.training.brains`` (their shared base, ``RecipeBrain``, in
``speechbrain_ext.training.recipe_brain``).
"""

from data_prep.msp_improv import prepare_msp_improv
from speechbrain_ext.training.brains import SegmentBrain, SegmentTripletBrain, SupConBrain, TripletBrain, UtteranceBrain
from speechbrain_ext.training.recipe import run_recipe

# baseline, attention, bayes | triplet (W) | supcon | seg | triplet_seg (S or W)
BRAINS = (UtteranceBrain, TripletBrain, SupConBrain, SegmentBrain, SegmentTripletBrain)


def prepare(hparams: dict) -> None:
    """Write the train/valid/test manifests of one fold."""
    prepare_msp_improv(
        data_folder=hparams["data_folder"],
        save_folder=hparams["prep_folder"],
        protocol=hparams["protocol"],
        fold=hparams["fold"],
        allow_subset=hparams["allow_subset"],
    )


if __name__ == "__main__":
    run_recipe(prepare, BRAINS)
