#!/usr/bin/env python3
"""IEMOCAP speech emotion recognition: every method of the collection, one fold per run.

    python recipes/IEMOCAP/train.py recipes/IEMOCAP/hparams/<method>.yaml --data_folder=/data/IEMOCAP_full_release --fold=3
    python recipes/IEMOCAP/run_folds.py recipes/IEMOCAP/hparams/<method>.yaml --data_folder=/data/IEMOCAP_full_release

The method (baseline, seg, triplet, triplet_seg, supcon, bayes, attention;
kNN inference with ``--knn_eval=True``) is the YAML's; the YAML's
``brain_class`` picks one of the Brains below, each a small class whose
``compute_forward``/``compute_objectives`` hold one method family. To change
a method, subclass one here and add it to ``BRAINS``. What is IEMOCAP's
own is here: its preparation (four classes, speaker-independent folds).

The Brains are defined in ``speechbrain_ext.training.brains`` (their shared base, ``RecipeBrain``, in
``speechbrain_ext.training.recipe_brain``).
"""

from data_prep.iemocap import prepare_iemocap
from speechbrain_ext.training.brains import SegmentBrain, SegmentTripletBrain, SupConBrain, TripletBrain, UtteranceBrain
from speechbrain_ext.training.recipe import run_recipe

# baseline, attention, bayes | triplet (W) | supcon | seg | triplet_seg (S or W)
BRAINS = (UtteranceBrain, TripletBrain, SupConBrain, SegmentBrain, SegmentTripletBrain)


def prepare(hparams: dict) -> None:
    """Write the train/valid/test manifests of one fold."""
    prepare_iemocap(
        data_folder=hparams["data_folder"],
        save_folder=hparams["prep_folder"],
        protocol=hparams["protocol"],
        fold=hparams["fold"],
        labels=hparams["labels"],
        valid_gender=hparams["valid_gender"],
        seed=hparams["seed"],
        allow_subset=hparams["allow_subset"],
    )


if __name__ == "__main__":
    run_recipe(prepare, BRAINS)
