#!/usr/bin/env python3
"""Your own corpus (any labels, any language): every method, one fold per run.

    python recipes/Custom/train.py recipes/Custom/hparams/<method>.yaml --data_folder=/data/mine --listing=mine.csv
    python recipes/Custom/run_folds.py recipes/Custom/hparams/<method>.yaml --data_folder=/data/mine --listing=mine.csv

The method (baseline, seg, triplet, triplet_seg, supcon, bayes, attention;
kNN inference with ``--knn_eval=True``) is the YAML's; the YAML's
``brain_class`` picks one of the Brains below (defined in
``speechbrain_ext.training.brains``). What is the corpus's own is here: its
preparation from a listing or a ``<label>/<speaker>/*.wav`` tree
(:func:`data_prep.listing.prepare_listing`: ``listing``, ``protocol``,
``n_folds``, ``fold``, ``label_map``, ``labels``) and the number of classes,
read from the prepared training split when the YAML leaves ``n_classes``
null.
"""

from data_prep.errors import PreparationError
from data_prep.listing import prepare_listing
from speechbrain_ext.data.manifests import read_manifest
from speechbrain_ext.training.brains import SegmentBrain, SegmentTripletBrain, SupConBrain, TripletBrain, UtteranceBrain
from speechbrain_ext.training.recipe import run_recipe

# baseline, attention, bayes | triplet (W) | supcon | seg | triplet_seg (S or W)
BRAINS = (UtteranceBrain, TripletBrain, SupConBrain, SegmentBrain, SegmentTripletBrain)


def prepare(hparams: dict) -> None:
    """Write the train/valid/test manifests of one fold (speaker-disjoint; labels as the user wrote them)."""
    try:
        prepare_listing(
            data_folder=hparams["data_folder"],
            save_folder=hparams["prep_folder"],
            listing=hparams["listing"],
            protocol=hparams["protocol"],
            n_folds=hparams["n_folds"],
            fold=hparams["fold"],
            seed=hparams["split_seed"],
            label_map=hparams["label_map"],
            labels=hparams["labels"],
            from_folders=hparams["from_folders"],
            valid_offset=hparams["valid_offset"],
            allow_subset=hparams["allow_subset"],
        )
    except PreparationError as err:  # a bad listing: its lines named, no traceback
        raise SystemExit(f"error: {err}") from None


def class_count(hparams: dict) -> dict:
    """``n_classes: null`` -> the number of labels in the prepared training split (a given number is kept)."""
    if hparams["n_classes"] is not None:
        return {}
    label_key = hparams["task"]["label_key"]
    return {"n_classes": len({str(e[label_key]) for e in read_manifest(hparams["train_annotation"]).values()})}


if __name__ == "__main__":
    run_recipe(prepare, BRAINS, derive=class_count)
