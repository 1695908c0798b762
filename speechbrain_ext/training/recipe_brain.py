"""The Brain every recipe shares: optimisers, annealing, logs, checkpoints by the task's metric, reports.

:class:`RecipeBrain` brings two optimisers (the SSL encoder at ``lr_ssl``, the
rest at ``lr``), annealing on the task's error or the validation loss, per-epoch logs, checkpoints
kept by the task's selection metric (UAR, mean Spearman, ...), the valid and
test reports written by the task, and :meth:`RecipeBrain.embed` for the
post-training stages. It runs ``hparams["model"]``
(:mod:`speechbrain_ext.nn.models`), the same module that ``hub export`` packs.
The methods' Brains (:mod:`speechbrain_ext.training.brains`) differ only in
``compute_forward``/``compute_objectives``; DDP's evaluation sharding and
gathering come from :class:`~speechbrain_ext.training.ddp_brain.DistributedBrain`.
"""

from __future__ import annotations

import functools
import logging
import time

import speechbrain as sb
import torch
from speechbrain.utils.distributed import ddp_broadcast, if_main_process
from tqdm import tqdm

from speechbrain_ext.data.batching import PaddingMeter
from speechbrain_ext.data.dataio import machine_loader_options
from speechbrain_ext.evaluation.reports import report_table
from speechbrain_ext.nn.encoders import model_batch_exact
from speechbrain_ext.training.ddp_brain import DistributedBrain, unwrap
from speechbrain_ext.training.tasks import UNLABELLED

logger = logging.getLogger(__name__)
AUXILIARY_LOSSES = ("triplet_loss", "supcon_loss")
ANNEALED_ON = ("error", "loss")  # lr_annealing_on: 1 - the task's selection metric, or the validation loss


class RecipeBrain(DistributedBrain):
    """Shared machinery; subclasses define the method (:mod:`speechbrain_ext.training.brains`).

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
        """Reject a configuration that does not fit this Brain (plain YAML values, nothing built)."""
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

    def targets(self, batch) -> torch.Tensor:
        """The batch's targets (class indices or intensity rows) on the Brain's device."""
        return self.task.batch_targets(batch.target.data.to(self.device, non_blocking=True))

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
        evaluated = {"ids": list(ids), "targets": targets, "outputs": outputs}  # what the post-training stages build on
        self.evaluated = {**getattr(self, "evaluated", {}), split: evaluated}
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

    def make_dataloader(self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs):
        """SpeechBrain's loader, with the worker count and pinned memory fitted to this machine (:func:`~speechbrain_ext.data.dataio.machine_loader_options`)."""
        return super().make_dataloader(
            dataset, stage, ckpt_prefix, **machine_loader_options(loader_kwargs, self.device)
        )

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
            Split -> report (``valid`` and ``test``); the evaluated ids,
            targets and outputs stay in ``self.evaluated`` (split -> dict).
        """
        self.reports, self.evaluated, self._shard_evaluation = {}, {}, True
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
