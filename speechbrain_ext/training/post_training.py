"""Post-training stages: small classes with one entry point, run in order after training.

A recipe's YAML lists them under ``post_training``; each has ``enabled``
(the one on/off convention: a YAML boolean such as ``knn_eval`` referenced by
the stage) and ``run(context)``. They work on cached embeddings of the
selected checkpoint (:meth:`StageContext.embeddings`), so no stage encodes
the corpus again, and a stage's outputs are keyed to the checkpoint they came
from.

- :class:`BayesianHeadStage` (compare2023_bayes_fusion): a Bayesian output
  layer trained by SVI on the fine-tuned encoder's embeddings, the encoder
  kept frozen (a design choice here: the paper does not say so);
- :class:`~speechbrain_ext.training.knn_stage.KNNStage` (supcon_knn): kNN interpolation at inference;
- :class:`EmbeddingsStage`: only the cached embeddings, which an early-fusion
  run (:class:`~speechbrain_ext.methods.fusion.EarlyFusionFeatures`) reads;
- :class:`~speechbrain_ext.training.calibration_stage.CalibrationStage`:
  temperature, conformal sets and out-of-distribution thresholds fitted on
  valid for the probabilities the stages before it left
  (:meth:`StageContext.report_decisions`, :attr:`StageContext.ood_scores`).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from speechbrain_ext.data.manifests import SPLITS
from speechbrain_ext.evaluation.plots import plot_confidence_by_correctness
from speechbrain_ext.evaluation.reports import csv_text, report_table
from speechbrain_ext.nn.bayesian import BayesianLinear, fit_bayesian_head
from speechbrain_ext.nn.uncertainty import confidence_by_correctness, expected_calibration_error, mc_predictive
from speechbrain_ext.training.checkpoints import Checkpointer
from speechbrain_ext.training.tasks import ClassificationTask, best_checkpoint
from speechbrain_ext.utils.fileio import atomic_write_text

logger = logging.getLogger(__name__)


@dataclass
class StageContext:
    """What a stage gets: the trained Brain (selected checkpoint loaded), datasets, hparams and earlier results."""

    brain: object
    datasets: dict
    hparams: dict
    reports: dict  # split -> the latest report (stages may replace them)
    probabilities: dict = field(default_factory=dict)  # split -> model probabilities a later stage builds on
    # report ("run": <split>_report.json, "knn": knn/) -> split -> {ids, targets, probs, method, folder}: what it holds
    decisions: dict = field(default_factory=dict)
    # out-of-distribution score (larger = stranger) -> {"valid"/"test": (ids, scores), settings...}
    ood_scores: dict = field(default_factory=dict)
    _embeddings: dict | None = None

    @property
    def output_folder(self) -> Path:
        """The run's output folder."""
        return Path(self.hparams["output_folder"])

    @property
    def checkpoint_tag(self) -> str:
        """Name of the stage-one checkpoint the Brain holds (what the stages' outputs are keyed to)."""
        checkpoint = best_checkpoint(self.hparams["save_folder"])
        return checkpoint.path.name if checkpoint is not None else "none"

    def embeddings(self) -> dict:
        """:meth:`~speechbrain_ext.training.recipe_brain.RecipeBrain.embed` of every split, cached on disk per checkpoint."""
        if self._embeddings is None:
            folder = self.output_folder / "embeddings"
            folder.mkdir(parents=True, exist_ok=True)
            tag, out = self.checkpoint_tag, {}
            for split in SPLITS:
                path = folder / f"{split}.pt"
                cached = torch.load(path, weights_only=False) if path.is_file() else {}
                if cached.get("checkpoint") != tag:
                    cached = self.brain.embed(
                        self.datasets[split], self.hparams["test_dataloader_options"], description=f"embedding {split}"
                    )
                    cached["checkpoint"] = tag
                    torch.save(cached, path.with_suffix(".tmp"))
                    path.with_suffix(".tmp").replace(path)
                out[split] = cached
            self._embeddings = out
        return self._embeddings

    def report_decisions(self) -> dict:
        """Report -> split -> the probabilities it holds now (``run``: the training run's evaluation until a stage replaced it)."""
        evaluated = getattr(self.brain, "evaluated", None) or {}
        run = self.decisions.setdefault("run", {})
        for split, data in evaluated.items():
            if split not in run:
                run[split] = {
                    "ids": list(data["ids"]),
                    "targets": np.asarray(data["targets"]).astype(int).reshape(-1),
                    "probs": np.asarray(data["outputs"], dtype=np.float64),
                    "method": "model",
                    "folder": self.output_folder,
                }
        return self.decisions

    def model_probabilities(self, split: str) -> torch.Tensor:
        """The current model's probabilities on a split (a Bayesian stage's MC means once it ran)."""
        return self.probabilities.get(split, self.embeddings()[split]["outputs"])


def mc_probabilities(layer: BayesianLinear, embeddings: torch.Tensor, n_samples: int, seed: int):
    """MC predictive of a Bayesian classification head with a fixed seed (the same draws every call)."""
    return mc_predictive(layer.sample(embeddings, n_samples, seed).cpu())


