"""Brains of the recipes: a base that owns what every recipe shares, and one small class per method family.

:class:`RecipeBrain` brings two optimisers (the SSL encoder at ``lr_ssl``, the
rest at ``lr``), annealing on the task's error or the validation loss, per-epoch logs, checkpoints
kept by the task's selection metric (UAR, mean Spearman, ...), the valid and
test reports written by the task, and :meth:`RecipeBrain.embed` for the
post-training stages. It runs ``hparams["model"]``
(:mod:`speechbrain_ext.nn.models`), the same module that ``hub export`` packs.

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

Under ``torchrun`` (DDP), SpeechBrain shards the training set; validation and
test are shared out too, each process scoring every ``world_size``-th
utterance with no padding, and their decisions are gathered (in the
dataset's order) before any metric, annealing or checkpoint selection, so
every process selects on the whole validation set. Reports are written by the
main process.
"""

from __future__ import annotations

import functools
import logging
import time

import numpy as np
import speechbrain as sb
import torch
from speechbrain.utils.distributed import ddp_broadcast, if_main_process
from tqdm import tqdm

from speechbrain_ext.data.batching import PaddingMeter
from speechbrain_ext.evaluation.reports import report_table
from speechbrain_ext.nn.encoders import model_batch_exact
from speechbrain_ext.nn.losses import flatten_segments, segment_nll
from speechbrain_ext.nn.models import ModelOutput
from speechbrain_ext.training.tasks import UNLABELLED

