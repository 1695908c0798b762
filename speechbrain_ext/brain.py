"""The Brain of every classification recipe; the YAML picks the method.

Each corpus's ``train.py`` only prepares its data and calls
:func:`speechbrain_ext.recipe.run_recipe`; the methods of the papers are
combinations of hparams that :class:`EmotionBrain` reads:

- ``pooling``: utterance embedding (masked mean, or attention pooling);
- ``segment_pooling`` (optional, segment_triplet): per-segment posteriors, the
  loss adds the segment NLL to the utterance NLL (eq. 3) and evaluation takes
  ``segment_decision`` (the most confident segment);
- ``triplet_loss`` (optional) on ``triplet_on: utterance | segments``, mixed
  with the NLL by ``loss_weighting`` (``(1 - a) NLL + a Tri`` or the plain sum);
- ``supcon_loss`` with ``wav_augment`` (optional, supcon_knn): every batch is
  encoded with its augmented copy and ``(1 - lambda) CE + lambda SupCon`` is
  minimised over both views.

It also brings two optimisers (SSL encoder at ``lr_ssl``, the rest at ``lr``,
both annealed on the validation error 1 - UAR), per-epoch logs, checkpoints
kept by validation UAR, the test report, and :meth:`EmotionBrain.embed` for the
kNN and Bayesian stages.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass

import numpy as np
import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from tqdm import tqdm

from speechbrain_ext.losses import flatten_segments, segment_nll
from speechbrain_ext.metrics import classification_metrics
from speechbrain_ext.pooling import frame_counts, segment_decision
from speechbrain_ext.reports import metrics_table, write_classification_report

logger = logging.getLogger(__name__)


@dataclass
class ForwardOutput:
    """What :meth:`EmotionBrain.compute_forward` returns (batch = originals plus augmented copies)."""

    embeddings: torch.Tensor  # (batch, dim) pooled utterance embeddings
    log_probs: torch.Tensor  # (batch, n_classes) utterance log-posteriors
    n_frames: torch.Tensor  # (batch,) real SSL frames
    segments: torch.Tensor | None = None  # (batch, windows, dim)
    segment_mask: torch.Tensor | None = None  # (batch, windows)
    segment_log_probs: torch.Tensor | None = None  # (batch, windows, n_classes)

    def decision(self, mode: str = "most_confident") -> torch.Tensor:
        """Utterance log-posteriors used for evaluation."""
        if self.segment_log_probs is None:
            return self.log_probs
        return segment_decision(self.segment_log_probs, self.segment_mask, mode)


class EmotionBrain(sb.Brain):
    """Classification Brain: SSL encoder, pooling, head and the losses the hparams name.

    Required hparams: ``pooling``, ``log_softmax``, ``compute_cost``,
    ``opt_class``, ``label_encoder`` (set after data preparation); modules
    ``ssl`` (returning ``(frames, frame_lens)``) and ``classifier``. Optional:
    ``segment_pooling``, ``segment_decision``, ``segment_nll_reduction``,
    ``triplet_loss``, ``triplet_on``, ``supcon_loss``, ``wav_augment``,
    ``loss_weighting``, ``ssl_opt_class``, ``lr_annealing``,
    ``lr_annealing_ssl``, ``train_logger``, ``report_folder`` (default
    ``output_folder``) and ``label_key`` (default ``emo``).
    """

    def _opt(self, name, default=None):
        return getattr(self.hparams, name, default)

    def compute_forward(self, batch, stage) -> ForwardOutput:
        """Encode the batch (and, in training with ``wav_augment``, its augmented copy)."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        augment = self._opt("wav_augment")
        if stage == sb.Stage.TRAIN and augment is not None:
            wavs, lens = augment(wavs, lens)
        frames, frame_lens = self.modules.ssl(wavs, lens)
        embeddings = self.hparams.pooling(frames, frame_lens)
        out = ForwardOutput(embeddings, self.hparams.log_softmax(self.modules.classifier(embeddings)), frame_counts(frame_lens, frames.shape[1]))
        segment_pooling = self._opt("segment_pooling")
        if segment_pooling is not None:
            out.segments, out.segment_mask = segment_pooling(frames, frame_lens)
            out.segment_log_probs = self.hparams.log_softmax(self.modules.classifier(out.segments))
        return out

    def compute_objectives(self, predictions: ForwardOutput, batch, stage):
        """NLL (+ segment NLL) (+ triplet or SupCon, weighted); records evaluation decisions."""
        targets = getattr(batch, f"{self._opt('label_key', 'emo')}_encoded").data.reshape(-1)
        augment = self._opt("wav_augment")
        if stage == sb.Stage.TRAIN and augment is not None and predictions.log_probs.shape[0] != targets.shape[0]:
            targets = augment.replicate_labels(targets)
        loss = self.hparams.compute_cost(predictions.log_probs, targets)
        if predictions.segment_log_probs is not None:
            reduction = self._opt("segment_nll_reduction", "mean")
            loss = loss + segment_nll(predictions.segment_log_probs, predictions.segment_mask, targets, reduction)
        aux = self._auxiliary_loss(predictions, targets)
        if aux is not None:
            loss = self.hparams.loss_weighting(loss, aux)
        if stage != sb.Stage.TRAIN:
            self.record(batch.id, predictions.decision(self._opt("segment_decision", "most_confident")), targets)
        return loss

    def _auxiliary_loss(self, predictions: ForwardOutput, targets: torch.Tensor) -> torch.Tensor | None:
        triplet, supcon = self._opt("triplet_loss"), self._opt("supcon_loss")
        if triplet is not None and supcon is not None:
            raise ValueError("the hparams name both triplet_loss and supcon_loss; a method uses one auxiliary loss")
        if triplet is not None:
            triplet_on = self._opt("triplet_on", "utterance")
            if triplet_on not in ("segments", "utterance"):
                raise ValueError(f"triplet_on must be 'segments' or 'utterance', got {triplet_on!r}")
            if triplet_on == "segments":
                if predictions.segments is None:
                    raise ValueError("triplet_on: segments needs a segment_pooling in the hparams")
                size = self.hparams.segment_pooling.segment_size
                emb, labels, lengths, groups = flatten_segments(predictions.segments, predictions.segment_mask, targets, predictions.n_frames, size)
                return triplet(emb, labels, lengths, groups)
            return triplet(predictions.embeddings, targets, predictions.n_frames)
        if supcon is not None:
            return supcon(predictions.embeddings, targets)
        return None

    @torch.no_grad()
    def embed(self, dataset, loader_kwargs: dict, description: str = "embedding") -> dict:
        """Utterance embeddings and evaluation log-posteriors of a whole dataset (no augmentation).

        Returns
        -------
        dict
            ``ids`` (list), ``embeddings`` ``(n, dim)``, ``log_probs`` ``(n, n_classes)``
            (the evaluation decision) and ``targets`` ``(n,)``, on the CPU.
        """
        self.modules.eval()
        loader = self.make_dataloader(dataset, stage=sb.Stage.TEST, **loader_kwargs)
        ids, embeddings, log_probs, targets = [], [], [], []
        mode = self._opt("segment_decision", "most_confident")
        key = f"{self._opt('label_key', 'emo')}_encoded"
        for batch in tqdm(loader, desc=description, disable=bool(getattr(self, "noprogressbar", False)), leave=False):
            out = self.compute_forward(batch, sb.Stage.TEST)
            ids.extend(batch.id)
            embeddings.append(out.embeddings.float().cpu())
            log_probs.append(out.decision(mode).float().cpu())
            targets.append(getattr(batch, key).data.reshape(-1).cpu())
        return {"ids": ids, "embeddings": torch.cat(embeddings), "log_probs": torch.cat(log_probs), "targets": torch.cat(targets)}

    def init_optimizers(self):
        """One optimiser for the trainable SSL parameters, one for the rest."""
        ssl = getattr(self.modules, "ssl", None)
        # Learnable layer weights (SSLEncoder layer="weighted") train at the head's rate.
        ssl_params = [p for name, p in ssl.named_parameters() if not name.endswith("layer_weights")] if ssl is not None else []
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
        self._ids, self._targets, self._probs = [], [], []
        self._stage_start = time.time()

    def record(self, ids, log_probs: torch.Tensor, targets: torch.Tensor) -> None:
        """Keep one batch's ids, targets and posteriors for the stage metrics.

        Arguments
        ---------
        ids : list of str
            Utterance ids.
        log_probs : torch.Tensor
            ``(batch, n_classes)`` log-posteriors.
        targets : torch.Tensor
            ``(batch,)`` class indices.
        """
        self._ids.extend(ids)
        self._targets.extend(targets.detach().cpu().tolist())
        self._probs.append(log_probs.detach().float().exp().cpu().numpy())

    def stage_metrics(self) -> dict:
        """UAR, WA, macro-F1 and confusion matrix of what :meth:`record` collected."""
        preds = np.concatenate(self._probs).argmax(axis=1).tolist()
        return classification_metrics(self._targets, preds, self.labels)

    @property
    def labels(self) -> list[str]:
        """Class names in index order (from the label encoder)."""
        encoder = self.hparams.label_encoder
        return [encoder.ind2lab[i] for i in range(len(encoder))]

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
        """Log the epoch, anneal, checkpoint on validation, report on test."""
        stats = {"loss": round(float(stage_loss), 4), "seconds": round(time.time() - self._stage_start, 1)}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if stage == sb.Stage.VALID:
            metrics = self.stage_metrics()
            stats.update(UAR=metrics["UAR"], WA=metrics["WA"])
            lrs = self._anneal(1.0 - metrics["UAR"])
            if hasattr(self.hparams, "train_logger"):
                self.hparams.train_logger.log_stats({"epoch": epoch, **lrs}, train_stats=self.train_stats, valid_stats=stats)
            self.checkpointer.save_and_keep_only(meta={"UAR": metrics["UAR"], "WA": metrics["WA"], "loss": stats["loss"]}, max_keys=["UAR"])
        elif stage == sb.Stage.TEST:
            epoch_info = {"epoch_loaded": self.hparams.epoch_counter.current} if hasattr(self.hparams, "epoch_counter") else {}
            report = write_classification_report(
                self._opt("report_folder", self.hparams.output_folder),
                self._ids,
                self._targets,
                np.concatenate(self._probs),
                self.labels,
                title="test",
                extra={"loss": stats["loss"], **epoch_info},
            )
            self.test_report = report
            stats.update(UAR=report["UAR"], WA=report["WA"])
            if hasattr(self.hparams, "train_logger"):
                self.hparams.train_logger.log_stats({"Epoch loaded": epoch_info.get("epoch_loaded")}, test_stats=stats)
            print(metrics_table(report, "test"))


def load_recipe_hparams(argv: list[str] | None = None):
    """Parse a recipe command line and load its YAML, creating the output folder.

    Returns
    -------
    hparams_file, hparams, run_opts, overrides
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:] if argv is None else argv)
    with open(hparams_file, encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle, overrides)
    sb.create_experiment_directory(experiment_directory=hparams["output_folder"], hyperparams_to_save=hparams_file, overrides=overrides)
    # SpeechBrain copies the calling module (this one); keep the recipe's own script too.
    script = os.path.abspath(sys.argv[0])
    if script.endswith(".py") and os.path.isfile(script):
        shutil.copy(script, os.path.join(hparams["output_folder"], os.path.basename(script)))
    return hparams_file, hparams, run_opts, overrides


def fit_and_test(brain: EmotionBrain, datasets: dict, hparams: dict) -> dict:
    """Train with validation, then test the checkpoint of best validation UAR.

    Returns
    -------
    dict
        The test report (as written to ``test_report.json``).
    """
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=hparams["dataloader_options"],
        valid_loader_kwargs=hparams["valid_dataloader_options"],
    )
    brain.evaluate(datasets["test"], max_key="UAR", test_loader_kwargs=hparams["test_dataloader_options"])
    return brain.test_report