def mc_intensities(
    layer: BayesianLinear, embeddings: torch.Tensor, n_samples: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation over weight draws of a Bayesian regression head's sigmoid outputs (fixed seed)."""
    draws = torch.sigmoid(layer.sample(embeddings, n_samples, seed).cpu())
    return draws.mean(dim=0), draws.std(dim=0)


def require_classification(context: StageContext, stage: str) -> ClassificationTask:
    task = context.hparams["task"]
    if not isinstance(task, ClassificationTask):
        raise ValueError(f"{stage} needs a classification task, the recipe's task is {type(task).__name__}")
    return task


class BayesianHeadStage:
    """Stage two of compare2023_bayes_fusion: a Bayesian output layer on the fine-tuned encoder.

    The encoder stays frozen in this stage, a design choice here (the paper
    does not say whether its Bayesian models' encoders were trained again).

    The priors come from the trained linear head (``prior``: ``scalar`` =
    mean/std of its weights, the paper's choice, or ``per_weight``); SVI on
    the cached train embeddings (:func:`~speechbrain_ext.nn.bayesian.fit_bayesian_head`,
    with the task's class weights when stage one used them) with model
    selection on valid; the model (encoder + Bayesian head) is
    saved in ``save_folder`` with the stage-one checkpoint it came from, so a
    newer stage-one checkpoint trains it again. Stage one's report files are
    kept in ``linear_stage/``.

    The valid and test reports hold the mean of ``test_samples`` weight draws.
    Classification: the probabilities; ``<split>_uncertainty.csv`` (confidence,
    entropy, mutual information per row) and, for labelled splits, the
    confidence of correct vs wrong predictions (the paper's Figure 1, also as
    ``<split>_confidence_by_correctness.png``) and the calibration error.
    Regression (sigmoid intensities): the mean intensities, with the
    predictive standard deviation of every output in the predictions file
    (``std_<name>``).

    Arguments
    ---------
    model : UtteranceModel or TextModel
        The stage-two model: the recipe's encoder (and pooling) with ``model.head`` a :class:`BayesianLinear`.
    save_folder : str
        Its checkpoint folder (what ``hub export`` packs).
    prior, epochs, lr, batch_size, kl_weight, train_samples, valid_samples, test_samples
        SVI settings (see :func:`~speechbrain_ext.nn.bayesian.fit_bayesian_head`).
    enabled : bool
        Run the stage.
    """

    def __init__(
        self,
        model,
        save_folder,
        prior="scalar",
        epochs=30,
        lr=1e-3,
        batch_size=32,
        kl_weight=0.01,
        train_samples=4,
        valid_samples=100,
        test_samples=500,
        enabled=True,
    ):
        self.model, self.save_folder, self.prior, self.enabled = model, str(save_folder), prior, bool(enabled)
        self.fit_options = {
            "epochs": epochs,
            "lr": lr,
            "batch_size": batch_size,
            "kl_weight": kl_weight,
            "train_samples": train_samples,
            "valid_samples": valid_samples,
        }
        self.test_samples = int(test_samples)

    def run(self, context: StageContext) -> None:
        """Train (or reuse) the Bayesian head, then write the MC reports."""
        task = context.hparams["task"]
        brain, seed, tag = context.brain, int(context.hparams["seed"]), context.checkpoint_tag
        layer = self.model.head.to(brain.device)
        checkpointer = Checkpointer(self.save_folder, recoverables={"model": self.model})
        done = checkpointer.find_checkpoint(ckpt_predicate=lambda c: c.meta.get("stage1_checkpoint") == tag)
        fit_file = context.output_folder / "bayes_training.json"
        embeddings = context.embeddings()
        if done is not None and fit_file.is_file():
            checkpointer.load_checkpoint(done)
            fit = json.loads(fit_file.read_text())
            logger.info("Bayesian stage already trained on %s (%s); evaluating it", tag, done.path)
        else:
            shutil.rmtree(self.save_folder, ignore_errors=True)  # a head of an older stage-one checkpoint
            checkpointer = Checkpointer(self.save_folder, recoverables={"model": self.model})
            layer.load_state_dict(BayesianLinear.from_linear(context.brain.model.head, prior=self.prior).state_dict())
            torch.manual_seed(seed)
            data = {
                f"{s}_{k}": embeddings[s][k].to(brain.device)
                for s in ("train", "valid")
                for k in ("embeddings", "targets")
            }
            classification = isinstance(task, ClassificationTask)
            fit = fit_bayesian_head(
                layer,
                data["train_embeddings"],
                data["train_targets"],
                data["valid_embeddings"],
                data["valid_targets"],
                progress=not getattr(brain, "noprogressbar", False),
                kind="classification" if classification else "regression",
                class_weights=task.weights
                if classification
                else None,  # stage one's NLL weights (class_weights: balanced)
                **self.fit_options,
            )
            fit["stage1_checkpoint"] = tag
            atomic_write_text(fit_file, json.dumps(fit, indent=2) + "\n")
            meta = task.checkpoint_meta({task.selection_metric: fit[f"valid_{task.selection_metric}"]}, loss=0.0)
            checkpointer.save_checkpoint(meta={**meta, "stage": "bayes", "stage1_checkpoint": tag})
        for split in ("valid", "test"):
            self._keep_stage_one_files(context, split)
            self._report(context, task, layer, split, fit, seed)

    @staticmethod
    def _keep_stage_one_files(context: StageContext, split: str) -> None:
        """Copy stage one's report files of ``split`` to ``linear_stage/`` before the stage's own replace them."""
        if context.reports.get(split, {}).get("method") == "bayes":
            return
        folder = context.output_folder / "linear_stage"
        folder.mkdir(exist_ok=True)
        for name in (
            "report.json",
            "report.md",
            "predictions.csv",
            "confusion_matrix.csv",
            "confusion_matrix.png",
            "scatter.png",
            "submission*.csv",
        ):
            for path in context.output_folder.glob(f"{split}_{name}"):
                shutil.copy2(path, folder / path.name)

    def _report(self, context: StageContext, task, layer: BayesianLinear, split: str, fit: dict, seed: int) -> None:
        data = context.embeddings()[split]
        extra = {
            "method": "bayes",
            "mc_samples": self.test_samples,
            "bayes_prior": self.prior,
            "bayes_best_epoch": fit["best_epoch"],
            "stage1_checkpoint": fit["stage1_checkpoint"],
        }
        if context.reports.get(split, {}).get("summary_metrics"):
            extra["linear_stage"] = {k: context.reports[split][k] for k in context.reports[split]["summary_metrics"]}
        targets = data["targets"].numpy()
        if isinstance(task, ClassificationTask):
            pred = mc_probabilities(layer, data["embeddings"], self.test_samples, seed)
            context.probabilities[split] = pred.mean_probs
            context.decisions.setdefault("run", {})[split] = {
                "ids": list(data["ids"]),
                "targets": targets.astype(int).reshape(-1),
                "probs": pred.mean_probs.numpy().astype(np.float64),
                "method": "bayes",
                "folder": context.output_folder,
            }
            mutual = context.ood_scores.setdefault("mutual_information", {"mc_samples": self.test_samples})
            mutual[split] = (list(data["ids"]), pred.mutual_information.numpy())
            extra.update(self._uncertainty_files(context, task, pred, data["ids"], targets, split))
            report = task.write_report(
                context.output_folder, data["ids"], targets, pred.mean_probs.numpy(), split=split, extra=extra
            )
        else:
            mean, std = mc_intensities(layer, data["embeddings"], self.test_samples, seed)
            extra["mean_predictive_std"] = round(float(std.mean()), 6)
            report = task.write_report(
                context.output_folder, data["ids"], targets, mean.numpy(), split=split, extra=extra, std=std.numpy()
            )
        context.reports[split] = report
        print(report_table(report, f"{split} (Bayes, {self.test_samples} samples)"))

    def _uncertainty_files(
        self, context: StageContext, task: ClassificationTask, pred, ids, targets, split: str
    ) -> dict:
        """``<split>_uncertainty.csv`` for every row; Figure 1 statistics and plot, calibration for the labelled ones."""
        probs, labels = pred.mean_probs.numpy(), task.labels
        predicted, labelled = probs.argmax(axis=1), targets >= 0
        correct = predicted == targets
        frame = pd.DataFrame(
            {
                "id": list(ids),
                "true": [labels[t] if t >= 0 else "" for t in targets],
                "predicted": [labels[p] for p in predicted],
                "confidence": pred.confidence.numpy(),
                "entropy": pred.entropy.numpy(),
                "mutual_information": pred.mutual_information.numpy(),
                "correct": [str(int(ok)) if t >= 0 else "" for t, ok in zip(targets, correct)],
            }
        )
        atomic_write_text(context.output_folder / f"{split}_uncertainty.csv", csv_text(frame))
        extra = {
            "mean_entropy": round(float(pred.entropy.mean()), 6),
            "mean_mutual_information": round(float(pred.mutual_information.mean()), 6),
        }
        if labelled.any():
            extra["confidence_by_correctness"] = confidence_by_correctness(probs[labelled], targets[labelled])
            extra["expected_calibration_error"] = expected_calibration_error(probs[labelled], targets[labelled])
            plot_confidence_by_correctness(
                pred.confidence.numpy()[labelled],
                correct[labelled],
                context.output_folder / f"{split}_confidence_by_correctness.png",
                f"{split}: Bayesian head, {self.test_samples} weight samples",
            )
        return extra


class EmbeddingsStage:
    """Cache the selected checkpoint's embeddings of every split (``embeddings/<split>.pt``), for early fusion.

    Arguments
    ---------
    enabled : bool
        Run the stage (``save_embeddings`` in the YAMLs).
    """

    def __init__(self, enabled: bool = True):
        self.enabled = bool(enabled)

    def run(self, context: StageContext) -> None:
        """Compute (or keep, when cached for this checkpoint) the embeddings."""
        cached = context.embeddings()
        logger.info(
            "embeddings of %s cached in %s",
            {s: len(v["ids"]) for s, v in cached.items()},
            context.output_folder / "embeddings",
        )
