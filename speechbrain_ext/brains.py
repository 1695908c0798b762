"""Brains of the recipes: a base that owns what every recipe shares, and one small class per method family.

:class:`RecipeBrain` brings two optimisers (the SSL encoder at ``lr_ssl``, the
rest at ``lr``), annealing on the task's error, per-epoch logs, checkpoints
kept by the task's selection metric (UAR, mean Spearman, ...), the valid and
test reports written by the task, and :meth:`RecipeBrain.embed` for the
post-training stages. It runs ``hparams["model"]``
(:mod:`speechbrain_ext.models`), the same module that ``hub export`` packs.

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
``brain_class`` picks one, and :meth:`RecipeBrain.check_hparams` rejects a
configuration that does not fit the class before anything is prepared or
loaded.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import speechbrain as sb
import torch
from tqdm import tqdm

from speechbrain_ext.losses import flatten_segments, segment_nll
from speechbrain_ext.models import ModelOutput
from speechbrain_ext.reports import report_table
from speechbrain_ext.tasks import UNLABELLED

logger = logging.getLogger(__name__)
AUXILIARY_LOSSES = ("triplet_loss", "supcon_loss")


class RecipeBrain(sb.Brain):
    """Shared machinery; subclasses define the method (see the module docstring).

    Required hparams: ``task`` (:mod:`speechbrain_ext.tasks`), ``model``
    (:mod:`speechbrain_ext.models`; also in ``modules``), ``opt_class``.
    Optional: ``ssl_opt_class``, ``lr_annealing``, ``lr_annealing_ssl``,
    ``train_logger``.
    """

    REQUIRED: tuple[str, ...] = ("task", "model", "opt_class", "output_folder")
    USES: tuple[str, ...] = ()  # auxiliary losses this family reads

    @classmethod
    def check_hparams(cls, values: dict) -> None:
        """Reject a configuration that does not fit this Brain (plain YAML values, nothing built).

        Example
        -------
        >>> TripletBrain.check_hparams({"task": 1, "model": 1, "opt_class": 1, "output_folder": "x", "supcon_loss": 1})
        Traceback (most recent call last):
        ...
        ValueError: TripletBrain needs triplet_loss, loss_weighting in the hparams; supcon_loss is not read by TripletBrain (SupConBrain reads it)
        """
        problems = []
        missing = [k for k in (*cls.REQUIRED, *cls.USES) if k not in values]
        if missing:
            problems.append(f"{cls.__name__} needs {', '.join(missing)} in the hparams")
        named = [k for k in AUXILIARY_LOSSES if k in values]
        if len(named) > 1:
            problems.append(f"the hparams name {' and '.join(named)}; a method uses one auxiliary loss")
        for key in named:
            if key not in cls.USES:
                owner = {"triplet_loss": "TripletBrain or SegmentTripletBrain", "supcon_loss": "SupConBrain"}[key]
                problems.append(f"{key} is not read by {cls.__name__} ({owner} reads it)")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def task(self):
        """The recipe's task object."""
        return self.hparams.task

    def targets(self, batch) -> torch.Tensor:
        """The batch's targets (class indices or intensity rows) on the Brain's device."""
        return self.task.batch_targets(batch.target.data.to(self.device))

    @torch.no_grad()
    def evaluate_batch(self, batch, stage):
        """Evaluate and keep the decisions; a batch with unlabelled rows is scored by the task loss alone."""
        with self.evaluation_ctx:
            out = self.compute_forward(batch, stage)
            targets = self.targets(batch)
            unlabelled = (targets == UNLABELLED) if targets.dim() == 1 else torch.isnan(targets).any(dim=-1)
            loss = self.task.loss(out.scores, targets) if unlabelled.any() else self.compute_objectives(out, batch, stage)
        self._ids.extend(batch.id)
        self._targets.append(targets.detach().float().cpu().numpy())
        self._outputs.append(self.task.predictions(out.decision))
        return loss.detach().cpu()

    @torch.no_grad()
    def embed(self, dataset, loader_kwargs: dict, description: str = "embedding") -> dict:
        """Head inputs and evaluation outputs of a whole dataset (no augmentation), on the CPU.

        Returns
        -------
        dict
            ``ids``, ``embeddings`` ``(n, dim)``, ``outputs`` ``(n, n_outputs)``
            (the task's predictions of the decision) and ``targets``.
        """
        self.modules.eval()
        loader = self.make_dataloader(dataset, stage=sb.Stage.TEST, **loader_kwargs)
        ids, embeddings, outputs, targets = [], [], [], []
        for batch in tqdm(loader, desc=description, disable=bool(getattr(self, "noprogressbar", False)), leave=False):
            out = self.compute_forward(batch, sb.Stage.TEST)
            ids.extend(batch.id)
            embeddings.append(out.embeddings.float().cpu())
            outputs.append(torch.as_tensor(self.task.predictions(out.decision)))
            targets.append(self.task.batch_targets(batch.target.data).cpu())
        return {"ids": ids, "embeddings": torch.cat(embeddings), "outputs": torch.cat(outputs), "targets": torch.cat(targets)}

    def init_optimizers(self):
        """One optimiser for the trainable SSL encoder, one for the rest (learnable layer weights included)."""
        encoder = getattr(self.modules.model, "encoder", None) or torch.nn.Module()  # an early-fusion head has none
        ssl_params = [p for name, p in encoder.named_parameters() if not name.endswith("layer_weights")]
        ssl_ids = {id(p) for p in ssl_params}
        head = [p for p in self.modules.parameters() if p.requires_grad and id(p) not in ssl_ids]
        trainable_ssl = [p for p in ssl_params if p.requires_grad]
        self.optimizer = self.hparams.opt_class(head)
        self.optimizers_dict = {"model_optimizer": self.optimizer}
        self.ssl_optimizer = None
        if trainable_ssl and getattr(self.hparams, "ssl_opt_class", None) is not None:
            self.ssl_optimizer = self.hparams.ssl_opt_class(trainable_ssl)
            self.optimizers_dict["ssl_optimizer"] = self.ssl_optimizer
        if self.checkpointer is not None:
            for name, opt in self.optimizers_dict.items():
                self.checkpointer.add_recoverable(name, opt)

    def on_stage_start(self, stage, epoch=None):
        """Reset the prediction store and start the stage clock."""
        self._ids, self._targets, self._outputs = [], [], []
        self._stage_start = time.time()

    def _anneal(self, error: float) -> dict:
        lrs = {}
        for key, opt, scheduler_name in (("lr", self.optimizer, "lr_annealing"), ("lr_ssl", self.ssl_optimizer, "lr_annealing_ssl")):
            scheduler = getattr(self.hparams, scheduler_name, None)
            if opt is None or scheduler is None:
                continue
            old_lr, new_lr = scheduler(error)
            sb.nnet.schedulers.update_learning_rate(opt, new_lr)
            lrs[key] = old_lr
        return lrs

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log the epoch, anneal and checkpoint on validation; write the report of an evaluated split."""
        stats = {"loss": round(float(stage_loss), 4), "seconds": round(time.time() - self._stage_start, 1)}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        targets, outputs = np.concatenate(self._targets), np.concatenate(self._outputs)
        logger_ = getattr(self.hparams, "train_logger", None)
        if stage == sb.Stage.VALID:
            metrics = self.task.stage_metrics(targets, outputs)
            stats.update(self.task.log_stats(metrics))
            lrs = self._anneal(self.task.error(metrics))
            if logger_ is not None:
                logger_.log_stats({"epoch": epoch, **lrs}, train_stats=self.train_stats, valid_stats=stats)
            self.checkpointer.save_and_keep_only(meta=self.task.checkpoint_meta(metrics, stats["loss"]), **self.task.keep_kwargs())
            return
        split = getattr(self, "report_split", "test")
        extra = {"loss": stats["loss"]}
        if hasattr(self.hparams, "epoch_counter"):
            extra["epoch_loaded"] = self.hparams.epoch_counter.current
        self.reports[split] = report = self.task.write_report(self.hparams.output_folder, self._ids, targets, outputs, split=split, extra=extra)
        if logger_ is not None:
            logger_.log_stats({"report": split, "epoch loaded": extra.get("epoch_loaded"), **{k: report[k] for k in report.get("summary_metrics", [])}})
        print(report_table(report, split))

    def fit_and_report(self, datasets: dict, hparams: dict) -> dict:
        """Train with validation, then report valid and test with the selected checkpoint.

        Returns
        -------
        dict
            Split -> report (``valid`` and ``test``).
        """
        self.reports = {}
        self.fit(
            self.hparams.epoch_counter,
            datasets["train"],
            datasets["valid"],
            train_loader_kwargs=hparams["dataloader_options"],
            valid_loader_kwargs=hparams["valid_dataloader_options"],
        )
        for split in ("valid", "test"):
            self.report_split = split
            self.evaluate(datasets[split], test_loader_kwargs=hparams["test_dataloader_options"], **self.task.find_kwargs())
        return self.reports


class UtteranceBrain(RecipeBrain):
    """The task's loss on one output per utterance (baseline, attention pooling, Bayesian stage one)."""

    def compute_forward(self, batch, stage) -> ModelOutput:
        """Encoder, pooling, head (``hparams.model``)."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        return self.modules.model(wavs, lens)

    def compute_objectives(self, predictions: ModelOutput, batch, stage) -> torch.Tensor:
        """NLL (classification) or MSE (regression) of the utterance outputs."""
        return self.task.loss(predictions.scores, self.targets(batch))


class TripletBrain(UtteranceBrain):
    """Utterance NLL plus a triplet loss on the utterance embeddings (segment_triplet, W).

    ``L = loss_weighting(NLL, Tri)``; the triplet loss pairs utterances of
    similar frame counts (``n_frames``).
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
        batch = batch.to(self.device)
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

    The model (:class:`~speechbrain_ext.models.SegmentModel`) scores each
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
            size = self.modules.model.segments.segment_size
            flat = flatten_segments(predictions.segments, predictions.segment_mask, targets, predictions.n_frames, size)
            triplet = self.hparams.triplet_loss(*flat)
        else:
            triplet = self.hparams.triplet_loss(predictions.embeddings, targets, predictions.n_frames)
        return self.hparams.loss_weighting(self.segment_loss(predictions, targets), triplet)


