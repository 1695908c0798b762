"""The methods' Brains: one small class per method family on top of :class:`~speechbrain_ext.training.recipe_brain.RecipeBrain`.

The families differ only in ``compute_forward``/``compute_objectives``:

============================  =======================================================================
:class:`UtteranceBrain`       task loss on the utterance output (baseline, attention, bayes)
:class:`TripletBrain`         + triplet loss on utterance embeddings (segment_triplet W)
:class:`SupConBrain`          augmented copies + supervised contrastive loss (supcon_knn)
:class:`SegmentBrain`         + NLL of every segment, most-confident decision (segment_triplet eq. 3)
:class:`SegmentTripletBrain`  segments + triplet on segments (S) or utterances (W)
:class:`SegmentAverageBrain`  task loss on the mean of the segments' outputs (compare2023 segments)
:class:`TextBrain`            task loss on transcripts (Whisper + BERT/CamemBERT, compare2023)
:class:`EmbeddingBrain`       task loss on other runs' cached embeddings (early fusion, compare2023)
============================  =======================================================================

A recipe's ``train.py`` names the Brains it offers; its YAML's
``brain_class`` picks one, and :meth:`~speechbrain_ext.training.recipe_brain.RecipeBrain.check_hparams` rejects a
configuration that does not fit the class before anything is prepared or
loaded.
"""

from __future__ import annotations

import speechbrain as sb
import torch

from speechbrain_ext.nn.losses import flatten_segments, segment_nll
from speechbrain_ext.nn.models import ModelOutput
from speechbrain_ext.training.recipe_brain import RecipeBrain


class UtteranceBrain(RecipeBrain):
    """The task's loss on one output per utterance (baseline, attention pooling, Bayesian stage one)."""

    def compute_forward(self, batch, stage) -> ModelOutput:
        """Encoder, pooling, head (``hparams.model``)."""
        batch = batch.to(self.device, non_blocking=True)  # from pinned memory on a GPU: overlaps the step
        wavs, lens = batch.sig
        return self.modules.model(wavs, lens)

    def compute_objectives(self, predictions: ModelOutput, batch, stage) -> torch.Tensor:
        """NLL (classification) or MSE (regression) of the utterance outputs."""
        return self.task.loss(predictions.scores, self.targets(batch))


class TripletBrain(UtteranceBrain):
    """Utterance NLL plus a triplet loss on the utterance embeddings (segment_triplet, W).

    ``L = loss_weighting(NLL, Tri)``; the triplet loss pairs utterances of
    similar frame counts (``n_frames``). A configuration that does not fit is
    refused before anything is prepared:

    Example
    -------
    >>> TripletBrain.check_hparams({"task": 1, "model": 1, "opt_class": 1, "output_folder": "x", "supcon_loss": 1})
    Traceback (most recent call last):
    ...
    ValueError: TripletBrain needs triplet_loss, loss_weighting in the hparams; supcon_loss is not read by TripletBrain (SupConBrain reads it)
    """

    USES = ("triplet_loss", "loss_weighting")

    def compute_objectives(self, predictions: ModelOutput, batch, stage) -> torch.Tensor:
        """``(1 - a) NLL + a Tri`` (or their sum)."""
        targets = self.targets(batch)
        triplet = self.hparams.triplet_loss(predictions.embeddings, targets, predictions.n_frames)
        return self.hparams.loss_weighting(self.task.loss(predictions.scores, targets), triplet)


class SupConBrain(UtteranceBrain):
    """Cross-entropy plus supervised contrastive loss over each batch and its augmented copies (supcon_knn).

    In training ``wav_augment`` (SpeechBrain's ``Augmenter``) appends the
    augmented copies to the batch; both views enter both losses.
    """

    USES = ("supcon_loss", "wav_augment", "loss_weighting")

    def compute_forward(self, batch, stage) -> ModelOutput:
        """The model on the batch, with its augmented copies in training."""
        batch = batch.to(self.device, non_blocking=True)  # from pinned memory on a GPU: overlaps the step
        wavs, lens = batch.sig
        if stage == sb.Stage.TRAIN:
            wavs, lens = self.hparams.wav_augment(wavs, lens)
        return self.modules.model(wavs, lens)

    def compute_objectives(self, predictions: ModelOutput, batch, stage) -> torch.Tensor:
        """``(1 - lambda) CE + lambda SupCon`` over all views."""
        targets = self.targets(batch)
        if predictions.scores.shape[0] != targets.shape[0]:
            targets = self.hparams.wav_augment.replicate_labels(targets)
        supcon = self.hparams.supcon_loss(predictions.embeddings, targets)
        return self.hparams.loss_weighting(self.task.loss(predictions.scores, targets), supcon)


