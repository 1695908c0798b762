"""Checkpoints a kill cannot corrupt, carrying the random state, so that a killed run resumes into the same results.

SpeechBrain's :class:`~speechbrain.utils.checkpoints.Checkpointer` writes a
checkpoint's meta file first and its parameter files after: a run killed in
between leaves a checkpoint that recovery picks and cannot load. This one
writes every file into ``<save_folder>/.staging/`` and renames the finished
folder into place, so a checkpoint is listed only once it is whole; a
leftover staging folder is removed at the next save.

It also saves the random number generators (torch, NumPy, Python, CUDA) with
every checkpoint. A run killed in epoch ``e`` restarts from the end of epoch
``e - 1`` with the generators as they were there, so shuffling, dropout and
LayerDrop draw what the uninterrupted run drew: on deterministic (CPU) kernels
the resumed run ends with the same weights and test scores.

The recipes' YAMLs use it as SpeechBrain's::

    checkpointer: !new:speechbrain_ext.checkpoints.Checkpointer
        checkpoints_dir: !ref <save_folder>
        recoverables: {model: !ref <model>, counter: !ref <epoch_counter>}
"""

from __future__ import annotations

import logging
import os
import random
import shutil

import numpy as np
import torch
from speechbrain.utils import checkpoints as sb_checkpoints
from speechbrain.utils.distributed import ddp_broadcast, if_main_process

logger = logging.getLogger(__name__)
STAGING = ".staging"  # not a CKPT+ name: SpeechBrain never lists it as a checkpoint


@sb_checkpoints.register_checkpoint_hooks
class RandomState:
    """The process's random generators as a recoverable (the main process's, under DDP).

    Example
    -------
    >>> import tempfile, pathlib
    >>> state, path = RandomState(), pathlib.Path(tempfile.mkdtemp()) / "rng.ckpt"
    >>> state.save(path)
    >>> first = (torch.rand(1).item(), np.random.rand(), random.random())
    >>> state.load(path)
    >>> (torch.rand(1).item(), np.random.rand(), random.random()) == first
    True
    """

    @sb_checkpoints.mark_as_saver
    def save(self, path) -> None:
        if not if_main_process():
            return
        state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(state, path)

    @sb_checkpoints.mark_as_loader
    def load(self, path, end_of_epoch: bool = True) -> None:
        state = torch.load(path, weights_only=False)
        torch.set_rng_state(state["torch"])
        np.random.set_state(state["numpy"])
        random.setstate(state["python"])
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer(sb_checkpoints.Checkpointer):
    """SpeechBrain's checkpointer, written atomically and with the random state (see the module docstring).

    Arguments are those of :class:`speechbrain.utils.checkpoints.Checkpointer`.

    Example
    -------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> ckpt = Checkpointer(folder, recoverables={"model": torch.nn.Linear(2, 2)})
    >>> saved = ckpt.save_checkpoint(meta={"UAR": 0.5})
    >>> sorted(p.name for p in saved.path.iterdir()), [c.path for c in ckpt.list_checkpoints()] == [saved.path]
    (['CKPT.yaml', 'model.ckpt', 'random_state.ckpt'], True)
    >>> sorted(p.name for p in folder.iterdir())  # the staging folder is empty once the checkpoint is in place
    ['.staging', 'CKPT+...']
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "random_state" not in self.recoverables:
            self.add_recoverable("random_state", RandomState(), optional_load=True)  # checkpoints of older runs have none

    def save_checkpoint(self, meta={}, end_of_epoch=True, name=None, verbosity=logging.INFO):  # noqa: B006 (SpeechBrain's signature)
        """Write every file into the staging folder, the meta file last, then rename the folder into place."""
        final = None
        if if_main_process():
            final = self._new_checkpoint_dirpath() if name is None else self._custom_checkpoint_dirpath(name)
            shutil.rmtree(self.checkpoints_dir / STAGING, ignore_errors=True)  # a checkpoint a kill interrupted
            (self.checkpoints_dir / STAGING / final.name).mkdir(parents=True)
        final = ddp_broadcast(final)
        work = self.checkpoints_dir / STAGING / final.name
        paramfiles = {}
        for key, obj in self.recoverables.items():
            hook = self.custom_save_hooks.get(key) or sb_checkpoints.get_default_hook(obj, sb_checkpoints.DEFAULT_SAVE_HOOKS)
            if hook is None:
                raise RuntimeError(f"don't know how to save {type(obj)}: register a default hook or add a custom hook")
            hook(obj, work / f"{key}{sb_checkpoints.PARAMFILE_EXT}")
            paramfiles[key] = final / f"{key}{sb_checkpoints.PARAMFILE_EXT}"
        if not if_main_process():
            return None
        saved_meta = self._save_checkpoint_metafile(work / sb_checkpoints.METAFNAME, meta, end_of_epoch)
        os.replace(work, final)
        logger.log(verbosity, "Saved an %s checkpoint in %s", "end-of-epoch" if end_of_epoch else "intra-epoch", final)
        return sb_checkpoints.Checkpoint(final, saved_meta, paramfiles)
