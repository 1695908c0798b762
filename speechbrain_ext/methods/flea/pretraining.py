"""HuBERT masked-prediction pre-training on frame labels (flea_hubert's TAPT and CPT-HuBERT).

HuBERT learns by predicting, for masked frames, the cluster of each frame
(:class:`MaskedPrediction`): the last layer is projected to 256 dimensions
and compared by cosine similarity, at temperature 0.1, with one learned
embedding per cluster; the loss is the cross-entropy over masked frames only
(``alpha = 1``, the paper's and official HuBERT's choice), plus fairseq's
feature penalty (the mean square of the convolutional features, weight 10;
constant while the front-end is frozen, as here). transformers has no
``HubertForPreTraining``: ``HubertModel.forward`` takes ``mask_time_indices``
and replaces those frames by its learned ``masked_spec_embed``.

The frame labels come from k-means over one layer's frames
(:func:`extract_frames` streams them to disk in shards, :func:`fit_kmeans`
fits scikit-learn's ``MiniBatchKMeans`` on a bounded sample,
:func:`assign_labels` labels every frame), or from fairseq's k-means model
file (``hubert_base_ls960_L9_km500.bin``, a joblib pickle of a scikit-learn
model).

:class:`MaskedPredictionTrainer` runs the updates: batches bucketed by
duration (SpeechBrain's ``DynamicBatchSampler``), each cropped to its
shortest utterance as fairseq does (no padding), AdamW with warm-up and
linear decay, gradient clipping, a checkpoint every ``checkpoint_every``
updates; a killed run resumes from its last checkpoint and, since the batch
order, crops, masks and dropout are seeded per update, ends with the same
weights as an uninterrupted one. The result is a Hugging Face folder that
``HubertModel.from_pretrained`` and :class:`~speechbrain_ext.nn.encoders.SSLEncoder`
load, with ``pretraining.json`` naming the hub model it started from.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from speechbrain_ext.data.audio import load_audio
from speechbrain_ext.data.manifests import read_manifest
from speechbrain_ext.nn.encoders import normalize_waveforms
from speechbrain_ext.utils.fileio import atomic_write_json, is_local_path

logger = logging.getLogger(__name__)
PRETRAINING_FILE = "pretraining.json"


def manifest_items(manifests: Sequence[str | os.PathLike], data_folder: str | os.PathLike) -> list[dict]:
    """``{"id", "path", "duration"}`` of every entry of the manifests, in order."""
    items = []
    for manifest in manifests:
        for utt, entry in read_manifest(manifest, data_folder).items():
            items.append({"id": utt, "path": str(entry["wav"]), "duration": float(entry.get("duration", 0.0))})
    return items


def base_model_of(source: str | os.PathLike) -> str | None:
    """The hub id a model started from: ``source`` itself if it is one, else what its folder's ``pretraining.json`` records (or None).

    Example
    -------
    >>> base_model_of("facebook/hubert-base-ls960"), base_model_of("/nowhere/my_hubert")
    ('facebook/hubert-base-ls960', None)
    """
    if not is_local_path(source):
        return str(source)
    record = Path(str(source)) / PRETRAINING_FILE
    return json.loads(record.read_text()).get("base_model") if record.is_file() else None


# ----------------------------------------------------------------------------- frames and k-means
@torch.no_grad()
def extract_frames(
    encoder, items: Sequence[dict], folder: str | os.PathLike, shard_frames: int = 20000, progress: bool = True
) -> dict:
    """Write one layer's frames of every item to ``folder`` in float16 shards; resumable shard by shard.

    Arguments
    ---------
    encoder : SSLEncoder
        Returns the chosen layer's frames (one utterance at a time, so nothing depends on padding).
    items : sequence of dict
        ``{"id", "path"}`` (:func:`manifest_items`).
    folder : path
        Output: ``shard_<k>.npy`` and ``index.json`` (per utterance: shard, offset, frames).
    shard_frames : int
        Frames per shard (memory stays one shard's).

    Returns
    -------
    dict
        The index.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index_file = folder / "index.json"
    index = json.loads(index_file.read_text()) if index_file.is_file() else {"utts": [], "complete": False}
    if index["complete"]:
        return index
    done = {u["id"] for u in index["utts"]}
    device = next(encoder.parameters()).device
    encoder.eval()
    pending, buffered, shard = [], 0, len({u["shard"] for u in index["utts"]})
    todo = [item for item in items if item["id"] not in done]
    for item in tqdm(todo, desc="frames", unit="utt", disable=not progress):
        wav = load_audio(item["path"]).to(device)
        frames, _ = encoder(wav.unsqueeze(0), torch.ones(1, device=device))
        pending.append((item, frames[0].float().cpu().numpy().astype(np.float16)))
        buffered += frames.shape[1]
        if buffered >= shard_frames:
            _flush_shard(folder, index, pending, shard)
            pending, buffered, shard = [], 0, shard + 1
    if pending:
        _flush_shard(folder, index, pending, shard)
    index.update(complete=True, dim=int(encoder.output_dim), frame_rate=float(encoder.frame_rate))
    atomic_write_json(index_file, index)
    return index


def _flush_shard(folder: Path, index: dict, pending: list, shard: int) -> None:
    """Write a shard atomically, then record its utterances in the index (a kill between the two redoes the shard)."""
    offset, rows = 0, []
    for item, frames in pending:
        rows.append(
            {"id": item["id"], "path": item["path"], "shard": shard, "offset": offset, "frames": int(len(frames))}
        )
        offset += len(frames)
    tmp = folder / f"shard_{shard}.tmp.npy"
    np.save(tmp, np.concatenate([frames for _, frames in pending]))
    os.replace(tmp, folder / f"shard_{shard}.npy")
    index["utts"].extend(rows)
    atomic_write_json(folder / "index.json", index)


def iter_shards(folder: str | os.PathLike):
    """``(utterance rows, frames (n, dim) float32)`` of each shard of :func:`extract_frames`."""
    folder = Path(folder)
    index = json.loads((folder / "index.json").read_text())
    for shard in sorted({u["shard"] for u in index["utts"]}):
        rows = [u for u in index["utts"] if u["shard"] == shard]
        yield rows, np.load(folder / f"shard_{shard}.npy").astype(np.float32)


def fit_kmeans(
    folder: str | os.PathLike,
    n_clusters: int,
    seed: int = 0,
    max_fit_frames: int = 250_000,
    batch_size: int = 10_000,
    n_init: int = 20,
    max_iter: int = 100,
):
    """scikit-learn ``MiniBatchKMeans`` (k-means++, as the HFLEA code) on a uniform sample of at most ``max_fit_frames`` stored frames.

    The sample keeps memory bounded on a full corpus (fairseq's HuBERT
    recipe fits on a percentage of the frames likewise); every frame is
    labelled afterwards by :func:`assign_labels`.
    """
    from sklearn.cluster import MiniBatchKMeans

    index = json.loads((Path(folder) / "index.json").read_text())
    total = sum(u["frames"] for u in index["utts"])
    keep = min(1.0, max_fit_frames / max(total, 1))
    rng = np.random.default_rng(seed)
    sample = np.concatenate(
        [frames[rng.random(len(frames)) < keep] if keep < 1.0 else frames for _, frames in iter_shards(folder)]
    )
    if len(sample) < n_clusters:
        raise ValueError(f"{folder}: {len(sample)} frames cannot make {n_clusters} clusters")
    kmeans = MiniBatchKMeans(
        n_clusters=n_clusters,
        init="k-means++",
        batch_size=batch_size,
        n_init=n_init,
        max_iter=max_iter,
        random_state=seed,
    )
    return kmeans.fit(sample)


def assign_labels(kmeans, folder: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Label every stored frame with its cluster; write ``out`` (``.npz``: one int16 array per utterance) atomically.

    Returns
    -------
    dict
        Utterance id -> labels.
    """
    labels = {}
    for rows, frames in iter_shards(folder):
        predicted = kmeans.predict(frames).astype(np.int16)
        for row in rows:
            labels[row["id"]] = predicted[row["offset"] : row["offset"] + row["frames"]]
    out = Path(out)
    tmp = out.with_name(out.stem + ".tmp.npz")
    np.savez(tmp, **labels)
    os.replace(tmp, out)
    return labels


def load_labels(path: str | os.PathLike) -> dict:
    """Utterance id -> frame labels, from :func:`assign_labels`'s file."""
    with np.load(path) as data:
        return {utt: data[utt] for utt in data.files}


# ----------------------------------------------------------------------------- the model
class MaskedPrediction(nn.Module):
    """HuBERT with the masked-prediction head: projection to ``proj_dim``, cosine similarity with cluster embeddings.

    Arguments
    ---------
    source : str
        Hub id or folder of the HuBERT to start from (``facebook/hubert-base-ls960``).
    n_clusters : int
        Number of label classes.
    proj_dim : int
        Projection size (256 in HuBERT).
    temperature : float
        Logit temperature (0.1).
    mask_prob, mask_length : float, int
        Masking (HuBERT: spans of 10 frames, 80 % of the starts).
    feature_penalty_weight : float
        Weight of fairseq's feature penalty (10).
    freeze_feature_encoder : bool
        Keep the convolutional front-end fixed.
    cache_dir : str, optional
        Download folder.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ext.testing.tiny_models import write_tiny_ssl
    >>> model = MaskedPrediction(write_tiny_ssl(tempfile.mkdtemp(), "hubert"), n_clusters=5)
    >>> wavs = torch.randn(2, 16000)
    >>> mask = model.mask(wavs.shape[1], 2, np.random.default_rng(0))
    >>> out = model(wavs, torch.randint(0, 5, mask.shape), mask)
    >>> out.logits.shape[0] == int(mask.sum()), round(float(out.feature_penalty), 3) > 0
    (True, True)
    """

    def __init__(
        self,
        source: str,
        n_clusters: int,
        proj_dim: int = 256,
        temperature: float = 0.1,
        mask_prob: float = 0.8,
        mask_length: int = 10,
        feature_penalty_weight: float = 10.0,
        freeze_feature_encoder: bool = True,
        cache_dir: str | None = None,
    ):
        super().__init__()
        from transformers import AutoConfig, AutoFeatureExtractor, HubertModel

        config = AutoConfig.from_pretrained(source, cache_dir=cache_dir)
        if config.model_type != "hubert":
            raise ValueError(
                f"{source}: masked-prediction pre-training needs a HuBERT model, this is a {config.model_type!r} one"
            )
        config.mask_time_prob, config.mask_time_length = (
            float(mask_prob),
            int(mask_length),
        )  # masked_spec_embed exists only when mask_time_prob > 0
        self.hubert = HubertModel.from_pretrained(source, config=config, cache_dir=cache_dir)
        self.normalize = bool(
            getattr(AutoFeatureExtractor.from_pretrained(source, cache_dir=cache_dir), "do_normalize", False)
        )
        self.final_proj = nn.Linear(config.hidden_size, proj_dim)
        self.label_embeddings = nn.Parameter(torch.empty(n_clusters, proj_dim).uniform_())
        self.temperature, self.feature_penalty_weight = float(temperature), float(feature_penalty_weight)
        self.mask_prob, self.mask_length = float(mask_prob), int(mask_length)
        self.source = str(source)
        if freeze_feature_encoder:
            self.hubert.feature_extractor._freeze_parameters()
        self._features = None
        self.hubert.feature_extractor.register_forward_hook(
            lambda module, inputs, output: setattr(self, "_features", output)
        )

    @property
    def frame_rate(self) -> float:
        """Frames per second of 16 kHz audio."""
        return 16000 / math.prod(int(s) for s in self.hubert.config.conv_stride)

    def n_frames(self, n_samples: int) -> int:
        """Frames the front-end makes of ``n_samples`` samples."""
        return int(self.hubert._get_feat_extract_output_lengths(torch.tensor(n_samples)))

    def mask(self, n_samples: int, batch: int, rng: np.random.Generator) -> torch.Tensor:
        """``(batch, frames)`` boolean mask of HuBERT's span masking, drawn from ``rng``."""
        from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices

        state = np.random.get_state()  # transformers draws from numpy's global generator
        np.random.seed(int(rng.integers(2**31)))
        try:
            mask = _compute_mask_indices(
                (batch, self.n_frames(n_samples)), self.mask_prob, self.mask_length, min_masks=2
            )
        finally:
            np.random.set_state(state)
        return torch.from_numpy(mask)

    def forward(self, wavs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> MaskedPredictionOutput:
        """Loss and accuracy of predicting ``labels`` ``(batch, frames)`` on the ``mask``-ed frames of equal-length ``wavs``."""
        if self.normalize:  # as SSLEncoder normalises fine-tuning input
            wavs = normalize_waveforms(wavs, torch.full((len(wavs),), wavs.shape[1], device=wavs.device))
        mask = mask.to(wavs.device)
        hidden = self.hubert(wavs, mask_time_indices=mask).last_hidden_state
        logits = self.logits(hidden[mask])
        targets = labels.to(wavs.device)[mask].long()
        ce = nn.functional.cross_entropy(logits, targets)
        penalty = self._features.float().pow(2).mean()
        accuracy = (logits.argmax(dim=-1) == targets).float().mean()
        return MaskedPredictionOutput(
            ce + self.feature_penalty_weight * penalty, ce, penalty, accuracy, logits, targets
        )

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of projected frames ``(n, hidden)`` with every cluster embedding, over the temperature."""
        projected = self.final_proj(hidden)
        return (
            nn.functional.cosine_similarity(projected.unsqueeze(1), self.label_embeddings.unsqueeze(0), dim=-1)
            / self.temperature
        )


@dataclass
class MaskedPredictionOutput:
    """What :class:`MaskedPrediction` computes for a batch."""

    loss: torch.Tensor  # masked cross-entropy + weighted feature penalty
    masked_ce: torch.Tensor
    feature_penalty: torch.Tensor
    accuracy: torch.Tensor  # on the masked frames
    logits: torch.Tensor  # (masked frames, clusters)
    targets: torch.Tensor  # (masked frames,)


# ----------------------------------------------------------------------------- the trainer
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