class SegmentAverageBrain(UtteranceBrain):
    """The task's loss on the mean of the segments' outputs (compare2023's segment-based Emotion Share model).

    The model (:class:`~speechbrain_ext.models.SegmentModel` with
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
        """Text encoder, head (``hparams.model``, a :class:`~speechbrain_ext.models.TextModel`)."""
        return self.modules.model(batch.transcript)

    def compute_objectives(self, predictions: ModelOutput, batch, stage) -> torch.Tensor:
        """The task's loss (NLL, or MSE on intensities)."""
        return self.task.loss(predictions.scores, self.targets(batch))


class EmbeddingBrain(RecipeBrain):
    """The task's loss on a head over other runs' cached embeddings (early fusion; ``model_inputs: [features]``)."""

    REQUIRED = (*RecipeBrain.REQUIRED, "fusion_features")

    def compute_forward(self, batch, stage) -> ModelOutput:
        """Head on the concatenated embeddings (``hparams.model``, an :class:`~speechbrain_ext.models.EmbeddingModel`)."""
        return self.modules.model(batch.features.data.to(self.device))

    def compute_objectives(self, predictions: ModelOutput, batch, stage) -> torch.Tensor:
        """The task's loss (NLL, or MSE on intensities)."""
        return self.task.loss(predictions.scores, self.targets(batch))


BRAINS = (UtteranceBrain, TripletBrain, SupConBrain, SegmentBrain, SegmentTripletBrain, SegmentAverageBrain, TextBrain, EmbeddingBrain)
