"""What a recipe predicts: the task object that owns targets, loss, metrics, selection and reports.

A Brain computes a model's outputs; the task says what they mean:

- :class:`ClassificationTask`: one categorical label per utterance (emotion,
  request type). Outputs are log-posteriors; NLL loss (class-weighted if
  asked); UAR selects the checkpoint, or macro-F1 (``selection: macro_F1``,
  MSP-Podcast's challenge metric); the report is
  :func:`~speechbrain_ext.evaluation.reports.write_classification_report`.
- :class:`RegressionTask`: several values in [0, 1] per utterance
  (Hume-Prosody's nine intensities, MSP-Podcast's arousal, valence and
  dominance). Outputs are sigmoid values; the YAML's ``loss`` module (MSE by
  default, :class:`~speechbrain_ext.nn.losses.CCCLoss` for ``1 - mean CCC``)
  and ``selection`` metric (the mean Spearman over outputs, the ComParE 2023
  Emotion Share score, by default; or ``mean_CCC``); the report is
  :func:`~speechbrain_ext.evaluation.reports.write_regression_report`.

Rows without a label (a masked test partition, as the ComParE releases
have) get target ``-1`` (classification) or a row of NaN (regression): they
are predicted and written to the predictions file, never scored. Training
rows must all be labelled.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import speechbrain as sb
import torch
from speechbrain.dataio.encoder import CategoricalEncoder

from speechbrain_ext.data.manifests import read_manifest
from speechbrain_ext.evaluation.metrics import classification_metrics, concordance_correlation, spearman_per_column
from speechbrain_ext.evaluation.reports import factor_decisions, write_classification_report, write_regression_report

UNLABELLED = -1


def check_selection(selection: str, allowed: Sequence[str]) -> str:
    """``selection`` when it is one of the metrics the task can select on; otherwise a clear error.

    Example
    -------
    >>> check_selection("macro_F1", ("UAR", "macro_F1"))
    'macro_F1'
    """
    if selection not in allowed:
        raise ValueError(f"selection must be one of {', '.join(allowed)}, got {selection!r}")
    return selection


class Task:
    """Base of the tasks: the selection rule and the checkpointer arguments derived from it."""

    selection_metric: str = ""
    selection_mode: str = "max"
    card_metrics: tuple[str, ...] = ()
    target_key: str = ""

    def checkpoint_meta(self, metrics: dict, loss: float) -> dict:
        """Checkpoint meta: the selection metric's value, and which metric and direction select."""
        return {
            self.selection_metric: metrics[self.selection_metric],
            "loss": loss,
            "selection_metric": self.selection_metric,
            "selection_mode": self.selection_mode,
        }

    def keep_kwargs(self) -> dict:
        """``save_and_keep_only`` arguments: keep the best checkpoint by the selection metric."""
        return {f"{self.selection_mode}_keys": [self.selection_metric]}

    def find_kwargs(self) -> dict:
        """``find_checkpoint``/``evaluate`` arguments selecting the best checkpoint."""
        return {f"{self.selection_mode}_key": self.selection_metric}

    def error(self, metrics: dict) -> float:
        """A value to minimise (learning-rate annealing)."""
        value = metrics[self.selection_metric]
        return 1.0 - value if self.selection_mode == "max" else value

    bootstrap: int = 0
    submission: bool = False
    filenames: dict | None = None

    def record_filenames(self, manifests: Mapping[str, str]) -> None:
        """Remember each entry's audio file name, for the submission file of the test split."""
        self.filenames = {
            utt: os.path.basename(str(e.get("wav", utt)))
            for path in manifests.values()
            for utt, e in read_manifest(path).items()
        }

    def report_options(self, ids: Sequence[str], split: str) -> dict:
        """Arguments of the report writer shared by the tasks: bootstrap resamples and the submission's file names."""
        options = {"bootstrap": self.bootstrap}
        if self.submission and split == "test" and self.filenames is not None:
            options["filenames"] = [self.filenames.get(utt, utt) for utt in ids]
        return options

    def labelled(self, entry: dict) -> bool:
        """Whether a manifest entry carries this task's target."""
        return entry.get(self.target_key) is not None

    def check_training_labels(self, manifest: str | os.PathLike) -> dict:
        """Entries of the training manifest; every one must be labelled."""
        entries = read_manifest(manifest)
        missing = [utt for utt, entry in entries.items() if not self.labelled(entry)]
        if missing:
            raise ValueError(
                f"{manifest}: {len(missing)} training entries have no {self.target_key!r} (e.g. {missing[:3]}); training needs labels"
            )
        return entries


