#!/usr/bin/env python3
"""HealthCall30 (ComParE 2023 Requests): what a French call-centre caller asks for, and whether they complain.

    python recipes/HealthCall30/train.py recipes/HealthCall30/hparams/<method>.yaml --data_folder=/data/HealthCall30

HC-Requests (``affil`` / ``presta``) and HC-Complaints (``no`` / ``yes``)
are two binary tasks (``--target=request|complaint``), or one joint 4-class
task whose decision is split back into the two (``audio_4class.yaml``). The
YAML's ``brain_class`` picks one of the Brains below: audio fine-tuning
(wav2vec2-large-xlsr-53-french), the text branch (Whisper transcripts,
CamemBERT [CLS]) or early fusion (a head on the cached embeddings of a
finished audio run and a finished text run). Late fusion and majority votes
of finished runs: ``python -m speechbrain_ext.fuse``. The challenge's test
labels are masked: the test split is predicted into ``test_submission.csv``
(``filename,prediction``) and scored nowhere; the devel report holds the numbers.

The Brains are defined in ``speechbrain_ext.training.brains`` (their shared base, ``RecipeBrain``, in
``speechbrain_ext.training.recipe_brain``).
"""

from data_prep.healthcall30 import prepare_healthcall30
from speechbrain_ext.training.brains import EmbeddingBrain, TextBrain, UtteranceBrain
from speechbrain_ext.training.recipe import run_recipe

BRAINS = (UtteranceBrain, TextBrain, EmbeddingBrain)  # audio*.yaml | text*.yaml | early_fusion.yaml


def prepare(hparams: dict) -> None:
    """Write the train/valid (devel)/test manifests of the challenge package."""
    prepare_healthcall30(
        data_folder=hparams["data_folder"], save_folder=hparams["prep_folder"], allow_subset=hparams["allow_subset"]
    )


if __name__ == "__main__":
    run_recipe(prepare, BRAINS)
