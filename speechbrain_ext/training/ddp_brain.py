"""The Brain's side of DDP: wrapping, evaluation shared out among the processes, and unwrapping before shutdown.

Under ``torchrun``, SpeechBrain shards the training set; :class:`DistributedBrain`
shares out validation and test too, each process scoring every ``world_size``-th
utterance with no padding (:class:`EvaluationShard`), and gathers their decisions
in the dataset's order (:func:`interleave`) before any metric, annealing or
checkpoint selection, so every process selects on the whole validation set.
The process group itself lives in :mod:`speechbrain_ext.training.distributed`.
"""

from __future__ import annotations

import logging

import numpy as np
import speechbrain as sb
import torch

logger = logging.getLogger(__name__)


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


class DistributedBrain(sb.Brain):
    """SpeechBrain's Brain with evaluation shared out under DDP (see the module docstring).

    A subclass keeps its evaluated set's ``_ids``, ``_targets`` and
    ``_outputs`` per stage; :meth:`_gathered` returns them for the whole set.
    Sharding is on while ``_shard_evaluation`` is set (valid and test of the
    training run); post-training stages run on the main process alone.
    """

    _shard_evaluation = False

    @property
    def sharded_evaluation(self) -> bool:
        """Whether valid/test are shared out among DDP processes now (during a recipe's training run)."""
        return self._shard_evaluation and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1

    def _wrap_distributed(self):
        """DDP as SpeechBrain wraps it; with a part that some steps skip, DDP looks for unused parameters."""
        if self.distributed_launch and not self.find_unused_parameters and skips_parameters(self.modules):
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
