"""Masked-prediction pre-training learns on the synthetic corpus (run by the suite's recipe pool, see conftest).

    python tests/cpt_learning.py IEMOCAP_CORPUS HUBERT_SOURCE OUT_FOLDER

The frame labels go through the pipeline's own k-means path
(:func:`~speechbrain_ext.methods.flea.frame_labels.extract_frames`, ``fit_kmeans``,
``assign_labels``) over a transparent frame feature: each 20 ms frame's log
energy over the surrounding 200 ms. The k-means labels of a tiny random
encoder's layers change from one frame to the next almost at random (two
consecutive frames share one of 4 labels 39 % of the time on this corpus),
so nothing could learn to predict them; real HuBERT layers are smooth, and so
is this feature. Writes ``result.json``: held-out masked-frame accuracy of
the untrained and the trained model, and the share of the most frequent label.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from data_prep.iemocap import prepare_iemocap
from speechbrain_ext.methods.flea.frame_labels import assign_labels, extract_frames, fit_kmeans
from speechbrain_ext.methods.flea.pretraining import MaskedPrediction, manifest_items
from speechbrain_ext.methods.flea.trainer import MaskedPredictionTrainer
from speechbrain_ext.utils.fileio import atomic_write_json


class SmoothedLogEnergy(nn.Module):
    """Frames of log energy over ``window`` seconds around each 20 ms frame, aligned with HuBERT's frames."""

    frame_rate, output_dim = 50.0, 1

    def __init__(self, n_frames, window: float = 0.2):
        super().__init__()
        self.n_frames, self.half = n_frames, int(window * 16000 / 2)
        self.dummy = nn.Parameter(torch.zeros(1))  # gives extract_frames a device

    def forward(self, wavs, wav_lens):
        wav = wavs[0]
        wav = (wav - wav.mean()) / (wav.std() + 1e-7)  # as HuBERT's feature extractor normalises its input
        centres = [320 * t + 200 for t in range(self.n_frames(wav.shape[0]))]
        energy = torch.stack(
            [torch.log(wav[max(0, c - self.half) : c + self.half].pow(2).mean() + 1e-8) for c in centres]
        )
        return energy[None, :, None], torch.ones(1)


def main(corpus: str, source: str, out: str) -> dict:
    out = Path(out)
    prep = prepare_iemocap(corpus, out / "prep", protocol="loso", fold=1, allow_subset=True)
    train, valid = (manifest_items([prep[split]], corpus) for split in ("train", "valid"))
    torch.manual_seed(0)
    model = MaskedPrediction(source, n_clusters=4)
    frames = extract_frames(SmoothedLogEnergy(model.n_frames), train + valid, out / "frames", progress=False)
    labels = assign_labels(fit_kmeans(out / "frames", 4, seed=0), out / "frames", out / "labels.npz")
    held_out = np.concatenate([labels[item["id"]] for item in valid])
    trainer = MaskedPredictionTrainer(
        model,
        train,
        labels,
        out / "pretraining",
        max_updates=300,
        warmup_updates=20,
        lr=0.002,
        max_batch_seconds=40.0,
        checkpoint_every=1000,
        seed=7,
        labels_frame_rate=frames["frame_rate"],
    )
    before = trainer.evaluate(valid, labels)
    trained = trainer.train(progress=False)
    after = trainer.evaluate(valid, labels)
    result = {
        "before": before,
        "after": after,
        "training": trained,
        "majority_share": float(np.bincount(held_out).max() / len(held_out)),
        "clusters": 4,
    }
    atomic_write_json(out / "result.json", result)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(*sys.argv[1:4])
