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

Every checkpoint's meta file carries the SHA-256 of each of its files
(``checksums``). A checkpoint whose files fail it (a disk fault, a partial
copy) is left out of every listing with a warning naming the file, so
recovery resumes from the newest intact one; when checkpoints exist and none
is intact, the run stops with one line naming the corrupt files. Checkpoints
written before checksums existed are trusted as they are.

Under DDP, saving and deleting are decided and done by the main process alone
and end with a collective, so every rank leaves with the same folder: the
ranks never list different checkpoints and so never disagree on how many
collectives a deletion takes (SpeechBrain 1.1.2 lists the folder on every rank
and broadcasts once per deleted checkpoint).

The recipes' YAMLs use it as SpeechBrain's::

    checkpointer: !new:speechbrain_ext.training.checkpoints.Checkpointer
        checkpoints_dir: !ref <save_folder>
        recoverables: {model: !ref <model>, counter: !ref <epoch_counter>}
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from speechbrain.utils import checkpoints as sb_checkpoints
from speechbrain.utils.distributed import MainProcessContext, ddp_barrier, ddp_broadcast, if_main_process

logger = logging.getLogger(__name__)
STAGING = ".staging"  # not a CKPT+ name: SpeechBrain never lists it as a checkpoint
CHECKSUMS = "checksums"  # meta key: file name -> SHA-256


class CorruptCheckpointsError(RuntimeError):
    """Every checkpoint of a folder failed its checksums."""


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks.

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "x"
    >>> _ = path.write_bytes(b"abc")
    >>> file_sha256(path)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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
        self._verified, self._warned = (
            {},
            set(),
        )  # checksum results by (file, size, mtime); corrupt files already reported
        super().__init__(*args, **kwargs)
        if "random_state" not in self.recoverables:
            self.add_recoverable(
                "random_state", RandomState(), optional_load=True
            )  # checkpoints of older runs have none

    def save_checkpoint(self, meta={}, end_of_epoch=True, name=None, verbosity=logging.INFO):  # noqa: B006 (SpeechBrain's signature)
        """Write every file into the staging folder, checksums in the meta file written last, then rename the folder into place.

        The main process does it all; the others wait for its result, so every rank returns once the checkpoint is in place.
        """
        saved = None
        if if_main_process():
            with MainProcessContext():  # SpeechBrain's save hooks broadcast; here they run on the main process alone
                saved = self._save_staged(meta, end_of_epoch, name, verbosity)
        return ddp_broadcast(saved)

    def _save_staged(self, meta, end_of_epoch, name, verbosity):
        final = self._new_checkpoint_dirpath() if name is None else self._custom_checkpoint_dirpath(name)
        shutil.rmtree(self.checkpoints_dir / STAGING, ignore_errors=True)  # a checkpoint a kill interrupted
        work = self.checkpoints_dir / STAGING / final.name
        work.mkdir(parents=True)
        paramfiles = {}
        for key, obj in self.recoverables.items():
            hook = self.custom_save_hooks.get(key) or sb_checkpoints.get_default_hook(
                obj, sb_checkpoints.DEFAULT_SAVE_HOOKS
            )
            if hook is None:
                raise RuntimeError(f"don't know how to save {type(obj)}: register a default hook or add a custom hook")
            hook(obj, work / f"{key}{sb_checkpoints.PARAMFILE_EXT}")
            paramfiles[key] = final / f"{key}{sb_checkpoints.PARAMFILE_EXT}"
        checksums = {path.name: file_sha256(path) for path in sorted(work.iterdir()) if path.is_file()}
        saved_meta = self._save_checkpoint_metafile(
            work / sb_checkpoints.METAFNAME, {**meta, CHECKSUMS: checksums}, end_of_epoch
        )
        os.replace(work, final)
        logger.log(verbosity, "Saved an %s checkpoint in %s", "end-of-epoch" if end_of_epoch else "intra-epoch", final)
        return sb_checkpoints.Checkpoint(final, saved_meta, paramfiles)

    def delete_checkpoints(self, **kwargs):
        """SpeechBrain's deletion, decided and done on the main process alone; then one barrier (see the module docstring)."""
        if if_main_process():
            with MainProcessContext():  # its barriers and per-deletion broadcasts become no-ops
                super().delete_checkpoints(**kwargs)
        ddp_barrier()

    def list_checkpoints(self):
        """The intact checkpoints (see the module docstring); raises :class:`CorruptCheckpointsError` when none of several is."""
        intact, corrupt = [], []
        for folder in self._list_checkpoint_dirs():
            try:
                checkpoint = self._construct_checkpoint_objects([folder])[0]
            except Exception as err:  # an unreadable meta file
                corrupt.append(f"{folder / sb_checkpoints.METAFNAME} ({type(err).__name__})")
                continue
            bad = self._failed_files(checkpoint)
            if bad:
                corrupt.extend(bad)
            else:
                intact.append(checkpoint)
        for problem in corrupt:
            if problem not in self._warned:
                self._warned.add(problem)
                logger.warning("Skipping a corrupt checkpoint: %s; recovery uses the newest intact one", problem)
        if corrupt and not intact:
            raise CorruptCheckpointsError(
                f"every checkpoint in {self.checkpoints_dir} is corrupt ({'; '.join(corrupt)}): remove {self.checkpoints_dir} to start this run over"
            )
        return intact

    def _failed_files(self, checkpoint) -> list[str]:
        """The files of ``checkpoint`` that are missing or fail their checksum (memoised by size and modification time)."""
        failed = []
        for file_name, expected in (checkpoint.meta.get(CHECKSUMS) or {}).items():
            path = Path(checkpoint.path) / file_name
            try:
                stat = path.stat()
            except FileNotFoundError:
                failed.append(f"{path} (missing)")
                continue
            key = (str(path), stat.st_size, stat.st_mtime_ns)
            if key not in self._verified:
                self._verified[key] = file_sha256(path) == expected
            if not self._verified[key]:
                failed.append(f"{path} (checksum mismatch)")
        return failed