logger = logging.getLogger(__name__)
AUXILIARY_LOSSES = ("triplet_loss", "supcon_loss")
ANNEALED_ON = ("error", "loss")  # lr_annealing_on: 1 - the task's selection metric, or the validation loss


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP or DataParallel wrapper (the module itself otherwise).

    Example
    -------
    >>> lin = torch.nn.Linear(2, 2)
    >>> unwrap(torch.nn.DataParallel(lin)) is lin, unwrap(lin) is lin
    (True, True)
    """
    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    return module.module if isinstance(module, wrappers) else module


def skips_parameters(model: torch.nn.Module) -> bool:
    """Whether a trainable Hugging Face part of ``model`` leaves parameters unused on some training steps.

    LayerDrop (``config.layerdrop > 0``, wav2vec2-base's 0.1) skips random
    transformer layers; a BERT pooler is unused when [CLS] is read from the
    last hidden state. DDP then needs ``find_unused_parameters`` (speechbrain#2340).

    Example
    -------
    >>> import transformers
    >>> config = transformers.Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
    ...     conv_dim=(8,), conv_stride=(5,), conv_kernel=(10,), num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2)
    >>> model = transformers.Wav2Vec2Model(config)
    >>> skips_parameters(model), skips_parameters(model.requires_grad_(False))
    (True, False)
    """
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is None or not any(p.requires_grad for p in module.parameters()):
            continue
        if float(getattr(config, "layerdrop", 0.0) or 0.0) > 0 or getattr(module, "pooler", None) is not None:
            return True
    return False


class EvaluationShard(torch.utils.data.Sampler):
    """Every ``world_size``-th index from ``rank``: one process's share of an evaluated set, without padding.

    Example
    -------
    >>> list(EvaluationShard(7, rank=1, world_size=3))
    [1, 4]
    """

    def __init__(self, n: int, rank: int, world_size: int):
        self.indices = list(range(rank, n, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def interleave(shards: list[list]) -> list:
    """Undo :class:`EvaluationShard`: the items of every process back in the dataset's order.

    Example
    -------
    >>> interleave([["a", "c", "e"], ["b", "d"]])
    ['a', 'b', 'c', 'd', 'e']
    """
    out = [None] * sum(len(s) for s in shards)
    for rank, shard in enumerate(shards):
        out[rank :: len(shards)] = shard
    return out


class RecipeBrain(sb.Brain):
    """Shared machinery; subclasses define the method (see the module docstring).

    Required hparams: ``task`` (:mod:`speechbrain_ext.training.tasks`), ``model``
    (:mod:`speechbrain_ext.nn.models`; also in ``modules``), ``opt_class``.
    Optional: ``ssl_opt_class``, ``lr_annealing``, ``lr_annealing_ssl``,
    ``train_logger``. A scheduler is SpeechBrain's kind (``!new:``, called
    with the watched value) or PyTorch's ``ReduceLROnPlateau`` (``!name:``,
    bound here to its optimiser and checkpointed with it);
    ``lr_annealing_on`` names what they watch on validation: ``error`` (1 -
    the task's selection metric, the default) or ``loss``.
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
        if values.get("lr_annealing_on", "error") not in ANNEALED_ON:
            problems.append(
                f"lr_annealing_on must be one of {', '.join(ANNEALED_ON)}, not {values['lr_annealing_on']!r}"
            )
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def task(self):
        """The recipe's task object."""
        return self.hparams.task

    @property
    def model(self) -> torch.nn.Module:
        """``modules.model`` without its DDP wrapper (for its parts: encoder, head, segments)."""
        return unwrap(self.modules.model)

    @property
    def sharded_evaluation(self) -> bool:
        """Whether valid/test are shared out among DDP processes now (during :meth:`fit_and_report`)."""
        return (
            bool(getattr(self, "_shard_evaluation", False))
            and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1
        )

    def _wrap_distributed(self):
        """DDP as SpeechBrain wraps it; with a part that some steps skip, DDP looks for unused parameters."""
        if self.distributed_launch and not self.find_unused_parameters and skips_parameters(self.model):
            logger.info(
                "a trainable part skips parameters on some steps (LayerDrop, an unused pooler): DDP runs with find_unused_parameters"
            )
            self.find_unused_parameters = True
        super()._wrap_distributed()

    def drop_distributed_wrappers(self) -> None:
        """Put the plain modules back in place of their DDP wrappers.

        A DDP wrapper's reducer holds the process group: freed here, while the
        interpreter is alive, the group's communication threads end when the
        group is destroyed instead of at interpreter exit, where a joinable
        thread aborts the process ("terminate called without an active exception").
        """
        for name, module in list(self.modules.items()):
            if isinstance(module, torch.nn.parallel.DistributedDataParallel):
                self.modules[name] = module.module

    def make_dataloader(self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs):
        """SpeechBrain's loaders; in DDP, valid and test are split among the processes (no padding, no duplicates)."""
        if stage != sb.Stage.TRAIN and self.sharded_evaluation:
            shard = EvaluationShard(len(dataset), torch.distributed.get_rank(), torch.distributed.get_world_size())
            loader_kwargs = {**loader_kwargs, "sampler": shard, "shuffle": False}
        return super().make_dataloader(dataset, stage, ckpt_prefix, **loader_kwargs)

    def _gathered(self, stage_loss: float) -> tuple[list, np.ndarray, np.ndarray, float]:
        """Ids, targets, decisions and loss of the whole evaluated set (every process's share in DDP)."""
        targets, outputs = np.concatenate(self._targets), np.concatenate(self._outputs)
        if not self.sharded_evaluation:
            return self._ids, targets, outputs, float(stage_loss)
        shards = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(shards, (self._ids, targets, outputs, float(stage_loss)))
        ids = interleave([s[0] for s in shards])
        targets = np.stack(interleave([list(s[1]) for s in shards]))
        outputs = np.stack(interleave([list(s[2]) for s in shards]))
        loss = sum(s[3] * len(s[0]) for s in shards) / max(1, len(ids))
        return ids, targets, outputs, loss

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
            loss = (
                self.task.loss(out.scores, targets) if unlabelled.any() else self.compute_objectives(out, batch, stage)
            )
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
        return {
            "ids": ids,
            "embeddings": torch.cat(embeddings),
            "outputs": torch.cat(outputs),
            "targets": torch.cat(targets),
        }

    def init_optimizers(self):
        """One optimiser for the trainable SSL encoder, one for the rest (learnable layer weights included)."""
        encoder = getattr(self.model, "encoder", None) or torch.nn.Module()  # an early-fusion head has none
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
        # PyTorch's schedulers wrap their optimiser: the YAML names the class (!name:), bound here
        self.lr_schedulers = {}
        for name, opt in (("lr_annealing", self.optimizer), ("lr_annealing_ssl", self.ssl_optimizer)):
            if opt is not None and isinstance(getattr(self.hparams, name, None), functools.partial):
                self.lr_schedulers[name] = getattr(self.hparams, name)(opt)
        if self.checkpointer is not None:
            for name, obj in {**self.optimizers_dict, **self.lr_schedulers}.items():
                self.checkpointer.add_recoverable(name, obj)

    def on_stage_start(self, stage, epoch=None):
        """Reset the prediction store and the padding count, start the stage clock; a duration sampler draws the epoch's batches."""
        self._ids, self._targets, self._outputs = [], [], []
        self._padding = PaddingMeter()
        self._stage_start = time.time()
        sampler = getattr(self, "_duration_sampler", None)
        if stage == sb.Stage.TRAIN and sampler is not None and epoch is not None and not self.distributed_launch:
            sampler.set_epoch(epoch)  # SpeechBrain does this only through its DDP wrapper

    def _anneal(self, value: float) -> dict:
        """Both optimisers' schedulers see the watched ``value``; returns the rates the epoch trained with."""
        lrs = {}
        for key, opt, scheduler_name in (
            ("lr", self.optimizer, "lr_annealing"),
            ("lr_ssl", self.ssl_optimizer, "lr_annealing_ssl"),
        ):
            scheduler = getattr(self, "lr_schedulers", {}).get(
                scheduler_name, getattr(self.hparams, scheduler_name, None)
            )
            if opt is None or scheduler is None:
                continue
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                lrs[key] = opt.param_groups[0]["lr"]
                scheduler.step(value)  # lowers its optimiser's rate itself
                continue
            old_lr, new_lr = scheduler(value)
            sb.nnet.schedulers.update_learning_rate(opt, new_lr)
            lrs[key] = old_lr
        return lrs

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log the epoch, anneal and checkpoint on validation; write the report of an evaluated split."""
        stats = {"loss": round(float(stage_loss), 4), "seconds": round(time.time() - self._stage_start, 1)}
        if stage == sb.Stage.TRAIN:
            self.train_stats = {**stats, "padding": round(self._padding.waste, 3)}
            return
        ids, targets, outputs, loss = self._gathered(stage_loss)
        stats["loss"] = round(loss, 4)
        logger_ = getattr(self.hparams, "train_logger", None)
        if stage == sb.Stage.VALID:
            metrics = self.task.stage_metrics(targets, outputs)
            stats.update(self.task.log_stats(metrics))
            lrs = self._anneal(
                loss if getattr(self.hparams, "lr_annealing_on", "error") == "loss" else self.task.error(metrics)
            )
            if logger_ is not None:
                logger_.log_stats({"epoch": epoch, **lrs}, train_stats=self.train_stats, valid_stats=stats)
            self.checkpointer.save_and_keep_only(
                meta=self.task.checkpoint_meta(metrics, stats["loss"]), **self.task.keep_kwargs()
            )
            return
        split = getattr(self, "report_split", "test")
        extra = {"loss": stats["loss"]}
        if hasattr(self.hparams, "epoch_counter"):
            extra["epoch_loaded"] = self.hparams.epoch_counter.current
        report = None
        if (
            if_main_process()
        ):  # the main process writes the report of the gathered set, and every process gets its numbers
            report = self.task.write_report(self.hparams.output_folder, ids, targets, outputs, split=split, extra=extra)
            print(report_table(report, split))
        self.reports[split] = report = ddp_broadcast(report)
        if logger_ is not None:  # SpeechBrain's loggers write on the main process but expect the call on all
            logger_.log_stats(
                {
                    "report": split,
                    "epoch loaded": extra.get("epoch_loaded"),
                    **{k: report[k] for k in report.get("summary_metrics", [])},
                }
            )

    def train_loader_options(self, train_set, hparams: dict) -> dict:
        """``dataloader_options``; with ``max_batch_seconds``, batches by total audio seconds instead of ``batch_size``.

        SpeechBrain's ``DynamicBatchSampler`` groups utterances of similar
        duration (buckets), so little of a batch is padding; each epoch logs
        the padding share (``padding``) either way.
        """
        options = dict(hparams["dataloader_options"])
        seconds = hparams.get("max_batch_seconds")
        self._duration_sampler = None
        if seconds:
            from speechbrain_ext.data.batching import duration_batch_sampler

            self._duration_sampler = duration_batch_sampler(
                train_set,
                float(seconds),
                seed=int(hparams.get("seed", 0)),
                max_item_seconds=hparams.get("max_audio_seconds"),
            )
            options = {k: v for k, v in options.items() if k not in ("batch_size", "shuffle", "drop_last", "sampler")}
            options["batch_sampler"] = self._duration_sampler
        return options

    def fit_batch(self, batch):
        """SpeechBrain's training step, counting the batch's padding."""
        if hasattr(batch, "sig"):
            self._padding.update(*batch.sig)
        return super().fit_batch(batch)

    def evaluation_loader_options(self, hparams: dict) -> dict:
        """Loader options of the reported valid/test evaluation: ``test_dataloader_options``, batched when that is exact.

        The YAMLs evaluate one utterance at a time (batch 1) because a
        group-norm front-end (wav2vec2-base, HuBERT-base) sees padding. An
        encoder whose own configuration makes batches exact (layer-norm
        front-end and attention mask: wav2vec2-large/XLSR, HuBERT-large,
        WavLM-large; :func:`~speechbrain_ext.nn.encoders.model_batch_exact`) is
        evaluated with ``valid_dataloader_options``' batch size instead.
        """
        options = dict(hparams["test_dataloader_options"])
        if options.get("batch_size", 1) == 1 and model_batch_exact(self.model):
            options["batch_size"] = int(hparams["valid_dataloader_options"].get("batch_size", 1))
        return options

    def fit_and_report(self, datasets: dict, hparams: dict) -> dict:
        """Train with validation, then report valid and test with the selected checkpoint.

        Returns
        -------
        dict
            Split -> report (``valid`` and ``test``).
        """
        self.reports, self._shard_evaluation = {}, True
        try:
            self.fit(
                self.hparams.epoch_counter,
                datasets["train"],
                datasets["valid"],
                train_loader_kwargs=self.train_loader_options(datasets["train"], hparams),
                valid_loader_kwargs=hparams["valid_dataloader_options"],
            )
            for split in ("valid", "test"):
                self.report_split = split
                self.evaluate(
                    datasets[split],
                    test_loader_kwargs=self.evaluation_loader_options(hparams),
                    **self.task.find_kwargs(),
                )
        finally:
            self._shard_evaluation = False  # post-training stages run on the main process alone
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
        return self.modules.model(batch.features.data.to(self.device))

    def compute_objectives(self, predictions: ModelOutput, batch, stage) -> torch.Tensor:
        """The task's loss (NLL, or MSE on intensities)."""
        return self.task.loss(predictions.scores, self.targets(batch))
