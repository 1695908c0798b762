#!/usr/bin/env python3
"""RAVDESS speech emotion recognition with a fine-tuned SSL encoder.

    python recipes/RAVDESS/train.py recipes/RAVDESS/hparams/baseline.yaml --data_folder=/data/RAVDESS

Shared logic (optimisers, metrics, checkpoint selection, test report) lives in
:class:`speechbrain_ext.brain.EmotionBrain`; this file holds what is specific
to the model (forward, loss) and to the corpus (preparation, datasets).
"""

import speechbrain as sb
from speechbrain.utils.distributed import run_on_main

from data_prep.ravdess import prepare_ravdess
from speechbrain_ext.brain import EmotionBrain, fit_and_test, load_recipe_hparams
from speechbrain_ext.dataio import classification_datasets


class EmotionRecognitionBrain(EmotionBrain):
    """SSL encoder -> pooling -> linear head -> log-softmax."""

    def compute_forward(self, batch, stage):
        """Log-posteriors ``(batch, n_classes)`` of a batch of waveforms."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        frames = self.modules.ssl(wavs, lens)
        embeddings = self.hparams.pooling(frames, lens)
        return self.hparams.log_softmax(self.modules.classifier(embeddings))

    def compute_objectives(self, predictions, batch, stage):
        """NLL of the reference emotions; records evaluation predictions."""
        targets = batch.emo_encoded.data.squeeze(1)
        if stage != sb.Stage.TRAIN:
            self.record(batch.id, predictions, targets)
        return self.hparams.compute_cost(predictions, targets)


def dataio_prep(hparams):
    """Train/valid/test datasets yielding 16 kHz audio and encoded emotions."""
    manifests = {split: hparams[f"{split}_annotation"] for split in ("train", "valid", "test")}
    datasets, label_encoder = classification_datasets(
        manifests, hparams["data_folder"], hparams["label_encoder_file"], label_key="emo", sorting=hparams["sorting"], sample_rate=hparams["sample_rate"]
    )
    hparams["label_encoder"] = label_encoder
    if len(label_encoder) != hparams["n_classes"]:
        raise ValueError(f"the training split has {len(label_encoder)} classes but n_classes is {hparams['n_classes']}")
    return datasets


if __name__ == "__main__":
    hparams_file, hparams, run_opts, overrides = load_recipe_hparams()
    if not hparams["skip_prep"]:
        run_on_main(
            prepare_ravdess,
            kwargs={
                "data_folder": hparams["data_folder"],
                "save_folder": hparams["prep_folder"],
                "merge_calm": hparams["merge_calm"],
                "allow_subset": hparams["allow_subset"],
            },
        )
    datasets = dataio_prep(hparams)
    brain = EmotionRecognitionBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    fit_and_test(brain, datasets, hparams)
