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
(:mod:`~speechbrain_ext.methods.flea.frame_labels`: :func:`extract_frames` streams them to disk in shards, :func:`fit_kmeans`
fits scikit-learn's ``MiniBatchKMeans`` on a bounded sample,
:func:`assign_labels` labels every frame), or from fairseq's k-means model
file (``hubert_base_ls960_L9_km500.bin``, a joblib pickle of a scikit-learn
model).

:class:`~speechbrain_ext.methods.flea.trainer.MaskedPredictionTrainer` runs the updates: batches bucketed by
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from speechbrain_ext.data.manifests import read_manifest
from speechbrain_ext.nn.encoders import normalize_waveforms
from speechbrain_ext.utils.fileio import is_local_path

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