class SegmentBrain(UtteranceBrain):
    """Segment-based processing (segment_triplet eq. 3): utterance NLL plus the NLL of every segment.

    The model (:class:`~speechbrain_ext.nn.models.SegmentModel`) scores each
    overlapping segment with the shared head; evaluation takes its segment
    decision (the most confident segment).
    """

    def segment_loss(self, predictions: ModelOutput, targets: torch.Tensor) -> torch.Tensor:
        """``NLL(utterance) + NLL(segments)`` (``segment_nll_reduction``: sum per utterance, or mean)."""
        reduction = getattr(self.hparams, "segment_nll_reduction", "mean")
        nll = segment_nll(predictions.segment_scores, predictions.segment_mask, targets, reduction)
        return self.task.loss(predictions.scores, targets) + nll

    def compute_objectives(self, predictions: ModelOutput, batch, stage) -> torch.Tensor:
        """Eq. 3 of segment_triplet."""
        return self.segment_loss(predictions, self.targets(batch))


class SegmentTripletBrain(SegmentBrain):
    """Segments plus a triplet loss on the segments (S) or on whole utterances (W) (segment_triplet)."""

    USES = ("triplet_loss", "loss_weighting", "triplet_on")

    @classmethod
    def check_hparams(cls, values: dict) -> None:
        """Also: ``triplet_on`` is ``segments`` or ``utterance``."""
        super().check_hparams(values)
        if values["triplet_on"] not in ("segments", "utterance"):
            raise ValueError(f"triplet_on must be 'segments' or 'utterance', got {values['triplet_on']!r}")

    def compute_objectives(self, predictions: ModelOutput, batch, stage) -> torch.Tensor:
        """``loss_weighting(eq. 3, Tri)``; segments pair with segments of similar length."""
        targets = self.targets(batch)
        if self.hparams.triplet_on == "segments":
            size = self.model.segments.segment_size
            flat = flatten_segments(predictions.segments, predictions.segment_mask, targets, predictions.n_frames, size)
            triplet = self.hparams.triplet_loss(*flat)
        else:
            triplet = self.hparams.triplet_loss(predictions.embeddings, targets, predictions.n_frames)
        return self.hparams.loss_weighting(self.segment_loss(predictions, targets), triplet)


class SegmentAverageBrain(UtteranceBrain):
    """The task's loss on the mean of the segments' outputs (compare2023's segment-based Emotion Share model).

    The model (:class:`~speechbrain_ext.nn.models.SegmentModel` with
    ``decision: mean_outputs``) scores every window with the shared head;
    the utterance's intensities are the average over its windows, and that
    average is what the loss, the evaluation and inference see.
    """

    def compute_objectives(self, predictions: ModelOutput, batch, stage) -> torch.Tensor:
        """MSE (or NLL) of the averaged segment outputs."""
        return self.task.loss(predictions.decision, self.targets(batch))


class TextBrain(RecipeBrain):
    """The task's loss on one output per transcript (the text branch; ``model_inputs: [transcript]``)."""

    REQUIRED = (*RecipeBrain.REQUIRED, "transcribe")

    def compute_forward(self, batch, stage) -> ModelOutput:
        """Text encoder, head (``hparams.model``, a :class:`~speechbrain_ext.nn.models.TextModel`)."""
        return self.modules.model(batch.transcript)

    def compute_objectives(self, predictions: ModelOutput, batch, stage) -> torch.Tensor:
        """The task's loss (NLL, or MSE on intensities)."""
        return self.task.loss(predictions.scores, self.targets(batch))


class EmbeddingBrain(RecipeBrain):
    """The task's loss on a head over other runs' cached embeddings (early fusion; ``model_inputs: [features]``)."""

    REQUIRED = (*RecipeBrain.REQUIRED, "fusion_features")

    def compute_forward(self, batch, stage) -> ModelOutput:
        """Head on the concatenated embeddings (``hparams.model``, an :class:`~speechbrain_ext.nn.models.EmbeddingModel`)."""
        return self.modules.model(batch.features.data.to(self.device, non_blocking=True))

    def compute_objectives(self, predictions: ModelOutput, batch, stage) -> torch.Tensor:
        """The task's loss (NLL, or MSE on intensities)."""
        return self.task.loss(predictions.scores, self.targets(batch))
