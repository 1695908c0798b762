"""Brain logic shared by every classification recipe.

A recipe's ``train.py`` subclasses :class:`EmotionBrain` and writes only
``compute_forward``/``compute_objectives`` (calling :meth:`EmotionBrain.record`
for evaluation batches) and its ``dataio_prep``. This class brings:

- two optimisers, one for the SSL encoder (``ssl_opt_class``, small learning
  rate) and one for everything else (``opt_class``), both annealed by
  ``lr_annealing``/``lr_annealing_ssl`` on the validation error (1 - UAR);
- per-epoch logging of loss, UAR and WA to ``train_log``;
- checkpoints kept by best validation UAR (``evaluate(max_key="UAR")``);
- the test report (:func:`speechbrain_ext.reports.write_classification_report`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import numpy as np
import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml

from speechbrain_ext.metrics import classification_metrics
from speechbrain_ext.reports import metrics_table, write_classification_report

logger = logging.getLogger(__name__)


class EmotionBrain(sb.Brain):
    """Classification Brain with encoder/head optimisers, UAR/WA tracking and test reports.

    Expected hparams: ``opt_class``; optional ``ssl_opt_class``,
    ``lr_annealing``, ``lr_annealing_ssl``, ``train_logger``, ``output_folder``
    and ``label_encoder`` (set by the recipe after data preparation). The
    encoder module, if any, is ``modules.ssl``.
    """

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
                self.hparams.output_folder,
                self._ids,
                self._targets,
                np.concatenate(self._probs),
                self.labels,
                title="test",
                extra={"loss": stats["loss"], **epoch_info},
            )
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
    with open(os.path.join(hparams["output_folder"], "test_report.json"), encoding="utf-8") as handle:
        return json.load(handle)