class ClassificationTask(Task):
    """Utterance classification over the training split's label set.

    Arguments
    ---------
    label_key : str
        Manifest field holding the label (``emo``, ``request``, ``joint``).
    n_classes : int
        Expected number of classes (checked against the training labels).
    label_encoder_file : str
        Where the label encoder is saved (``label_encoder.txt``).
    class_weights : str, optional
        ``balanced``: weight each class's NLL by ``n / (n_classes * count)``
        of the training split (HealthCall30's complaints are rare); None: plain NLL.
    factors : sequence of str, optional
        The labels are joint ``<a>_<b>`` labels (HealthCall30's 4-class
        ``complaint_request``): the reports also score each part (see
        :func:`~speechbrain_ext.evaluation.reports.factor_decisions`).
    bootstrap : int
        Resamples of the reports' 95 % bootstrap intervals (0: none).
    submission : bool
        Write the test split's predictions as a challenge submission file
        (``test_submission.csv``: ``filename,prediction``).
    selection : str
        The validation metric that selects the checkpoint: ``UAR`` or
        ``macro_F1`` (both are reported either way).

    Example
    -------
    >>> task = ClassificationTask("emo", 2, "/tmp/doctest_label_encoder.txt")
    >>> task.labels_from(["sad", "neu", "sad"])
    ['neu', 'sad']
    >>> scores = torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]))
    >>> round(float(task.loss(scores, torch.tensor([0, 1, UNLABELLED]))), 4)  # the unlabelled row adds nothing
    0.1643
    >>> task.stage_metrics(np.array([0, 1, -1]), scores.exp().numpy())["UAR"]
    1.0
    """

    selection_mode = "max"
    card_metrics = ("recall", "accuracy")
    SELECTIONS = ("UAR", "macro_F1")

    def __init__(
        self,
        label_key: str,
        n_classes: int,
        label_encoder_file: str,
        class_weights: str | None = None,
        factors: Sequence[str] | None = None,
        bootstrap: int = 0,
        submission: bool = False,
        selection: str = "UAR",
    ):
        self.selection_metric = check_selection(selection, self.SELECTIONS)
        if class_weights not in (None, "balanced"):
            raise ValueError(f"class_weights must be null or 'balanced', got {class_weights!r}")
        self.target_key = label_key
        self.n_classes = int(n_classes)
        self.label_encoder_file = str(label_encoder_file)
        self.encoder = CategoricalEncoder()
        self.class_weights, self.weights = class_weights, None
        self.factors = list(factors) if factors else None
        self.bootstrap, self.submission = int(bootstrap), bool(submission)

    @property
    def labels(self) -> list[str]:
        """Class names in index order."""
        return [self.encoder.ind2lab[i] for i in range(len(self.encoder))]

    def labels_from(self, values: Sequence[str]) -> list[str]:
        """Build the encoder from training label values (sorted, so indices are stable)."""
        self.encoder = CategoricalEncoder()
        self.encoder.update_from_iterable(sorted({str(v) for v in values}))
        return self.labels

    def setup(self, manifests: Mapping[str, str]) -> None:
        """Build (or reload) the label encoder from the training split; check every split's labels.

        Arguments
        ---------
        manifests : mapping
            Split -> manifest path; must include ``train``.
        """
        train = self.check_training_labels(manifests["train"])
        train_labels = sorted({str(e[self.target_key]) for e in train.values()})
        if os.path.isfile(self.label_encoder_file):
            self.encoder = CategoricalEncoder()
            self.encoder.load(self.label_encoder_file)
            if sorted(self.encoder.lab2ind) != train_labels:
                raise ValueError(
                    f"{self.label_encoder_file}: holds labels {sorted(self.encoder.lab2ind)} but {manifests['train']} has {train_labels}; "
                    "remove the file or use a fresh output folder"
                )
        else:
            self.labels_from(train_labels)
            self.encoder.save(self.label_encoder_file)
        if len(train_labels) != self.n_classes:
            raise ValueError(
                f"{manifests['train']}: the training split has {len(train_labels)} classes {train_labels} but n_classes is {self.n_classes}"
            )
        for split, path in manifests.items():
            seen = {str(e[self.target_key]) for e in read_manifest(path).values() if self.labelled(e)}
            unknown = sorted(seen - set(train_labels))
            if unknown:
                raise ValueError(
                    f"{path}: labels {unknown} of split {split!r} never occur in training (known: {train_labels})"
                )
        if self.factors:
            factor_decisions(
                np.zeros((0, len(train_labels))), np.zeros(0, dtype=int), self.labels, self.factors
            )  # labels that do not split fail here
        if self.class_weights == "balanced":
            counts = np.bincount(
                [self.encoder.lab2ind[str(e[self.target_key])] for e in train.values()], minlength=self.n_classes
            )
            self.weights = torch.tensor(len(train) / (self.n_classes * counts), dtype=torch.float)
        self.record_filenames(manifests)

    def target_pipeline(self):
        """Dynamic item ``<label_key>`` -> ``target`` (class index, or -1 when unlabelled)."""

        @sb.utils.data_pipeline.takes(self.target_key)
        @sb.utils.data_pipeline.provides("target")
        def pipeline(label):
            return torch.tensor([UNLABELLED if label is None else self.encoder.lab2ind[str(label)]])

        return pipeline

    def batch_targets(self, padded: torch.Tensor) -> torch.Tensor:
        """``(batch,)`` class indices from the padded ``target`` batch."""
        return padded.reshape(-1).long()

    def loss(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean NLL of the labelled rows, class-weighted if asked (zero when no row is labelled)."""
        targets, scores = targets.reshape(-1), scores.float()  # the loss in fp32 under --precision=bf16/fp16
        if not (targets != UNLABELLED).any():
            return scores.sum() * 0.0
        weight = None if self.weights is None else self.weights.to(device=scores.device, dtype=scores.dtype)
        return torch.nn.functional.nll_loss(scores, targets, weight=weight, ignore_index=UNLABELLED)

    def predictions(self, scores: torch.Tensor) -> np.ndarray:
        """Class probabilities of log-posterior outputs."""
        return scores.detach().float().exp().cpu().numpy()

    def stage_metrics(self, targets: np.ndarray, predictions: np.ndarray) -> dict:
        """UAR, WA, macro-F1 on the labelled rows."""
        keep = np.asarray(targets) != UNLABELLED
        return classification_metrics(
            np.asarray(targets)[keep].tolist(), predictions[keep].argmax(axis=1).tolist(), self.labels
        )

    def log_stats(self, metrics: dict) -> dict:
        """What the training log shows of a validation stage."""
        shown = {"UAR": metrics["UAR"], "WA": metrics["WA"]}
        return (
            shown
            if self.selection_metric in shown
            else {**shown, self.selection_metric: metrics[self.selection_metric]}
        )

    def write_report(
        self, folder, ids, targets, predictions, split: str = "test", extra: dict | None = None, **options
    ) -> dict:
        """The classification report (predictions of every row; metrics of the labelled ones; sub-tasks; submission file)."""
        return write_classification_report(
            folder,
            ids,
            [int(t) for t in targets],
            predictions,
            self.labels,
            split=split,
            extra=extra,
            factors=self.factors,
            **self.report_options(ids, split),
            **options,
        )

    def inference_values(self) -> dict:
        """Plain values the exported inference YAML carries."""
        return {"n_classes": self.n_classes}


class RegressionTask(Task):
    """Several values per utterance in [0, 1] (Hume-Prosody, MSP-Podcast's dimensions), with sigmoid outputs.

    Arguments
    ---------
    target_key : str
        Manifest field holding the list of intensities (``intensities``).
    output_names : sequence of str
        Names of the outputs, in the order of the list.
    bootstrap : int
        Resamples of the reports' 95 % bootstrap intervals of each output's Spearman (0: none).
    submission : bool
        Write the test split's predictions as a challenge submission file
        (``test_submission.csv``: ``filename,<name>...``).
    loss : torch.nn.Module, optional
        ``loss(predictions, targets)`` over the labelled rows; default MSE
        (:class:`~speechbrain_ext.nn.losses.CCCLoss`: ``1 - mean CCC``).
    selection : str
        The validation metric that selects the checkpoint: ``mean_spearman``
        or ``mean_CCC`` (both are reported either way).

    Example
    -------
    >>> task = RegressionTask("intensities", ["Anger", "Calmness"])
    >>> out = torch.tensor([[0.2, 0.9], [0.6, 0.1], [0.5, 0.5]])
    >>> targets = torch.tensor([[0.0, 1.0], [1.0, 0.0], [float("nan")] * 2])
    >>> round(float(task.loss(out, targets)), 4)  # the unlabelled row adds nothing
    0.055
    >>> task.stage_metrics(targets.numpy(), out.numpy())["mean_spearman"]
    1.0
    """

    selection_mode = "max"
    card_metrics = ("spearmanr", "mse")
    SELECTIONS = ("mean_spearman", "mean_CCC")

    def __init__(
        self,
        target_key: str,
        output_names: Sequence[str],
        bootstrap: int = 0,
        submission: bool = False,
        loss: torch.nn.Module | None = None,
        selection: str = "mean_spearman",
    ):
        self.selection_metric = check_selection(selection, self.SELECTIONS)
        self.loss_function = torch.nn.MSELoss() if loss is None else loss
        self.target_key = target_key
        self.output_names = [str(n) for n in output_names]
        self.bootstrap, self.submission = int(bootstrap), bool(submission)

    def setup(self, manifests: Mapping[str, str]) -> None:
        """Check that every labelled entry has one value per output."""
        self.check_training_labels(manifests["train"])
        for path in manifests.values():
            for utt, entry in read_manifest(path).items():
                if self.labelled(entry) and len(entry[self.target_key]) != len(self.output_names):
                    raise ValueError(
                        f"{path}: {utt} has {len(entry[self.target_key])} {self.target_key!r} values, expected {len(self.output_names)} {self.output_names}"
                    )
        self.record_filenames(manifests)

    def target_pipeline(self):
        """Dynamic item ``<target_key>`` -> ``target`` (float vector, NaN when unlabelled)."""
        n = len(self.output_names)

        @sb.utils.data_pipeline.takes(self.target_key)
        @sb.utils.data_pipeline.provides("target")
        def pipeline(values):
            if values is None:
                return torch.full((n,), float("nan"))
            return torch.tensor([float(v) for v in values])

        return pipeline

    def batch_targets(self, padded: torch.Tensor) -> torch.Tensor:
        """``(batch, n_outputs)`` intensities from the padded ``target`` batch."""
        return padded.float()

    def loss(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The task's loss (MSE by default) over the labelled rows (zero when none is labelled)."""
        keep, scores = ~torch.isnan(targets).any(dim=-1), scores.float()  # the loss in fp32 under --precision=bf16/fp16
        if not keep.any():
            return scores.sum() * 0.0
        return self.loss_function(scores[keep], targets[keep].to(scores.dtype))

    def predictions(self, scores: torch.Tensor) -> np.ndarray:
        """The intensities themselves."""
        return scores.detach().float().cpu().numpy()

    def stage_metrics(self, targets: np.ndarray, predictions: np.ndarray) -> dict:
        """Mean Spearman and mean CCC over outputs (each per output across clips) and MSE, on the labelled rows."""
        keep = ~np.isnan(targets).any(axis=1)
        rho = spearman_per_column(targets[keep], predictions[keep], self.output_names)
        ccc = float(np.nanmean(concordance_correlation(targets[keep], predictions[keep])))
        mse = float(np.mean((targets[keep] - predictions[keep]) ** 2))
        return {"mean_spearman": rho["mean"], "mean_CCC": ccc, "MSE": mse}

    def log_stats(self, metrics: dict) -> dict:
        """What the training log shows of a validation stage."""
        return {
            "mean_spearman": round(metrics["mean_spearman"], 4),
            "mean_CCC": round(metrics["mean_CCC"], 4),
            "MSE": round(metrics["MSE"], 5),
        }

    def write_report(
        self, folder, ids, targets, predictions, split: str = "test", extra: dict | None = None, **options
    ) -> dict:
        """The regression report (per-output Spearman, CCC, MSE; scatter plots; predictions CSV; submission file)."""
        return write_regression_report(
            folder,
            ids,
            np.asarray(targets, dtype=float),
            predictions,
            self.output_names,
            split=split,
            extra=extra,
            **self.report_options(ids, split),
            **options,
        )

    def inference_values(self) -> dict:
        """Plain values the exported inference YAML carries."""
        return {"output_names": list(self.output_names)}


def best_checkpoint(save_folder: str | os.PathLike):
    """The checkpoint a run selected: best by the metric and direction recorded in its meta (corrupt ones skipped).

    Returns
    -------
    speechbrain.utils.checkpoints.Checkpoint or None
    """
    from speechbrain_ext.training.checkpoints import Checkpointer

    checkpoints = [c for c in Checkpointer(str(save_folder)).list_checkpoints() if "selection_metric" in c.meta]
    if not checkpoints:
        return None
    sign = {"max": 1.0, "min": -1.0}
    return max(checkpoints, key=lambda c: sign[c.meta["selection_mode"]] * float(c.meta[c.meta["selection_metric"]]))
