#!/usr/bin/env python3
"""MSP-Podcast: eight emotion classes (categorical.yaml) or arousal, valence and dominance (dimensional.yaml).

    python recipes/MSP-Podcast/train.py recipes/MSP-Podcast/hparams/categorical.yaml --data_folder=/data/MSP-Podcast
    python recipes/MSP-Podcast/train.py recipes/MSP-Podcast/hparams/dimensional.yaml --data_folder=/data/MSP-Podcast

wav2vec2 fine-tuning with the collection's Brain and runner; the YAML's
task says what is predicted: :class:`~speechbrain_ext.training.tasks.ClassificationTask`
(class-weighted NLL, macro-F1 selects, UAR reported too) or
:class:`~speechbrain_ext.training.tasks.RegressionTask` (``1 - mean CCC``
loss, mean CCC selects). What is MSP-Podcast's own is here: its
preparation (the release's Train / Development / Test1 partitions; X and O
left out of the categorical task; ratings scaled from 1-7 to [0, 1]).

The Brain is defined in ``speechbrain_ext.training.brains`` (its shared base, ``RecipeBrain``, in
``speechbrain_ext.training.recipe_brain``).
"""

from data_prep.msp_podcast import prepare_msp_podcast
from speechbrain_ext.training.brains import UtteranceBrain
from speechbrain_ext.training.recipe import run_recipe

BRAINS = (UtteranceBrain,)  # categorical.yaml | dimensional.yaml


def prepare(hparams: dict) -> None:
    """Write the train/valid/test (Test1) manifests, and test2/test3 where the release labels them."""
    prepare_msp_podcast(
        data_folder=hparams["data_folder"],
        save_folder=hparams["prep_folder"],
        task=hparams["emotion_task"],
        allow_subset=hparams["allow_subset"],
    )


if __name__ == "__main__":
    run_recipe(prepare, BRAINS)
