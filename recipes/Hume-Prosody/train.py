#!/usr/bin/env python3
"""Hume-Prosody (ComParE 2023 Emotion Share): nine emotion intensities per clip.

    python recipes/Hume-Prosody/train.py recipes/Hume-Prosody/hparams/audio.yaml --data_folder=/data/Hume-Prosody

A multi-output regression task (sigmoid outputs, MSE, checkpoint selection
by the devel mean Spearman): the same Brains and runner as the emotion
recipes, with :class:`speechbrain_ext.training.tasks.RegressionTask` in the YAML. The
YAML's ``brain_class`` picks one of the Brains below: audio fine-tuning
(whole clips, or segments averaged), the text branch (Whisper transcripts,
BERT [CLS]) or early fusion (a head on the cached embeddings of a finished
audio run and a finished text run). The test partition of the challenge
release is masked: it is predicted into ``test_submission.csv`` and scored
nowhere; the devel report (``valid_report.json``) holds the numbers.

The Brains are defined in ``speechbrain_ext.training.brains`` (their shared base, ``RecipeBrain``, in
``speechbrain_ext.training.recipe_brain``).
"""

from data_prep.hume_prosody import prepare_hume_prosody
from speechbrain_ext.training.brains import EmbeddingBrain, SegmentAverageBrain, TextBrain, UtteranceBrain
from speechbrain_ext.training.recipe import run_recipe

BRAINS = (
    UtteranceBrain,
    SegmentAverageBrain,
    TextBrain,
    EmbeddingBrain,
)  # audio*.yaml | segments.yaml | text.yaml | early_fusion.yaml


def prepare(hparams: dict) -> None:
    """Write the train/valid (devel)/test manifests of the challenge package."""
    prepare_hume_prosody(
        data_folder=hparams["data_folder"], save_folder=hparams["prep_folder"], allow_subset=hparams["allow_subset"]
    )


if __name__ == "__main__":
    run_recipe(prepare, BRAINS)
