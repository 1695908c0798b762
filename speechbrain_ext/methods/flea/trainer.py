"""Masked-prediction pre-training runs (:func:`pretrain`) and their trainer (:class:`MaskedPredictionTrainer`).

The trainer is step-based and resumable after a kill.

Batches bucketed by duration (SpeechBrain's ``DynamicBatchSampler``), each
cropped to its shortest utterance as fairseq does (no padding), AdamW with
warm-up and linear decay, gradient clipping, a checkpoint every
``checkpoint_every`` updates; since the batch order, crops, masks and dropout
are seeded per update, a resumed run ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from speechbrain_ext.data.audio import load_audio
from speechbrain_ext.methods.flea.pretraining import (
    PRETRAINING_FILE,
    MaskedPrediction,
    base_model_of,
)
from speechbrain_ext.utils.fileio import atomic_write_json

logger = logging.getLogger(__name__)


class MaskedPredictionTrainer:
    """Step-based masked-prediction pre-training, resumable after a kill.

    Arguments
    ---------
    model : MaskedPrediction
        The model (its HuBERT is what is saved).
    items : sequence of dict
        Training utterances ``{"id", "path", "duration"}``.
    labels : dict
        Utterance id -> frame labels (from :func:`assign_labels`); their
        frame rate must be the model's (checked).
    folder : path
        Checkpoints (``checkpoint.pt``) and the log (``updates.log``).
    max_updates, warmup_updates : int
        Updates in all, and of linear warm-up (then linear decay to 0).
    lr, betas, eps, weight_decay, clip : AdamW and gradient clipping (HFLEA: 5e-4, (0.9, 0.98), 1e-6, 0.01, 10).
    max_batch_seconds : float
        Audio per batch (SpeechBrain's ``DynamicBatchSampler`` buckets by duration).
    num_buckets : int
        Duration buckets.
    checkpoint_every : int
        Save every that many updates (and at the end).
    seed : int
        Seeds the batch order, crops, masks and dropout of every update.
    device : str
        ``cpu`` or ``cuda``.
    labels_frame_rate : float
        Frames per second of the labels (their encoder's).
    """

    def __init__(
        self,
        model: MaskedPrediction,
        items: Sequence[dict],
        labels: dict,
        folder: str | os.PathLike,
        max_updates: int = 20000,
        warmup_updates: int = 4000,
        lr: float = 5e-4,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-6,
        weight_decay: float = 0.01,
        clip: float = 10.0,
        max_batch_seconds: float = 100.0,
        num_buckets: int = 10,
        checkpoint_every: int = 500,
        seed: int = 1986,
        device: str = "cpu",
        labels_frame_rate: float = 50.0,
    ):
        if abs(labels_frame_rate - model.frame_rate) > 1e-6:
            raise ValueError(
                f"the labels have {labels_frame_rate} frames per second but the model makes {model.frame_rate}"
            )
        missing = [item["id"] for item in items if item["id"] not in labels]
        if missing:
            raise ValueError(f"{len(missing)} training utterances have no frame labels (e.g. {missing[:3]})")
        self.model, self.items, self.labels, self.folder = model.to(device), list(items), labels, Path(folder)
        self.max_updates, self.warmup, self.clip, self.seed, self.device = (
            int(max_updates),
            int(warmup_updates),
            float(clip),
            int(seed),
            device,
        )
        self.checkpoint_every = int(checkpoint_every)
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.sampler_options = {"max_batch_length": float(max_batch_seconds), "num_buckets": int(num_buckets)}
        self.state = {"update": 0, "epoch": 0, "position": 0}

    def _lr_factor(self, update: int) -> float:
        if update < self.warmup:
            return (update + 1) / max(1, self.warmup)
        return max(0.0, (self.max_updates - update) / max(1, self.max_updates - self.warmup))

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The batches of an epoch (indices into ``items``): bucketed by duration, in an order fixed by the seed and epoch."""
        from speechbrain.dataio.dataset import DynamicItemDataset
        from speechbrain.dataio.sampler import DynamicBatchSampler

        data = {str(k): {"duration": item["duration"]} for k, item in enumerate(self.items)}
        sampler = DynamicBatchSampler(
            DynamicItemDataset(data),
            length_func=lambda x: x["duration"],
            shuffle=True,
            batch_ordering="random",
            seed=self.seed,
            **self.sampler_options,
        )
        sampler.set_epoch(epoch)
        return [list(batch) for batch in sampler]

    def batch(self, indices: Sequence[int], rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms cropped to the shortest of the batch (a random start on the frame grid) and their labels."""
        wavs = [load_audio(self.items[i]["path"]) for i in indices]
        hop = int(round(16000 / self.model.frame_rate))
        length = min(len(w) for w in wavs)
        n_frames = self.model.n_frames(length)
        out_wavs, out_labels = [], []
        for i, wav in zip(indices, wavs):
            start_frame = int(rng.integers(0, (len(wav) - length) // hop + 1))
            out_wavs.append(wav[start_frame * hop : start_frame * hop + length])
            labels = self.labels[self.items[i]["id"]][start_frame : start_frame + n_frames]
            if len(labels) < n_frames:  # the labels' encoder made fewer frames than this crop
                raise ValueError(
                    f"{self.items[i]['id']}: {len(self.labels[self.items[i]['id']])} frame labels for {self.model.n_frames(len(wav))} frames"
                )
            out_labels.append(torch.as_tensor(labels.astype(np.int64)))
        return torch.stack(out_wavs), torch.stack(out_labels)

    def _checkpoint_file(self) -> Path:
        return self.folder / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        """Model, optimiser, scheduler and position, written atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "state": dict(self.state),
        }
        tmp = self._checkpoint_file().with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self._checkpoint_file())

    def load_checkpoint(self) -> bool:
        """Resume from the last checkpoint, if any."""
        if not self._checkpoint_file().is_file():
            return False
        saved = torch.load(self._checkpoint_file(), map_location=self.device, weights_only=False)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.state = dict(saved["state"])
        return True

    def train(self, progress: bool = True) -> dict:
        """Run the updates left; return the state (``update``) and the mean loss and accuracy of the last 50 updates."""
        resumed = self.load_checkpoint()
        if resumed:
            logger.info("resuming masked-prediction pre-training at update %d", self.state["update"])
        self.folder.mkdir(parents=True, exist_ok=True)
        self.model.train()
        recent = []
        bar = tqdm(
            total=self.max_updates,
            initial=self.state["update"],
            desc="masked prediction",
            unit="update",
            disable=not progress,
        )
        with open(self.folder / "updates.log", "a", encoding="utf-8") as log:
            while self.state["update"] < self.max_updates:
                batches = self.epoch_batches(self.state["epoch"])
                while self.state["position"] < len(batches) and self.state["update"] < self.max_updates:
                    update = self.state["update"]
                    rng = np.random.default_rng([self.seed, update])
                    torch.manual_seed(self.seed * 100003 + update)  # dropout of this update
                    wavs, labels = self.batch(batches[self.state["position"]], rng)
                    mask = self.model.mask(wavs.shape[1], len(wavs), rng)
                    out = self.model(wavs.to(self.device), labels, mask)
                    self.optimizer.zero_grad()
                    out.loss.backward()
                    nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.state["update"], self.state["position"] = update + 1, self.state["position"] + 1
                    recent = [*recent[-49:], (float(out.masked_ce), float(out.accuracy))]
                    log.write(
                        f"update {update + 1} epoch {self.state['epoch']} loss {float(out.loss):.4f} masked_ce {float(out.masked_ce):.4f} acc {float(out.accuracy):.4f} lr {self.scheduler.get_last_lr()[0]:.3g}\n"
                    )
                    log.flush()
                    if self.state["update"] % self.checkpoint_every == 0 or self.state["update"] == self.max_updates:
                        self.save_checkpoint()
                    bar.update(1)
                if self.state["position"] >= len(batches):
                    self.state.update(epoch=self.state["epoch"] + 1, position=0)
        bar.close()
        means = np.mean(recent, axis=0) if recent else (float("nan"), float("nan"))
        return {**self.state, "masked_ce": float(means[0]), "accuracy": float(means[1])}

    @torch.no_grad()
    def evaluate(self, items: Sequence[dict], labels: dict, seed: int = 0) -> dict:
        """Masked-frame accuracy and cross-entropy on held-out utterances (one at a time; masks drawn from ``seed``)."""
        self.model.eval()
        rng = np.random.default_rng(seed)
        correct = total = ce = 0.0
        for item in items:
            wav = load_audio(item["path"]).unsqueeze(0)
            n = self.model.n_frames(wav.shape[1])
            target = torch.as_tensor(labels[item["id"]][:n].astype(np.int64)).unsqueeze(0)
            mask = self.model.mask(wav.shape[1], 1, rng)
            out = self.model(wav.to(self.device), target, mask)
            count = int(mask.sum())
            correct += float(out.accuracy) * count
            ce += float(out.masked_ce) * count
            total += count
        self.model.train()
        return {"accuracy": correct / max(total, 1), "masked_ce": ce / max(total, 1), "frames": int(total)}

    def save_pretrained(self, out: str | os.PathLike, record: dict) -> Path:
        """The pre-trained HuBERT as a Hugging Face folder (with its feature extractor and ``pretraining.json``), written atomically."""
        from transformers import AutoFeatureExtractor

        out = Path(out)
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.hubert.save_pretrained(tmp)
        AutoFeatureExtractor.from_pretrained(self.model.source).save_pretrained(tmp)
        atomic_write_json(
            tmp / PRETRAINING_FILE,
            {"base_model": base_model_of(self.model.source), "started_from": self.model.source, **record},
        )
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
        return out


def pretrain(
    source: str,
    items: Sequence[dict],
    labels: dict,
    n_clusters: int,
    folder: str | os.PathLike,
    out: str | os.PathLike,
    labels_frame_rate: float,
    valid_items: Sequence[dict] = (),
    valid_labels: dict | None = None,
    model_options: dict | None = None,
    trainer_options: dict | None = None,
    progress: bool = True,
    record: dict | None = None,
) -> dict:
    """Masked-prediction pre-training from ``source`` on the frame labels; the result saved as a HF folder at ``out``.

    Returns
    -------
    dict
        ``updates``, the training loss and accuracy of the last updates, and
        the held-out masked-frame accuracy (with ``valid_items``).
    """
    start = time.time()
    torch.manual_seed(int((trainer_options or {}).get("seed", 1986)))  # the new head's initial weights
    model = MaskedPrediction(source, n_clusters, **(model_options or {}))
    trainer = MaskedPredictionTrainer(
        model, items, labels, folder, labels_frame_rate=labels_frame_rate, **(trainer_options or {})
    )
    result = trainer.train(progress=progress)
    if valid_items:
        result["held_out"] = trainer.evaluate(valid_items, valid_labels)
    result["seconds"] = round(time.time() - start, 1)
    trainer.save_pretrained(out, {"n_clusters": n_clusters, **(record or {}), "result": result})
    return result
